package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/fanout-dev/fanout/tracing"
)

// cloudEvent is what a batch element must hold.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	DataContentType string          `json:"datacontenttype"`
	TraceParent     string          `json:"traceparent"`
	Data            json.RawMessage `json:"data"`
}

// batchAPI is a real HTTP server that decodes CloudEvents batches, records
// every event it receives and answers with answer(events) (nil: 204 for all).
type batchAPI struct {
	srv      *httptest.Server
	delay    time.Duration
	requests atomic.Int64
	cur      atomic.Int64
	peak     atomic.Int64 // most requests at once

	mu     sync.Mutex
	events map[string]int // id → times received
	sizes  []int
	bad    []string // problems with a request
}

func newBatchAPI(t *testing.T, delay time.Duration, answer func(w http.ResponseWriter, evs []cloudEvent)) *batchAPI {
	t.Helper()
	a := &batchAPI{delay: delay, events: map[string]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		for c, p := a.cur.Add(1), a.peak.Load(); c > p && !a.peak.CompareAndSwap(p, c); p = a.peak.Load() {
		}
		defer a.cur.Add(-1)
		body, _ := io.ReadAll(r.Body)
		var evs []cloudEvent
		err := json.Unmarshal(body, &evs)
		a.mu.Lock()
		if ct := r.Header.Get("Content-Type"); ct != "application/cloudevents-batch+json" {
			a.bad = append(a.bad, "Content-Type "+ct)
		}
		if err != nil {
			a.bad = append(a.bad, fmt.Sprintf("body %q: %v", body, err))
		}
		if !strings.HasPrefix(r.Header.Get("Idempotency-Key"), "batch-") {
			a.bad = append(a.bad, "Idempotency-Key "+r.Header.Get("Idempotency-Key"))
		}
		a.sizes = append(a.sizes, len(evs))
		for _, e := range evs {
			a.events[e.ID]++
		}
		a.mu.Unlock()
		time.Sleep(a.delay)
		if answer == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		answer(w, evs)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func batchSink(t *testing.T, url string, maxEvents, maxConns int, mod func(*Config)) *Sink {
	cfg := Config{URL: url, MaxConns: maxConns, Attempts: 1, Batch: BatchConfig{MaxEvents: maxEvents}}
	if mod != nil {
		mod(&cfg)
	}
	return newTestSink(t, cfg, WithSleep(noWait))
}

func deliverAll(s *Sink, n int, id func(i int) string) []Result {
	res := make([]Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res[i] = s.Deliver(context.Background(), Event{ID: id(i), Type: "user.registered", Body: fmt.Appendf(nil, `{"n":%d}`, i)})
		})
	}
	wg.Wait()
	return res
}

func TestBatchGroupsConcurrentDeliveries(t *testing.T) {
	api := newBatchAPI(t, 20*time.Millisecond, nil)
	s := batchSink(t, api.srv.URL, 10, 40, nil) // 4 requests in flight at most
	const n = 200
	res := deliverAll(s, n, func(i int) string { return fmt.Sprintf("ev-%d", i) })
	for i, r := range res {
		if r.Class != Done {
			t.Fatalf("event %d: %v (%v), want done", i, r.Class, r.Err)
		}
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.bad) > 0 {
		t.Fatalf("malformed batches: %v", api.bad)
	}
	for i := range n {
		if got := api.events[fmt.Sprintf("ev-%d", i)]; got != 1 {
			t.Errorf("ev-%d received %d times, want 1", i, got)
		}
	}
	if p := api.peak.Load(); p > 4 {
		t.Errorf("%d requests in flight at once, want at most 4 (max_in_flight 40 / max_events 10)", p)
	}
	largest := 0
	for _, sz := range api.sizes {
		if sz > 10 {
			t.Errorf("a batch of %d events, max_events is 10", sz)
		}
		largest = max(largest, sz)
	}
	// 200 events at 4 requests of 20ms each: one event per request would
	// take 50 rounds; batches must have formed.
	if reqs := api.requests.Load(); reqs >= n/2 || largest < 5 {
		t.Errorf("%d requests for %d events, largest batch %d: events were not batched", reqs, n, largest)
	}
}

