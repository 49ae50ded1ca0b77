package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// target is a real HTTP server standing in for a downstream API. It records,
// per Idempotency-Key, how often it accepted (answered 2xx to) the event, the
// body and the traceparent it got.
type target struct {
	t      *testing.T
	srv    *http.Server
	URL    string
	delay  time.Duration
	status func(key string, attempt int) int // nil: 200

	inflight atomic.Int64
	requests atomic.Int64
	batches  atomic.Int64 // batch requests
	batched  atomic.Int64 // events in batch requests

	mu       sync.Mutex
	attempts map[string]int
	accepted map[string]int
	bodies   map[string][]byte
	traces   map[string]string
	order    []string // keys in the order they were accepted
}

func newTarget(t *testing.T, delay time.Duration, status func(key string, attempt int) int) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{t: t, URL: "http://" + ln.Addr().String() + "/events", delay: delay, status: status,
		attempts: map[string]int{}, accepted: map[string]int{}, bodies: map[string][]byte{}, traces: map[string]string{}}
	tg.srv = &http.Server{Handler: tg, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go tg.srv.Serve(ln)
	t.Cleanup(func() { tg.srv.Close() })
	return tg
}

func (tg *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tg.inflight.Add(1)
	defer tg.inflight.Add(-1)
	tg.requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if r.Header.Get("Content-Type") == "application/cloudevents-batch+json" {
		tg.serveBatch(w, r, body)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	tg.mu.Lock()
	tg.attempts[key]++
	n := tg.attempts[key]
	tg.mu.Unlock()
	status := http.StatusOK
	if tg.status != nil {
		status = tg.status(key, n)
	}
	// The API decides when the request arrives; like a real one, it does the
	// work even if the client goes away before the answer.
	if status/100 == 2 {
		tg.mu.Lock()
		tg.accepted[key]++
		tg.order = append(tg.order, key)
		tg.bodies[key] = body
		tg.traces[key] = r.Header.Get("traceparent")
		tg.mu.Unlock()
	}
	if tg.delay > 0 {
		time.Sleep(tg.delay)
	}
	w.WriteHeader(status)
	io.WriteString(w, http.StatusText(status))
}

// snapshot copies the per-key acceptance counts.
func (tg *target) snapshot() map[string]int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	m := make(map[string]int, len(tg.accepted))
	for k, v := range tg.accepted {
		m[k] = v
	}
	return m
}

func (tg *target) acceptedCount() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return len(tg.accepted)
}

// batchEvent is the part of a CloudEvents batch element the target checks.
type batchEvent struct {
	ID          string          `json:"id"`
	TraceParent string          `json:"traceparent"`
	Data        json.RawMessage `json:"data"`
}

// serveBatch answers a CloudEvents batch like an API that takes events one by
// one: status decides each event by its id, as for single requests, and the
// answer lists the per-event statuses when any is not 2xx.
func (tg *target) serveBatch(w http.ResponseWriter, r *http.Request, body []byte) {
	var evs []batchEvent
	if err := json.Unmarshal(body, &evs); err != nil {
		tg.t.Errorf("batch request is not a JSON array of events: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	tg.batches.Add(1)
	tg.batched.Add(int64(len(evs)))
	statuses := make([]int, len(evs))
	allOK := true
	for i, ev := range evs {
		tg.mu.Lock()
		tg.attempts[ev.ID]++
		n := tg.attempts[ev.ID]
		tg.mu.Unlock()
		statuses[i] = http.StatusOK
		if tg.status != nil {
			statuses[i] = tg.status(ev.ID, n)
		}
		if statuses[i]/100 != 2 {
			allOK = false
			continue
		}
		tg.mu.Lock()
		tg.accepted[ev.ID]++
		tg.order = append(tg.order, ev.ID)
		tg.bodies[ev.ID] = ev.Data
		tg.traces[ev.ID] = ev.TraceParent
		tg.mu.Unlock()
	}
	if tg.delay > 0 {
		time.Sleep(tg.delay)
	}
	if allOK {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "[")
	for i, st := range statuses {
		if i > 0 {
			io.WriteString(w, ",")
		}
		fmt.Fprintf(w, `{"status":%d,"error":%q}`, st, http.StatusText(st))
	}
	io.WriteString(w, "]")
}
