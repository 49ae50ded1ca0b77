package sink

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newTestSink builds a sink for url with fast test defaults (no real backoff
// unless opts replace the sleep) and closes it when the test ends.
func newTestSink(t testing.TB, cfg Config, opts ...Option) *Sink {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	s, err := New(cfg, nil, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// waits records backoff waits instead of sleeping.
type waits struct {
	mu sync.Mutex
	ds []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.ds = append(w.ds, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waits) get() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.ds...)
}

// noWait is a WithSleep that returns at once.
func noWait(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// captured is what a test server saw of one request.
type captured struct {
	method string
	uri    string
	header http.Header
	body   []byte
	user   string
	pass   string
	hasBA  bool
}

// recorder is an httptest server that records requests and answers with
// the statuses in seq, repeating the last one.
type recorder struct {
	srv  *httptest.Server
	reqs chan captured
	hits atomic.Int64
}

func newRecorder(t testing.TB, seq ...int) *recorder {
	t.Helper()
	rec := &recorder{reqs: make(chan captured, 64)}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := rec.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		u, p, ok := r.BasicAuth()
		select {
		case rec.reqs <- captured{r.Method, r.RequestURI, r.Header.Clone(), body, u, p, ok}:
		default:
		}
		status := http.StatusNoContent
		if len(seq) > 0 {
			status = seq[min(int(n), len(seq))-1]
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) next(t testing.TB) captured {
	t.Helper()
	select {
	case c := <-rec.reqs:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no request reached the server")
		return captured{}
	}
}

// hang blocks a handler until the client goes away, or 10s, so that a sink
// that fails to give up makes a test fail rather than hang. The body is read
// first: the server notices a closed connection only once it is consumed.
func hang(r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}
