package sink

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A 503 with Retry-After slows the whole sink: a delivery started meanwhile
// waits for the pause to end, not only the event that got the answer.
func TestRetryAfterPausesWholeSink(t *testing.T) {
	var mu sync.Mutex
	var first time.Time
	arrivals := map[string]time.Time{}
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if n.Add(1) == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if _, ok := arrivals[r.Header.Get("Idempotency-Key")]; !ok {
			arrivals[r.Header.Get("Idempotency-Key")] = time.Now()
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	s, err := New(Config{Name: "email", URL: srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		if res := s.Deliver(context.Background(), Event{ID: "a", Body: []byte("{}")}); res.Class != Done || res.Attempts != 2 {
			t.Errorf("a: %+v", res)
		}
	})
	for s.limit.PausedUntil().IsZero() { // a has had its 503 and paused the sink
		time.Sleep(time.Millisecond)
	}
	wg.Go(func() {
		if res := s.Deliver(context.Background(), Event{ID: "b", Body: []byte("{}")}); res.Class != Done || res.Attempts != 1 {
			t.Errorf("b: %+v", res)
		}
	})
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if gap := arrivals["b"].Sub(first); gap < 900*time.Millisecond {
		t.Fatalf("b arrived %v after the 503 with Retry-After: 1; the sink did not pause", gap)
	}
}

func TestRateLimitPacesDeliveries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	s, err := New(Config{Name: "email", URL: srv.URL, RateLimit: LimiterConfig{Rate: 20, Burst: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	for range 11 {
		if res := s.Deliver(context.Background(), Event{ID: "x", Body: []byte("{}")}); res.Class != Done {
			t.Fatalf("%+v", res)
		}
	}
	if took := time.Since(start); took < 450*time.Millisecond {
		t.Fatalf("11 deliveries at 20/s took %v, want ≥ 500ms", took)
	}
}
