package schemas

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fanout-dev/fanout/internal/tlsfile"
	"github.com/fanout-dev/fanout/redact"
)

const (
	// maxRegistryBody bounds a registry response; Avro schemas are small.
	maxRegistryBody = 4 << 20
	// subjectTTL is how long the latest version of a subject is trusted.
	// Schemas by id never change, so they are cached for good.
	subjectTTL = 30 * time.Second
)

// HTTPRegistry is a Registry backed by a Confluent-compatible Schema
// Registry. Schemas by id are cached for the life of the value; the latest
// schema of a subject for 30 seconds. Concurrent lookups of the same id or
// subject share one request. Failed lookups are not cached. It is safe for
// concurrent use.
type HTTPRegistry struct {
	base    string // scheme://host/path, no user info, no query
	query   string // the base URL's raw query, sent with every request
	shown   string // the base URL as errors show it: no secrets
	shownQ  string // its query so, "?token=***" or ""
	baseErr error  // the base URL is unusable
	client  *http.Client
	now     func() time.Time // for tests

	user, pass string // basic auth, from the URL's user info or options
	token      string // bearer token
	secrets    []string

	refs cache[refKey, *refSchema] // referenced subject versions

	ids      cache[int, *Schema]
	subjects cache[string, *Schema]
	idSubj   cache[int, []string] // the subjects of a schema id, sorted

	// noVersions is set once the registry answered a bare 404 to
	// /schemas/ids/{id}/versions: it predates that endpoint, so no id
	// has subjects; not asked again.
	noVersions atomic.Bool
}

var _ Registry = (*HTTPRegistry)(nil)

// NewHTTPRegistry returns a registry client for baseURL, for example
// "http://localhost:8081" or "https://key:secret@psrc-xyz.confluent.cloud"
// (the user info is sent as basic auth; a query is sent with every
// request). A nil client means http.DefaultClient; each lookup is bounded
// by its ctx. If baseURL is not an absolute http(s) URL, every lookup fails
// saying so. Errors never show the user info's password or query values.
func NewHTTPRegistry(baseURL string, client *http.Client) *HTTPRegistry {
	if client == nil {
		client = http.DefaultClient
	}
	r := &HTTPRegistry{
		client:   client,
		now:      time.Now,
		subjects: cache[string, *Schema]{ttl: subjectTTL},
	}
	// url.Parse errors quote the URL, password and all: say less.
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.baseErr = errors.New("schemas: registry base URL is not an absolute http or https URL")
		return r
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		r.setBasic(u.User.Username(), pass)
	}
	r.query = u.RawQuery
	for _, vs := range u.Query() {
		for _, v := range vs {
			r.addSecret(v)
		}
	}
	if u.RawQuery != "" {
		shown := RedactURL(u)
		r.shownQ = shown[strings.LastIndex(shown, "?"):]
	}
	u.RawQuery = ""
	r.shown = strings.TrimRight(RedactURL(u), "/")
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	r.base = strings.TrimRight(u.String(), "/")
	return r
}

// RegistryOptions configure NewRegistry.
type RegistryOptions struct {
	// URL is the registry's base URL; user info in it is basic auth.
	URL string
	// Username and Password are sent as basic auth (Confluent Cloud: the
	// API key and secret). Token is sent as a bearer token instead. At
	// most one of the two, and not with user info in URL.
	Username, Password, Token string
	// CAFile is a PEM file of the CAs that sign the registry's
	// certificate; "" means the system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// a registry that requires one (mutual TLS). Both or neither.
	CertFile, KeyFile string
	// ServerName is the name the registry's certificate must carry;
	// default the URL's host.
	ServerName string
	// Timeout bounds each request; default 10s.
	Timeout time.Duration
}

