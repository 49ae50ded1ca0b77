package schemas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeRegistry imitates the Confluent Schema Registry endpoints fanout
// uses, and counts requests per path.
type fakeRegistry struct {
	t        *testing.T
	user     string // the user.registered schema text
	mu       sync.Mutex
	hits     map[string]int
	version  int           // latest version number of user.registered
	release  chan struct{} // GET /schemas/ids/7 waits for it
	wantAuth bool
}

func newFakeRegistry(t *testing.T) (*fakeRegistry, *httptest.Server) {
	b, err := fs.ReadFile(Builtin(), "user.registered.avsc")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRegistry{t: t, user: string(b), hits: map[string]int{}, version: 1, release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /schemas/ids/{id}", f.byID)
	mux.HandleFunc("GET /subjects/{subject}/versions/latest", f.latest)
	srv := httptest.NewServer(f.count(mux))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeRegistry) count(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits[r.URL.EscapedPath()]++
		f.mu.Unlock()
		if user, pass, ok := r.BasicAuth(); f.wantAuth && (!ok || user != "key" || pass != "s3cret") {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error_code":40101,"message":"Unauthorized"}`)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (f *fakeRegistry) hitCount(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

func (f *fakeRegistry) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		f.t.Error(err)
	}
}

func (f *fakeRegistry) byID(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	switch id {
	case 1:
		f.reply(w, 200, map[string]any{"schema": f.user})
	case 2:
		f.reply(w, 200, map[string]any{"schema": f.user, "schemaType": "AVRO"})
	case 3:
		f.reply(w, 200, map[string]any{"schema": `syntax = "proto3";`, "schemaType": "PROTOBUF"})
	case 4:
		f.reply(w, 200, map[string]any{"schema": f.user, "references": []any{map[string]any{"name": "x", "subject": "x", "version": 1}}})
	case 5:
		f.reply(w, 500, map[string]any{"error_code": 50001, "message": "Error in the backend data store"})
	case 6:
		http.NotFound(w, r) // a wrong base URL, not a missing schema
	case 7:
		select {
		case <-f.release:
			f.reply(w, 200, map[string]any{"schema": f.user})
		case <-r.Context().Done():
		}
	case 8:
		w.WriteHeader(200)
		fmt.Fprintf(w, `{"schema": "%s"}`, strings.Repeat("x", maxRegistryBody))
	case 9:
		fmt.Fprint(w, `{"schema": `)
	case 10:
		f.reply(w, 200, map[string]any{"schema": `{"type":"record","name":"R","fields":[{"name":"a","type":"nope"}]}`})
	case 11:
		<-r.Context().Done()
	default:
		f.reply(w, 404, map[string]any{"error_code": 40403, "message": fmt.Sprintf("Schema %d not found", id)})
	}
}

func (f *fakeRegistry) latest(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	f.mu.Lock()
	version := f.version
	f.mu.Unlock()
	switch subject {
	case "user.registered", "odd/name":
		f.reply(w, 200, map[string]any{"subject": subject, "version": version, "id": version, "schema": f.user})
	default:
		f.reply(w, 404, map[string]any{"error_code": 40401, "message": fmt.Sprintf("Subject '%s' not found.", subject)})
	}
}

func TestHTTPRegistryByID(t *testing.T) {
	_, srv := newFakeRegistry(t)
	r := NewHTTPRegistry(srv.URL+"/", srv.Client())
	tests := []struct {
		id   int
		want error  // sentinel, or nil
		msg  string // substring of the error; "" for success
	}{
		{1, nil, ""},
		{2, nil, ""},
		{3, ErrUnsupportedSchema, "schema id 3 is PROTOBUF, not AVRO"},
		{4, nil, `referenced subject "x" version 1`}, // the fake serves no subject versions
		{5, nil, "schemas: registry GET /schemas/ids/5: 500 Internal Server Error: Error in the backend data store"},
		{6, nil, "schemas: registry GET /schemas/ids/6: 404 Not Found: 404 page not found"},
		{8, nil, "response larger than 4194304 bytes"},
		{9, nil, "schemas: registry GET /schemas/ids/9: unexpected end of JSON input"},
		{10, ErrUnsupportedSchema, "unknown type: nope"},
		{42, ErrUnknownSchema, "schemas: unknown schema: registry: Schema 42 not found"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.id), func(t *testing.T) {
			s, err := r.ByID(context.Background(), tt.id)
			if tt.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.ID != tt.id || s.Subject != "" || s.Name != "fanout.example.UserRegistered" {
					t.Errorf("got %+v", s)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want %q", err, tt.msg)
			}
			for _, sentinel := range []error{ErrUnknownSchema, ErrUnsupportedSchema} {
				if errors.Is(err, sentinel) != (sentinel == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, sentinel, !(sentinel == tt.want))
				}
			}
		})
	}
}

