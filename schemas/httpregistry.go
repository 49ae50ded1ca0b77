package schemas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
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

	ids      cache[int]
	subjects cache[string]
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
		subjects: cache[string]{ttl: subjectTTL},
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
		return fmt.Errorf("schemas: registry GET %s: %s: %s", path, resp.Status, clip(msg))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("schemas: registry GET %s: %w", path, err)
	}
	return nil
}

func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// cache holds schemas by key, collapses concurrent misses for a key into
// one fetch, and does not cache failures.
type cache[K comparable] struct {
	ttl time.Duration // 0: forever

	mu      sync.Mutex
	entries map[K]cacheEntry
	calls   map[K]*call
}

type cacheEntry struct {
	s  *Schema
	at time.Time
}

type call struct {
	done chan struct{}
	s    *Schema
	err  error
	// abandoned: the caller that fetched gave up (its ctx ended), so its
	// error says nothing to the callers that waited for it.
	abandoned bool
}

func (c *cache[K]) cached(key K, now func() time.Time) (*Schema, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lookup(key, now)
}

func (c *cache[K]) lookup(key K, now func() time.Time) (*Schema, bool) {
	e, ok := c.entries[key]
	if !ok || c.ttl > 0 && now().Sub(e.at) >= c.ttl {
		return nil, false
	}
	return e.s, true
}

func (c *cache[K]) put(key K, s *Schema, now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[K]cacheEntry{}
	}
	c.entries[key] = cacheEntry{s: s, at: now()}
}

// get returns the cached schema for key, or fetches it. The fetch runs on
// the calling goroutine of the first caller, with its ctx; the others wait
// for it or for their own ctx, and fetch again themselves if the first
// caller gave up.
func (c *cache[K]) get(ctx context.Context, key K, now func() time.Time,
	fetch func(context.Context) (*Schema, error)) (*Schema, error) {
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
				return nil, fmt.Errorf("schemas: registry: %w", ctx.Err())
			}
		}
		cl := &call{done: make(chan struct{})}
		if c.calls == nil {
			c.calls = map[K]*call{}
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