// NewRegistry returns a registry client as the options say: auth, TLS
// and timeout. Errors name what is wrong, never a credential.
func NewRegistry(o RegistryOptions) (*HTTPRegistry, error) {
	if o.Token != "" && (o.Username != "" || o.Password != "") {
		return nil, errors.New("schemas: registry: a bearer token and a username/password are exclusive: set one")
	}
	if o.Password != "" && o.Username == "" {
		return nil, errors.New("schemas: registry: a password needs a username")
	}
	tc, err := registryTLS(o)
	if err != nil {
		return nil, err
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tc != nil {
		tr.TLSClientConfig = tc
	}
	r := NewHTTPRegistry(o.URL, &http.Client{Timeout: timeout, Transport: tr})
	if r.baseErr != nil {
		return nil, r.baseErr
	}
	if tc != nil && !strings.HasPrefix(r.base, "https:") {
		return nil, errors.New("schemas: registry: TLS settings need an https URL")
	}
	if r.user != "" && (o.Username != "" || o.Token != "") {
		return nil, errors.New("schemas: registry: the URL holds a user and the options name credentials too: set one")
	}
	if o.Username != "" {
		r.setBasic(o.Username, o.Password)
	}
	r.token = o.Token
	r.addSecret(o.Token)
	return r, nil
}

// registryTLS returns the TLS config the options ask for, nil for the
// defaults (the system roots, no client certificate).
func registryTLS(o RegistryOptions) (*tls.Config, error) {
	if o.CAFile == "" && o.CertFile == "" && o.KeyFile == "" && o.ServerName == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if o.CAFile != "" {
		pool, err := tlsfile.CAPool(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("schemas: registry CA file: %w", err)
		}
		tc.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("schemas: registry: a client certificate needs both cert_file and key_file")
	}
	if o.CertFile != "" {
		// LoadX509KeyPair's errors name the problem, never the key.
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("schemas: registry client certificate %s / key %s: %w", o.CertFile, o.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// setBasic sets the basic auth credentials; the password and the
// header's encoding of both are secrets.
func (r *HTTPRegistry) setBasic(user, pass string) {
	r.user, r.pass = user, pass
	r.addSecret(pass)
	if pass != "" {
		r.addSecret(base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)))
	}
}

func (r *HTTPRegistry) addSecret(s string) {
	if s != "" {
		r.secrets = append(r.secrets, s)
		// Longest first: a secret inside another is not left half shown.
		sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	}
}

// redact replaces every credential of r in s with ***.
func (r *HTTPRegistry) redact(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "***")
	}
	return s
}