func TestBatchBodyIsCloudEvents(t *testing.T) {
	var got []cloudEvent
	var mu sync.Mutex
	api := newBatchAPI(t, 0, func(w http.ResponseWriter, evs []cloudEvent) {
		mu.Lock()
		got = append(got, evs...)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	s := batchSink(t, api.srv.URL, 5, 5, nil)
	tracing.Setup()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := tracing.ExtractHTTP(context.Background(), http.Header{"Traceparent": {tp}})
	r := s.Deliver(ctx, Event{ID: `id "1"`, Type: "user.registered", Body: []byte(`{"email":"a@example.com"}`)})
	if r.Class != Done {
		t.Fatalf("Deliver: %v %v", r.Class, r.Err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := cloudEvent{SpecVersion: "1.0", ID: `id "1"`, Source: "fanout/test", Type: "user.registered",
		DataContentType: "application/json", TraceParent: tp, Data: json.RawMessage(`{"email":"a@example.com"}`)}
	if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Fatalf("batch = %+v, want [%+v]", got, want)
	}
}

func TestBatchNonJSONBodyIsAString(t *testing.T) {
	var got []cloudEvent
	api := newBatchAPI(t, 0, func(w http.ResponseWriter, evs []cloudEvent) { got = evs; w.WriteHeader(http.StatusOK) })
	s := batchSink(t, api.srv.URL, 5, 5, func(c *Config) { c.ContentType = "text/plain" })
	if r := s.Deliver(context.Background(), Event{ID: "x", Type: "t", Body: []byte("hello\n")}); r.Class != Done {
		t.Fatalf("Deliver: %v %v", r.Class, r.Err)
	}
	if len(got) != 1 || string(got[0].Data) != `"hello\n"` || got[0].DataContentType != "text/plain" {
		t.Fatalf("batch = %+v, want data \"hello\\n\" as text/plain", got)
	}
}

func TestBatchPerEventResults(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	api := newBatchAPI(t, 5*time.Millisecond, func(w http.ResponseWriter, evs []cloudEvent) {
		out := make([]any, len(evs))
		mu.Lock()
		for i, e := range evs {
			seen[e.ID]++
			switch {
			case strings.HasPrefix(e.ID, "bad"):
				out[i] = map[string]any{"status": 422, "error": "email is missing"}
			case strings.HasPrefix(e.ID, "flaky") && seen[e.ID] == 1:
				out[i] = 503
			default:
				out[i] = map[string]any{"status": 201}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
	s := batchSink(t, api.srv.URL, 8, 16, func(c *Config) { c.Attempts = 3 })
	ids := []string{"ok-1", "bad-1", "flaky-1", "ok-2", "bad-2", "flaky-2", "ok-3", "ok-4"}
	res := deliverAll(s, len(ids), func(i int) string { return ids[i] })
	for i, id := range ids {
		r := res[i]
		switch {
		case strings.HasPrefix(id, "bad"):
			var se *StatusError
			if r.Class != Permanent || !errors.As(r.Err, &se) || se.Code != 422 || se.Excerpt != "email is missing" || r.Attempts != 1 {
				t.Errorf("%s: %v %v after %d attempts, want permanent http 422: email is missing after 1", id, r.Class, r.Err, r.Attempts)
			}
		case strings.HasPrefix(id, "flaky"):
			if r.Class != Done || r.Attempts != 2 {
				t.Errorf("%s: %v %v after %d attempts, want done after 2", id, r.Class, r.Err, r.Attempts)
			}
		default:
			if r.Class != Done || r.Attempts != 1 {
				t.Errorf("%s: %v %v after %d attempts, want done after 1", id, r.Class, r.Err, r.Attempts)
			}
		}
	}
}

func TestBatchWholeFailure(t *testing.T) {
	api := newBatchAPI(t, 0, func(w http.ResponseWriter, _ []cloudEvent) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "maintenance")
	})
	s := batchSink(t, api.srv.URL, 4, 4, nil)
	for i, r := range deliverAll(s, 4, func(i int) string { return fmt.Sprint(i) }) {
		var se *StatusError
		if r.Class != Retryable || !errors.As(r.Err, &se) || se.Code != 503 || se.Excerpt != "maintenance" || r.RetryAfter != 7*time.Second {
			t.Errorf("event %d: %v %v retry-after %s, want retryable http 503: maintenance, 7s", i, r.Class, r.Err, r.RetryAfter)
		}
	}
}

func TestBatchUnclearResponsesAreRetried(t *testing.T) {
	for name, body := range map[string]string{
		"too few results":      `[200]`,
		"results not statuses": `[{"status":"ok"},{"status":"ok"}]`,
		"status out of range":  `[200, 42]`,
	} {
		t.Run(name, func(t *testing.T) {
			api := newBatchAPI(t, 0, func(w http.ResponseWriter, _ []cloudEvent) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, body)
			})
			s := batchSink(t, api.srv.URL, 2, 2, func(c *Config) { c.Batch.MaxWait = time.Second })
			for i, r := range deliverAll(s, 2, func(i int) string { return fmt.Sprint(i) }) {
				if r.Class != Retryable || r.Err == nil || !strings.Contains(r.Err.Error(), "batch response") {
					t.Errorf("event %d: %v %v, want retryable with a batch response error", i, r.Class, r.Err)
				}
			}
			if reqs := api.requests.Load(); reqs != 1 {
				t.Errorf("%d requests, want the 2 events in 1", reqs)
			}
		})
	}
	t.Run("any other 2xx body accepts all", func(t *testing.T) {
		api := newBatchAPI(t, 0, func(w http.ResponseWriter, _ []cloudEvent) { io.WriteString(w, `{"accepted":true}`) })
		s := batchSink(t, api.srv.URL, 2, 2, nil)
		for i, r := range deliverAll(s, 2, func(i int) string { return fmt.Sprint(i) }) {
			if r.Class != Done {
				t.Errorf("event %d: %v %v, want done", i, r.Class, r.Err)
			}
		}
	})
}

func TestBatchMaxWaitFillsTheBatch(t *testing.T) {
	api := newBatchAPI(t, 0, nil)
	s := batchSink(t, api.srv.URL, 3, 30, func(c *Config) { c.Batch.MaxWait = time.Minute })
	// Slots are free, but a batch that is not full waits: three events
	// started 50ms apart go out together, and a full batch does not wait.
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 3 {
		wg.Go(func() { s.Deliver(context.Background(), Event{ID: fmt.Sprint(i), Body: []byte(`{}`)}) })
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	if reqs := api.requests.Load(); reqs != 1 {
		t.Errorf("%d requests, want 1 batch of 3", reqs)
	}
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("a full batch waited %s: max_wait applies only to batches that are not full", el)
	}
}

func TestBatchCanceledWhileQueuedIsNotSent(t *testing.T) {
	release := make(chan struct{})
	api := newBatchAPI(t, 0, func(w http.ResponseWriter, evs []cloudEvent) {
		if evs[0].ID == "first" {
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	})
	s := batchSink(t, api.srv.URL, 2, 2, nil) // one request at a time
	first := make(chan Result, 1)
	go func() { first <- s.Deliver(context.Background(), Event{ID: "first", Body: []byte(`{}`)}) }()
	waitUntil(t, func() bool { return api.requests.Load() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan Result, 1)
	go func() { queued <- s.Deliver(ctx, Event{ID: "queued", Body: []byte(`{}`)}) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if r := <-queued; r.Class != Canceled {
		t.Fatalf("queued event: %v %v, want canceled", r.Class, r.Err)
	}
	close(release)
	if r := <-first; r.Class != Done {
		t.Fatalf("first: %v %v", r.Class, r.Err)
	}
	// The slot is free again; the next event goes alone, without "queued".
	if r := s.Deliver(context.Background(), Event{ID: "next", Body: []byte(`{}`)}); r.Class != Done {
		t.Fatalf("next: %v %v", r.Class, r.Err)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.events["queued"] != 0 {
		t.Errorf("an event canceled while queued was sent %d times", api.events["queued"])
	}
}

func TestBatchRequestContinuesForOthersWhenOneIsCanceled(t *testing.T) {
	api := newBatchAPI(t, 200*time.Millisecond, nil)
	s := batchSink(t, api.srv.URL, 2, 2, func(c *Config) { c.Batch.MaxWait = time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	a := make(chan Result, 1)
	go func() { a <- s.Deliver(ctx, Event{ID: "a", Body: []byte(`{}`)}) }()
	b := make(chan Result, 1)
	go func() { b <- s.Deliver(context.Background(), Event{ID: "b", Body: []byte(`{}`)}) }()
	waitUntil(t, func() bool { return api.requests.Load() == 1 })
	cancel()
	if r := <-a; r.Class != Canceled {
		t.Errorf("a: %v %v, want canceled", r.Class, r.Err)
	}
	if r := <-b; r.Class != Done || r.Attempts != 1 {
		t.Errorf("b: %v %v after %d attempts, want done after 1: its request must go on", r.Class, r.Err, r.Attempts)
	}
}

func TestBatchConfig(t *testing.T) {
	for name, tt := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"too many":        {func(c *Config) { c.Batch.MaxEvents = 1001 }, "batch.max_events: 1001 is not within 0..1000"},
		"negative wait":   {func(c *Config) { c.Batch.MaxWait = -time.Second }, "batch.max_wait: must not be negative"},
		"negative bytes":  {func(c *Config) { c.Batch.MaxBytes = -1 }, "batch.max_bytes: -1 is not within 0..67108864 (0: 1048576)"},
		"too many bytes":  {func(c *Config) { c.Batch.MaxBytes = 64<<20 + 1 }, "batch.max_bytes: 67108865 is not within 0..67108864"},
		"GET":             {func(c *Config) { c.Method = "GET" }, "batch.max_events: a GET request carries no body"},
		"header template": {func(c *Config) { c.Headers = map[string]string{"X-Plan": "{{ .Record.plan }}"} }, `headers["X-Plan"]: a template renders per event`},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := Config{Name: "b", URL: "http://127.0.0.1:1/", Batch: BatchConfig{MaxEvents: 10}}
			tt.mod(&cfg)
			_, err := New(cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached within 5s")
}

func TestBatchBadBodyFailsAlone(t *testing.T) {
	api := newBatchAPI(t, 10*time.Millisecond, nil)
	s := batchSink(t, api.srv.URL, 8, 8, func(c *Config) { c.Batch.MaxWait = 200 * time.Millisecond })
	bodies := []string{`{"ok":1}`, `{"broken":`, `{"ok":2}`, `{"ok":3}`}
	res := make([]Result, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Go(func() { res[i] = s.Deliver(context.Background(), Event{ID: fmt.Sprint(i), Body: []byte(b)}) })
	}
	wg.Wait()
	for i, r := range res {
		if i == 1 {
			if r.Class != Permanent || !errors.Is(r.Err, ErrRender) || r.Attempts != 1 {
				t.Errorf("bad body: %v %v after %d attempts, want a permanent render error", r.Class, r.Err, r.Attempts)
			}
			continue
		}
		if r.Class != Done {
			t.Errorf("event %d: %v %v: a bad batch-mate must not fail it", i, r.Class, r.Err)
		}
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.events["1"] != 0 || api.requests.Load() != 1 {
		t.Errorf("requests %d, bad event sent %d times: want the 3 good ones in 1 request, the bad one never", api.requests.Load(), api.events["1"])
	}
}

func TestBatchLinger(t *testing.T) {
	b := &batcher{}
	b.took = 16 * time.Millisecond
	if got := b.linger(); got != 0 {
		t.Errorf("nothing in flight: linger %s, want 0 (an idle API costs no latency)", got)
	}
	b.inflight = 1
	if got := b.linger(); got != 2*time.Millisecond {
		t.Errorf("a request in flight, requests take 16ms: linger %s, want 2ms", got)
	}
	b.took = time.Second
	if got := b.linger(); got != maxAutoLinger {
		t.Errorf("requests take 1s: linger %s, want the cap %s", got, maxAutoLinger)
	}
	b.wait, b.inflight = 30*time.Millisecond, 0
	if got := b.linger(); got != 30*time.Millisecond {
		t.Errorf("max_wait 30ms: linger %s, want 30ms", got)
	}
}

// A batch request has one client span: it continues the first event's trace
// and links every event's; each element keeps its own traceparent.
func TestBatchSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracing.Use(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { tracing.Use(noop.NewTracerProvider()) })
	tracing.Setup()

	var header string
	var got []cloudEvent
	api := newBatchAPI(t, 0, func(w http.ResponseWriter, evs []cloudEvent) { got = evs; w.WriteHeader(http.StatusOK) })
	api.srv.Config.Handler = wrapHeader(api.srv.Config.Handler, func(h http.Header) { header = h.Get("traceparent") })
	s := batchSink(t, api.srv.URL, 2, 2, func(c *Config) { c.Batch.MaxWait = 5 * time.Second })
	parents := []string{
		"00-11111111111111111111111111111111-1111111111111111-01",
		"00-22222222222222222222222222222222-2222222222222222-01",
	}
	var wg sync.WaitGroup
	for i, tp := range parents {
		ctx := tracing.ExtractHTTP(context.Background(), http.Header{"Traceparent": {tp}})
		wg.Go(func() { s.Deliver(ctx, Event{ID: fmt.Sprint(i), Body: []byte(`{}`)}) })
	}
	wg.Wait()

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1 for the batch request", len(spans))
	}
	sp := spans[0]
	links := map[string]bool{}
	for _, l := range sp.Links() {
		links[l.SpanContext.TraceID().String()+"-"+l.SpanContext.SpanID().String()] = true
	}
	first := sp.Parent().TraceID().String() + "-" + sp.Parent().SpanID().String()
	if len(links) != 2 || !links["11111111111111111111111111111111-1111111111111111"] || !links["22222222222222222222222222222222-2222222222222222"] || !links[first] {
		t.Errorf("span links %v, parent %s: want both events linked, the parent one of them", links, first)
	}
	if want := "00-" + sp.SpanContext().TraceID().String() + "-" + sp.SpanContext().SpanID().String() + "-01"; header != want {
		t.Errorf("request traceparent %q, want the batch span's %q", header, want)
	}
	for _, e := range got {
		if i, _ := strconv.Atoi(e.ID); e.TraceParent != parents[i] {
			t.Errorf("element %s traceparent %q, want its event's %q", e.ID, e.TraceParent, parents[i])
		}
	}
}

func wrapHeader(next http.Handler, see func(http.Header)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { see(r.Header); next.ServeHTTP(w, r) })
}

// rawBatchAPI is a real HTTP server that keeps every batch body it receives
// and answers with answer(body, ids).
type rawBatchAPI struct {
	srv *httptest.Server

	mu     sync.Mutex
	bodies [][]byte
	got    map[string]int // id → times received
	ok     map[string]int // id → times accepted (a 2xx for it)
}

func newRawBatchAPI(t *testing.T, answer func(w http.ResponseWriter, body []byte, ids []string)) *rawBatchAPI {
	t.Helper()
	a := &rawBatchAPI{got: map[string]int{}, ok: map[string]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var evs []cloudEvent
		if err := json.Unmarshal(body, &evs); err != nil {
			t.Errorf("batch is not valid JSON: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ids := make([]string, len(evs))
		for i, e := range evs {
			ids[i] = e.ID
		}
		a.mu.Lock()
		a.bodies = append(a.bodies, body)
		for _, id := range ids {
			a.got[id]++
		}
		a.mu.Unlock()
		rw := &statusWriter{ResponseWriter: w}
		answer(rw, body, ids)
		if rw.status >= 200 && rw.status <= 299 {
			a.mu.Lock()
			for _, id := range ids {
				a.ok[id]++
			}
			a.mu.Unlock()
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// deliverSized delivers one event per body at once, in the order given.
func deliverSized(s *Sink, bodies []string) []Result {
	res := make([]Result, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Go(func() {
			res[i] = s.Deliver(context.Background(), Event{ID: fmt.Sprint("ev-", i), Type: "t", Body: []byte(b)})
		})
	}
	wg.Wait()
	return res
}

func paddedBody(n int) string { return `{"pad":"` + strings.Repeat("x", n) + `"}` }

// A batch is closed before the next event would take its body over
// max_bytes; an event larger than max_bytes goes alone.
func TestBatchMaxBytes(t *testing.T) {
	const limit = 2000
	api := newRawBatchAPI(t, func(w http.ResponseWriter, _ []byte, _ []string) { w.WriteHeader(http.StatusNoContent) })
	s := batchSink(t, api.srv.URL, 100, 100, func(c *Config) {
		c.Batch.MaxBytes = limit
		c.Batch.MaxWait = 300 * time.Millisecond // let every event join before the first batch goes
	})
	var bodies []string
	for i := range 30 {
		bodies = append(bodies, paddedBody(100+13*i))
	}
	bodies = append(bodies, paddedBody(3*limit)) // on its own over the limit
	for i, r := range deliverSized(s, bodies) {
		if r.Class != Done {
			t.Fatalf("event %d: %v %v", i, r.Class, r.Err)
		}
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	multi := 0
	for _, b := range api.bodies {
		var evs []cloudEvent
		_ = json.Unmarshal(b, &evs)
		switch {
		case len(b) > limit && len(evs) > 1:
			t.Errorf("a body of %d bytes with %d events: max_bytes is %d", len(b), len(evs), limit)
		case len(evs) > 1:
			multi++
		}
	}
	for i := range bodies {
		if n := api.got[fmt.Sprint("ev-", i)]; n != 1 {
			t.Errorf("ev-%d received %d times, want 1", i, n)
		}
	}
	t.Logf("%d events under max_bytes %d: %d requests, %d with several events", len(bodies), limit, len(api.bodies), multi)
	// ~8 KB of events under a 2000-byte limit: several batches, most of
	// them with more than one event.
	if len(api.bodies) < 5 || multi < 3 {
		t.Errorf("%d requests, %d with several events: events were not batched up to max_bytes", len(api.bodies), multi)
	}
}

// An API whose body limit is below max_bytes answers 413: the batch is split
// until its parts fit, and an event too large on its own is the only one that
// fails.
func TestBatchSplitsOn413(t *testing.T) {
	const apiLimit = 1500
	api := newRawBatchAPI(t, func(w http.ResponseWriter, body []byte, _ []string) {
		if len(body) > apiLimit {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	s := batchSink(t, api.srv.URL, 40, 40, func(c *Config) {
		c.Attempts = 3
		c.Batch.MaxWait = 5 * time.Second // the batch is full once every event has joined
	})
	var bodies []string
	for range 39 {
		bodies = append(bodies, paddedBody(150))
	}
	bodies = append(bodies, paddedBody(2*apiLimit)) // ev-39: too large alone
	res := deliverSized(s, bodies)
	for i, r := range res {
		var se *StatusError
		switch {
		case i == 39:
			if r.Class != Permanent || !errors.As(r.Err, &se) || se.Code != 413 || r.Attempts != 1 {
				t.Errorf("oversize event: %v %v after %d attempts, want permanent 413 after 1", r.Class, r.Err, r.Attempts)
			}
		case r.Class != Done || r.Attempts != 1:
			t.Errorf("event %d: %v %v after %d attempts, want done after 1 (splitting is part of the attempt)", i, r.Class, r.Err, r.Attempts)
		}
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	for i := range 39 {
		if n := api.ok[fmt.Sprint("ev-", i)]; n != 1 {
			t.Errorf("ev-%d accepted %d times, want 1", i, n)
		}
	}
	if n := api.got["ev-39"]; n > 7 { // at most once per level of halving 40 events
		t.Errorf("the oversize event was sent %d times: splitting must end at the single event", n)
	}
	st := s.Stats()
	events := 0
	for _, b := range api.bodies {
		var evs []cloudEvent
		_ = json.Unmarshal(b, &evs)
		events += len(evs)
	}
	t.Logf("40 events (one too large alone) under a %d-byte API limit: %d requests carrying %d events", apiLimit, len(api.bodies), events)
	if st.Requests != int64(len(api.bodies)) || st.BatchedEvents != int64(events) {
		t.Errorf("stats %+v, the API saw %d requests carrying %d events", st, len(api.bodies), events)
	}
}

// A batch refused as a whole (a 400 with no per-event answer) because of one
// bad event: each event is tried alone once, the bad one alone fails, the
// others are delivered.
func TestBatchWholeRefusalTriesEventsAlone(t *testing.T) {
	api := newRawBatchAPI(t, func(w http.ResponseWriter, _ []byte, ids []string) {
		for _, id := range ids {
			if id == "ev-3" {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, "field plan: unknown value")
				return
			}
		}
		w.WriteHeader(http.StatusAccepted)
	})
	s := batchSink(t, api.srv.URL, 8, 8, func(c *Config) {
		c.Attempts = 3
		c.Batch.MaxWait = 5 * time.Second // the batch is full once every event has joined
	})
	bodies := make([]string, 8)
	for i := range bodies {
		bodies[i] = `{}`
	}
	res := deliverSized(s, bodies)
	for i, r := range res {
		var se *StatusError
		switch {
		case i == 3:
			if r.Class != Permanent || !errors.As(r.Err, &se) || se.Code != 400 || se.Excerpt != "field plan: unknown value" || r.Attempts != 1 {
				t.Errorf("bad event: %v %v after %d attempts, want permanent http 400 after 1", r.Class, r.Err, r.Attempts)
			}
		case r.Class != Done || r.Attempts != 1:
			t.Errorf("event %d: %v %v after %d attempts, want done after 1", i, r.Class, r.Err, r.Attempts)
		}
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	for i := range 8 {
		id := fmt.Sprint("ev-", i)
		// Once in the batch, once alone: no more.
		if api.got[id] != 2 {
			t.Errorf("%s received %d times, want 2 (in the batch, then alone)", id, api.got[id])
		}
		want := 1
		if i == 3 {
			want = 0
		}
		if api.ok[id] != want {
			t.Errorf("%s accepted %d times, want %d", id, api.ok[id], want)
		}
	}
	if len(api.bodies) != 9 {
		t.Errorf("%d requests, want 9: the batch, then each of its 8 events alone", len(api.bodies))
	}
}

// The event-alone retry happens once per attempt: an API that refuses
// everything sees each event twice per attempt (in a batch, then alone), and
// a permanent answer ends the delivery.
func TestBatchAloneRetryIsNotALoop(t *testing.T) {
	api := newRawBatchAPI(t, func(w http.ResponseWriter, _ []byte, _ []string) { w.WriteHeader(http.StatusUnprocessableEntity) })
	s := batchSink(t, api.srv.URL, 4, 4, func(c *Config) {
		c.Attempts = 5
		c.Batch.MaxWait = 5 * time.Second // the batch is full once every event has joined
	})
	for i, r := range deliverSized(s, []string{`{}`, `{}`, `{}`, `{}`}) {
		if r.Class != Permanent || r.Attempts != 1 || r.Status != 422 {
			t.Errorf("event %d: %v status %d after %d attempts, want permanent 422 after 1", i, r.Class, r.Status, r.Attempts)
		}
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	for id, n := range api.got {
		if n != 2 {
			t.Errorf("%s sent %d times, want 2", id, n)
		}
	}
	if len(api.bodies) != 5 {
		t.Errorf("%d requests, want 5 (one batch of 4, then 4 alone)", len(api.bodies))
	}
}

// Every string in a batch is encoded as JSON, whatever an id holds: the body
// stays valid JSON (and UTF-8), and the API reads back each id, an invalid
// UTF-8 byte as U+FFFD.
func TestBatchIDsAreJSON(t *testing.T) {
	ids := map[string]string{ // sent → received
		"smile-😀":              "smile-😀",
		"bad-\xff\xfe-utf8":    "bad-\uFFFD\uFFFD-utf8",
		"ctl-\x00\x01\x1f\n\t": "ctl-\x00\x01\x1f\n\t",
		"sep-\u2028\u2029":     "sep-\u2028\u2029",
		`quote-"\-<&>`:         `quote-"\-<&>`,
		"del-\x7f":             "del-\x7f",
		"cut-\xf0\x9f\x98":     "cut-\uFFFD\uFFFD\uFFFD", // each byte of a cut rune
	}
	var mu sync.Mutex
	var bodies [][]byte
	received := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var evs []cloudEvent
		err := json.Unmarshal(body, &evs)
		mu.Lock()
		bodies = append(bodies, body)
		for _, e := range evs {
			received[e.ID]++
		}
		mu.Unlock()
		if err != nil || !json.Valid(body) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	s := batchSink(t, srv.URL, 20, 20, func(c *Config) { c.Batch.MaxWait = 300 * time.Millisecond })
	res := map[string]Result{}
	var wg sync.WaitGroup
	for id := range ids {
		wg.Go(func() {
			r := s.Deliver(context.Background(), Event{ID: id, Type: "t\x01😀", Body: []byte(`{"s":"` + "\xff" + `"}`)})
			mu.Lock()
			res[id] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	for id, r := range res {
		if r.Class != Done {
			t.Errorf("id %q: %v %v, want done", id, r.Class, r.Err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bodies {
		if !json.Valid(b) || !utf8.Valid(b) {
			t.Errorf("batch body is not valid JSON in UTF-8: %q", b)
		}
	}
	var first []cloudEvent
	_ = json.Unmarshal(bodies[0], &first)
	if len(first) == 0 || string(first[0].Data) != "{\"s\":\"\uFFFD\"}" {
		t.Errorf("batch %s: want data with U+FFFD in place of the invalid byte", bodies[0])
	}
	for sent, want := range ids {
		if received[want] != 1 {
			t.Errorf("id %q: the API read %q %d times, want once", sent, want, received[want])
		}
	}
}

// A 2xx whose per-event answer is cut off says nothing about any event in
// the batch: every event is retried, carrying the same element id.
func TestBatchCutOffAnswerRetriesEveryEvent(t *testing.T) {
	for name, cut := range map[string]string{
		"content-length":  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[200,",
		"chunked":         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[200,\r\n",
		"close-delimited": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[200,",
	} {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var seen [][]string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				var evs []cloudEvent
				_ = json.Unmarshal(body, &evs)
				ids := make([]string, len(evs))
				for i, e := range evs {
					ids[i] = e.ID
				}
				mu.Lock()
				seen = append(seen, ids)
				first := len(seen) == 1
				mu.Unlock()
				if first {
					conn, buf, err := w.(http.Hijacker).Hijack()
					if err != nil {
						t.Error(err)
						return
					}
					buf.WriteString(cut)
					buf.Flush()
					conn.Close()
					return
				}
				w.Header().Set("Content-Type", "application/json")
				out := make([]int, len(evs))
				for i := range out {
					out[i] = 200
				}
				json.NewEncoder(w).Encode(out)
			}))
			t.Cleanup(srv.Close)
			s := batchSink(t, srv.URL, 3, 3, func(c *Config) {
				c.Attempts = 2
				c.Batch.MaxWait = 5 * time.Second // the batch is full once every event has joined
			})
			for i, r := range deliverAll(s, 3, func(i int) string { return fmt.Sprint("ev-", i) }) {
				if r.Class != Done || r.Attempts != 2 {
					t.Errorf("event %d: %v %v after %d attempts, want done after 2 (retried after the cut answer)", i, r.Class, r.Err, r.Attempts)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 2 || len(seen[0]) != 3 || !slices.Equal(sorted(seen[0]), sorted(seen[1])) {
				t.Errorf("batches %q: want the same 3 element ids twice", seen)
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// A resend is a send: each event in it takes a rate-limit token again.
func TestBatchResendTakesTokens(t *testing.T) {
	api := newRawBatchAPI(t, func(w http.ResponseWriter, _ []byte, _ []string) { w.WriteHeader(http.StatusUnprocessableEntity) })
	// One token per 1000s and a bucket of 9: whatever the test takes, it
	// takes from the bucket.
	s := batchSink(t, api.srv.URL, 4, 4, func(c *Config) {
		c.Batch.MaxWait = 5 * time.Second // the batch is full once every event has joined
		c.RateLimit = LimiterConfig{Rate: 0.001, Burst: 9}
	})
	deliverSized(s, []string{`{}`, `{}`, `{}`, `{}`})
	// 4 for the batch, 4 for the events alone: one token left.
	if d := s.limit.take(); d > 0 {
		t.Fatalf("no token left: the batch and its resends took more than 8")
	}
	if d := s.limit.take(); d <= 0 {
		t.Errorf("two tokens were left: the events sent alone did not take theirs")
	}
}

// Each request of a refused batch's resends has its own client span, in the
// trace of the event it carries.
func TestBatchResendSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracing.Use(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { tracing.Use(noop.NewTracerProvider()) })
	tracing.Setup()

	api := newRawBatchAPI(t, func(w http.ResponseWriter, _ []byte, ids []string) {
		if len(ids) > 1 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	s := batchSink(t, api.srv.URL, 2, 2, func(c *Config) { c.Batch.MaxWait = 5 * time.Second })
	traces := []string{"11111111111111111111111111111111", "22222222222222222222222222222222"}
	var wg sync.WaitGroup
	for i, tr := range traces {
		ctx := tracing.ExtractHTTP(context.Background(), http.Header{"Traceparent": {"00-" + tr + "-1111111111111111-01"}})
		wg.Go(func() {
			if r := s.Deliver(ctx, Event{ID: fmt.Sprint(i), Body: []byte(`{}`)}); r.Class != Done {
				t.Errorf("event %d: %v %v", i, r.Class, r.Err)
			}
		})
	}
	wg.Wait()
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3: the batch, then each event alone", len(spans))
	}
	alone := map[string]int{}
	for _, sp := range spans {
		if len(sp.Links()) == 1 {
			alone[sp.SpanContext().TraceID().String()]++
		}
	}
	if alone[traces[0]] != 1 || alone[traces[1]] != 1 {
		t.Errorf("single-event spans by trace %v, want one in each event's trace", alone)
	}
}
