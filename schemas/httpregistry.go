package schemas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
	base    string
	baseErr error // the base URL is unusable
	client  *http.Client
	now     func() time.Time // for tests

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
// (the user info is sent as basic auth). A nil client means
// http.DefaultClient; each lookup is bounded by its ctx. If baseURL is not
// an absolute http(s) URL, every lookup fails saying so.
func NewHTTPRegistry(baseURL string, client *http.Client) *HTTPRegistry {
	if client == nil {
		client = http.DefaultClient
	}
	r := &HTTPRegistry{
		base:     strings.TrimRight(baseURL, "/"),
		client:   client,
		now:      time.Now,
		subjects: cache[string, *Schema]{ttl: subjectTTL},
	}
	// url.Parse errors quote the URL, password and all: say less.
	if u, err := url.Parse(r.base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.baseErr = errors.New("schemas: registry base URL is not an absolute http or https URL")
	}
	return r
}

// ByID implements Registry: GET /schemas/ids/{id}.
func (r *HTTPRegistry) ByID(ctx context.Context, id int) (*Schema, error) {
	return r.ids.get(ctx, id, r.now, func(ctx context.Context) (*Schema, error) {
		var resp struct {
			Schema     string            `json:"schema"`
			SchemaType string            `json:"schemaType"`
			References []json.RawMessage `json:"references"`
		}
		if err := r.get(ctx, "/schemas/ids/"+strconv.Itoa(id), &resp); err != nil {
			return nil, err
		}
		return parseRegistrySchema(id, resp.SchemaType, len(resp.References), resp.Schema)
	})
}

// BySubject implements Registry: GET /subjects/{subject}/versions/latest.
func (r *HTTPRegistry) BySubject(ctx context.Context, subject string) (*Schema, error) {
	return r.subjects.get(ctx, subject, r.now, func(ctx context.Context) (*Schema, error) {
		var resp struct {
			Subject    string            `json:"subject"`
			Version    int               `json:"version"`
			ID         int               `json:"id"`
			Schema     string            `json:"schema"`
			SchemaType string            `json:"schemaType"`
			References []json.RawMessage `json:"references"`
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
		s, err := parseRegistrySchema(resp.ID, resp.SchemaType, len(resp.References), resp.Schema)
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
			ID         int               `json:"id"`
			Schema     string            `json:"schema"`
			SchemaType string            `json:"schemaType"`
			References []json.RawMessage `json:"references"`
		}
		if err := r.get(ctx, base+"/"+strconv.Itoa(v), &resp); err != nil {
			return nil, err
		}
		s, err := parseRegistrySchema(resp.ID, resp.SchemaType, len(resp.References), resp.Schema)
		if err != nil || seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names, nil
}

func parseRegistrySchema(id int, schemaType string, refs int, avsc string) (*Schema, error) {
	if schemaType != "" && schemaType != "AVRO" {
		return nil, fmt.Errorf("%w: schema id %d is %s, not AVRO", ErrUnsupportedSchema, id, schemaType)
	}
	if refs > 0 {
		return nil, fmt.Errorf("%w: schema id %d uses schema references", ErrUnsupportedSchema, id)
	}
	return parseSchema(id, "", []byte(avsc))
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+path, nil)
	if err != nil {
		return fmt.Errorf("schemas: registry GET %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/vnd.schemaregistry.v1+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		// *url.Error strips passwords from the URL.
		return fmt.Errorf("schemas: registry: %w", err)
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

// cache holds values (schemas, subject lists) by key, collapses concurrent misses for a key into
// one fetch, and does not cache failures.
type cache[K comparable, V any] struct {
	ttl time.Duration // 0: forever

	mu      sync.Mutex
	entries map[K]cacheEntry[V]
	calls   map[K]*call[V]
}

type cacheEntry[V any] struct {
	s  V
	at time.Time
}

type call[V any] struct {
	done chan struct{}
	s    V
	err  error
	// abandoned: the caller that fetched gave up (its ctx ended), so its
	// error says nothing to the callers that waited for it.
	abandoned bool
}

func (c *cache[K, V]) cached(key K, now func() time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lookup(key, now)
}

func (c *cache[K, V]) lookup(key K, now func() time.Time) (V, bool) {
	e, ok := c.entries[key]
	if !ok || c.ttl > 0 && now().Sub(e.at) >= c.ttl {
		var zero V
		return zero, false
	}
	return e.s, true
}

func (c *cache[K, V]) put(key K, s V, now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[K]cacheEntry[V]{}
	}
	c.entries[key] = cacheEntry[V]{s: s, at: now()}
}

// get returns the cached schema for key, or fetches it. The fetch runs on
// the calling goroutine of the first caller, with its ctx; the others wait
// for it or for their own ctx, and fetch again themselves if the first
// caller gave up.
func (c *cache[K, V]) get(ctx context.Context, key K, now func() time.Time,
	fetch func(context.Context) (V, error)) (V, error) {
	for {
		c.mu.Lock()
		if s, ok := c.lookup(key, now); ok {
			c.mu.Unlock()
			return s, nil
		}
		if cl, ok := c.calls[key]; ok {
			c.mu.Unlock()
			select {
			case <-cl.done:
				if cl.abandoned {
					continue
				}
				return cl.s, cl.err
			case <-ctx.Done():
				var zero V
				return zero, fmt.Errorf("schemas: registry: %w", ctx.Err())
			}
		}
		cl := &call[V]{done: make(chan struct{})}
		if c.calls == nil {
			c.calls = map[K]*call[V]{}
		}
		c.calls[key] = cl
		c.mu.Unlock()

		cl.s, cl.err = fetch(ctx)
		cl.abandoned = cl.err != nil && ctx.Err() != nil
		if cl.err == nil {
			c.put(key, cl.s, now)
		}
		c.mu.Lock()
		delete(c.calls, key)
		c.mu.Unlock()
		close(cl.done)
		return cl.s, cl.err
	}
}