func TestHTTPRegistryCache(t *testing.T) {
	f, srv := newFakeRegistry(t)
	r := NewHTTPRegistry(srv.URL, srv.Client())
	ctx := context.Background()
	for range 3 {
		if _, err := r.ByID(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ByID(ctx, 42); !errors.Is(err, ErrUnknownSchema) {
			t.Fatal(err)
		}
	}
	if got := f.hitCount("/schemas/ids/1"); got != 1 {
		t.Errorf("ByID(1) three times: %d requests, want 1", got)
	}
	if got := f.hitCount("/schemas/ids/42"); got != 3 {
		t.Errorf("ByID(42) three times: %d requests, want 3 (failures are not cached)", got)
	}
}

func TestHTTPRegistryBySubject(t *testing.T) {
	f, srv := newFakeRegistry(t)
	r := NewHTTPRegistry(srv.URL, srv.Client())
	now := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	ctx := context.Background()
	const path = "/subjects/user.registered/versions/latest"

	s, err := r.BySubject(ctx, "user.registered")
	if err != nil || s.ID != 1 || s.Subject != "user.registered" {
		t.Fatalf("got %+v, %v", s, err)
	}
	// Fetching by subject fills the id cache, without the subject.
	byID, err := r.ByID(ctx, 1)
	if err != nil || byID.Subject != "" || byID.root != s.root {
		t.Fatalf("ByID(1) after BySubject: %+v, %v", byID, err)
	}
	if got := f.hitCount("/schemas/ids/1"); got != 0 {
		t.Errorf("ByID(1) hit the registry %d times", got)
	}

	f.mu.Lock()
	f.version = 2 // a new version is registered
	f.mu.Unlock()
	now = now.Add(subjectTTL - time.Second)
	if s, _ := r.BySubject(ctx, "user.registered"); s.ID != 1 || f.hitCount(path) != 1 {
		t.Errorf("within the TTL: id %d after %d requests, want the cached id 1 after 1", s.ID, f.hitCount(path))
	}
	now = now.Add(time.Second)
	if s, _ := r.BySubject(ctx, "user.registered"); s.ID != 2 || f.hitCount(path) != 2 {
		t.Errorf("after the TTL: id %d after %d requests, want id 2 after 2", s.ID, f.hitCount(path))
	}

	if s, err := r.BySubject(ctx, "odd/name"); err != nil || s.Subject != "odd/name" {
		t.Errorf("subject with a slash: %+v, %v", s, err)
	}
	if got := f.hitCount("/subjects/odd%2Fname/versions/latest"); got != 1 {
		t.Errorf("subject with a slash was not escaped: %v", f.hits)
	}
	if _, err := r.BySubject(ctx, "nope"); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("unknown subject: %v", err)
	}
}

// TestHTTPRegistryCollapse: concurrent misses for one id make one request.
func TestHTTPRegistryCollapse(t *testing.T) {
	f, srv := newFakeRegistry(t)
	r := NewHTTPRegistry(srv.URL, srv.Client())
	const n = 20
	var (
		wg      sync.WaitGroup
		results [n]*Schema
		errs    [n]error
	)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = r.ByID(context.Background(), 7) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.hitCount("/schemas/ids/7") == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(f.release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || results[i] != results[0] {
			t.Fatalf("caller %d: %p %v", i, results[i], errs[i])
		}
	}
	if got := f.hitCount("/schemas/ids/7"); got != 1 {
		t.Errorf("%d concurrent ByID(7): %d requests, want 1", n, got)
	}
}

func TestHTTPRegistryContext(t *testing.T) {
	_, srv := newFakeRegistry(t)
	r := NewHTTPRegistry(srv.URL, srv.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := r.ByID(ctx, 11) // the server never answers
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	var de *DecodeError
	_, err = NewCodec(r).Decode(ctx, frame(11, 0))
	if errors.As(err, &de) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Decode with a dead ctx: %v; want a retryable error", err)
	}
}