// RedactURL returns u as it may be shown: the password of its user info
// and every query value replaced by ***
// (https://user:***@host/x?token=***).
func RedactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		if _, ok := c.User.Password(); ok {
			c.User = url.UserPassword(c.User.Username(), "xxxxx")
		}
	}
	if c.RawQuery != "" {
		q := c.Query()
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			for range q[k] {
				parts = append(parts, url.QueryEscape(k)+"=xxxxx")
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	c.Fragment, c.RawFragment = "", ""
	return strings.ReplaceAll(c.String(), "xxxxx", "***")
}

// ByID implements Registry: GET /schemas/ids/{id}.
func (r *HTTPRegistry) ByID(ctx context.Context, id int) (*Schema, error) {
	return r.ids.get(ctx, id, r.now, func(ctx context.Context) (*Schema, error) {
		var resp struct {
			Schema     string      `json:"schema"`
			SchemaType string      `json:"schemaType"`
			References []schemaRef `json:"references"`
		}
		if err := r.get(ctx, "/schemas/ids/"+strconv.Itoa(id), &resp); err != nil {
			return nil, err
		}
		return r.parse(ctx, id, resp.SchemaType, resp.References, resp.Schema)
	})
}

// BySubject implements Registry: GET /subjects/{subject}/versions/latest.
func (r *HTTPRegistry) BySubject(ctx context.Context, subject string) (*Schema, error) {
	return r.subjects.get(ctx, subject, r.now, func(ctx context.Context) (*Schema, error) {
		var resp struct {
			Subject    string      `json:"subject"`
			Version    int         `json:"version"`
			ID         int         `json:"id"`
			Schema     string      `json:"schema"`
			SchemaType string      `json:"schemaType"`
			References []schemaRef `json:"references"`
		}
		if err := r.get(ctx, "/subjects/"+url.PathEscape(subject)+"/versions/latest", &resp); err != nil {
			return nil, err
		}
		if resp.ID <= 0 {
			return nil, fmt.Errorf("schemas: registry: subject %q: response has no schema id", subject)
		}
		if s, ok := r.ids.cached(resp.ID, r.now); ok {
			return s.withSubject(subject), nil
		}
		s, err := r.parse(ctx, resp.ID, resp.SchemaType, resp.References, resp.Schema)
		if err != nil {
			return nil, fmt.Errorf("subject %q: %w", subject, err)
		}
		r.ids.put(resp.ID, s, r.now) // by id a schema has no subject
		return s.withSubject(subject), nil
	})
}

// SubjectsOf implements SubjectLister: GET /schemas/ids/{id}/versions
// (Confluent 5.5 and later, Karapace), the subjects the schema is
// registered under, sorted. Cached for the life of the value like the
// schema; concurrent lookups of the same id share one request. A registry
// without that endpoint (a bare 404) yields ErrNoSubjects, at once for
// every later id.
func (r *HTTPRegistry) SubjectsOf(ctx context.Context, id int) ([]string, error) {
	if r.noVersions.Load() {
		return nil, ErrNoSubjects
	}
	return r.idSubj.get(ctx, id, r.now, func(ctx context.Context) ([]string, error) {
		var resp []struct {
			Subject string `json:"subject"`
			Version int    `json:"version"`
		}
		err := r.get(ctx, "/schemas/ids/"+strconv.Itoa(id)+"/versions", &resp)
		if errors.Is(err, errNoEndpoint) {
			r.noVersions.Store(true)
			return nil, fmt.Errorf("%w: %v", ErrNoSubjects, err)
		}
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		subjects := []string{}
		for _, v := range resp {
			if v.Subject != "" && !seen[v.Subject] {
				seen[v.Subject] = true
				subjects = append(subjects, v.Subject)
			}
		}
		sort.Strings(subjects)
		return subjects, nil
	})
}

// Subjects returns every subject the registry holds (GET /subjects),
// sorted. Not cached: fanout run asks once at start.
func (r *HTTPRegistry) Subjects(ctx context.Context) ([]string, error) {
	var subjects []string
	if err := r.get(ctx, "/subjects", &subjects); err != nil {
		return nil, err
	}
	sort.Strings(subjects)
	return subjects, nil
}

// RecordNames returns the Avro full names of the top-level records of
// every version of subject (GET /subjects/{subject}/versions, then each
// version), sorted and without repeats; versions that are not Avro
// records are left out. Not cached: fanout run asks once at start.
func (r *HTTPRegistry) RecordNames(ctx context.Context, subject string) ([]string, error) {
	var versions []int
	base := "/subjects/" + url.PathEscape(subject) + "/versions"
	if err := r.get(ctx, base, &versions); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var names []string
	for _, v := range versions {
		var resp struct {
			ID         int         `json:"id"`
			Schema     string      `json:"schema"`
			SchemaType string      `json:"schemaType"`
			References []schemaRef `json:"references"`
		}
		if err := r.get(ctx, base+"/"+strconv.Itoa(v), &resp); err != nil {
			return nil, err
		}
		s, err := r.parse(ctx, resp.ID, resp.SchemaType, resp.References, resp.Schema)
		if err != nil || seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names, nil
}

// parse parses a registry schema, fetching the schemas it references.
func (r *HTTPRegistry) parse(ctx context.Context, id int, schemaType string, refs []schemaRef, avsc string) (*Schema, error) {
	if schemaType != "" && schemaType != "AVRO" {
		return nil, fmt.Errorf("%w: schema id %d is %s, not AVRO", ErrUnsupportedSchema, id, schemaType)
	}
	if len(refs) == 0 {
		return parseSchema(id, "", []byte(avsc))
	}
	texts, err := r.resolveRefs(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("schema id %d: %w", id, err)
	}
	s, err := parseSchemaRefs(id, "", []byte(avsc), texts)
	if err != nil {
		return nil, fmt.Errorf("schema id %d: %w", id, err)
	}
	return s, nil
}

// registryError is the body of a Schema Registry error response.
type registryError struct {
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

// get fetches path and decodes the JSON response into v.
func (r *HTTPRegistry) get(ctx context.Context, path string, v any) error {
	if r.baseErr != nil {
		return r.baseErr
	}
	target := r.base + path
	if r.query != "" {
		target += "?" + r.query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("schemas: registry GET %s: %s", path, r.redact(err.Error()))
	}
	req.Header.Set("Accept", "application/vnd.schemaregistry.v1+json, application/json")
	switch {
	case r.token != "":
		req.Header.Set("Authorization", "Bearer "+r.token)
	case r.user != "":
		req.SetBasicAuth(r.user, r.pass)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		// *url.Error quotes the URL with its query: name it without
		// secrets, keep the cause (a timeout, a refused certificate).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("schemas: registry GET %s%s%s: %w", r.shown, path, r.shownQ, redact.Error(err, r.redact))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRegistryBody+1))
	if err != nil {
		return fmt.Errorf("schemas: registry GET %s: read body: %w", path, err)
	}
	if len(body) > maxRegistryBody {
		return fmt.Errorf("schemas: registry GET %s: response larger than %d bytes", path, maxRegistryBody)
	}
	if resp.StatusCode != http.StatusOK {
		var re registryError
		_ = json.Unmarshal(body, &re)
		// 40401 subject, 40402 version, 40403 schema not found. A 404
		// without such a body is a wrong URL, not a missing schema.
		if resp.StatusCode == http.StatusNotFound && re.Code >= 40401 && re.Code <= 40403 {
			return fmt.Errorf("%w: registry: %s", ErrUnknownSchema, clip(re.Message))
		}
		msg := re.Message
		if msg == "" {
			msg = string(body)
		}
		// A registry or a proxy may echo the request: its credentials
		// must not reach a log or a dead letter.
		msg = r.redact(msg)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return fmt.Errorf("schemas: registry GET %s%s%s: %s: %s (check schemas.registry_auth)", r.shown, path, r.shownQ, resp.Status, clip(msg))
		}
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("schemas: registry GET %s: %s: %s (%w)", path, resp.Status, clip(msg), errNoEndpoint)
		}
		return fmt.Errorf("schemas: registry GET %s: %s: %s", path, resp.Status, clip(msg))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("schemas: registry GET %s: %w", path, err)
	}
	return nil
}

// errNoEndpoint marks a 404 without the registry's own error code: the
// path does not exist there (a wrong base URL, or an older registry).
var errNoEndpoint = errors.New("no such endpoint")

func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