func TestHTTPRegistryCredentials(t *testing.T) {
	f, srv := newFakeRegistry(t)
	f.wantAuth = true
	base := strings.Replace(srv.URL, "http://", "http://key:s3cret@", 1)
	r := NewHTTPRegistry(base, srv.Client())
	if _, err := r.ByID(context.Background(), 1); err != nil {
		t.Fatalf("with credentials in the URL: %v", err)
	}
	_, err := NewHTTPRegistry(srv.URL, srv.Client()).ByID(context.Background(), 2)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("without credentials: %v", err)
	}
	srv.Close()
	_, err = r.ByID(context.Background(), 2)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("transport error leaks the password or is nil: %v", err)
	}
}

func TestHTTPRegistryBadBaseURL(t *testing.T) {
	for _, base := range []string{"http://key:s3cret@host:port", "localhost:8081", "/relative", ""} {
		t.Run(base, func(t *testing.T) {
			_, err := NewHTTPRegistry(base, nil).ByID(context.Background(), 1)
			if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "base URL") {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestHTTPRegistryCodec(t *testing.T) {
	_, srv := newFakeRegistry(t)
	c := NewCodec(NewHTTPRegistry(srv.URL, srv.Client()))
	data, rec, err := c.EncodeJSON(context.Background(), "user.registered", []byte("{"+validUser+"}"))
	if err != nil || rec.Subject != "user.registered" {
		t.Fatalf("EncodeJSON: %+v, %v", rec, err)
	}
	got, err := c.Decode(context.Background(), data)
	if err != nil || got.Subject != "" || got.SchemaID != 1 || string(got.JSON) != string(rec.JSON) {
		t.Fatalf("Decode: %+v, %v", got, err)
	}
	_, err = c.Decode(context.Background(), frame(3, 0))
	checkDecodeError(t, err, ErrUnsupportedSchema)
	if want := "schemas: schema id 3: unsupported schema: schema id 3 is PROTOBUF, not AVRO"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
	_, err = c.Decode(context.Background(), frame(5, 0))
	var de *DecodeError
	if err == nil || errors.As(err, &de) {
		t.Errorf("registry 500: %v; want a retryable error", err)
	}
}

// TestCacheCollapse checks the collapsing of concurrent misses with
// synctest, which can tell when every caller is waiting.
func TestCacheCollapse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c cache[int, *Schema]
		release := make(chan struct{})
		var fetches atomic.Int32
		fetch := func(ctx context.Context) (*Schema, error) {
			fetches.Add(1)
			select {
			case <-release:
				return &Schema{ID: 1}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}

		// The first caller gives up: a waiter fetches again itself
		// instead of inheriting the first caller's cancellation.
		leaderCtx, cancel := context.WithCancel(context.Background())
		var leaderErr error
		var wg sync.WaitGroup
		wg.Go(func() { _, leaderErr = c.get(leaderCtx, 1, time.Now, fetch) })
		synctest.Wait()
		const n = 10
		var results [n]*Schema
		for i := range n {
			wg.Go(func() {
				s, err := c.get(context.Background(), 1, time.Now, fetch)
				if err != nil {
					t.Error(err)
				}
				results[i] = s
			})
		}
		// A waiter whose own ctx ends stops waiting.
		waiterCtx, cancelWaiter := context.WithCancel(context.Background())
		var waiterErr error
		wg.Go(func() { _, waiterErr = c.get(waiterCtx, 1, time.Now, fetch) })
		synctest.Wait()
		if got := fetches.Load(); got != 1 {
			t.Fatalf("%d fetches with %d callers waiting, want 1", got, n+2)
		}
		cancelWaiter()
		synctest.Wait()
		if !errors.Is(waiterErr, context.Canceled) {
			t.Errorf("waiter: %v", waiterErr)
		}
		cancel()
		synctest.Wait()
		if !errors.Is(leaderErr, context.Canceled) {
			t.Errorf("leader: %v", leaderErr)
		}
		if got := fetches.Load(); got != 2 {
			t.Fatalf("%d fetches after the leader gave up, want 2", got)
		}
		close(release)
		wg.Wait()
		for i := range n {
			if results[i] == nil || results[i] != results[0] {
				t.Fatalf("caller %d got %p, caller 0 %p", i, results[i], results[0])
			}
		}
		if s, ok := c.cached(1, time.Now); !ok || s != results[0] {
			t.Error("result not cached")
		}
	})
}
