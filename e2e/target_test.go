package e2e

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/sinktest"
)

// target is a real HTTP server standing in for a downstream API: a
// sinktest.API on 127.0.0.1. It records, per Idempotency-Key (a batch
// element's id), how often it accepted (answered 2xx to) the event, the body
// (a batch element's data) and the traceparent it got.
//
// The lower-case fields are the API's own records under the names the tests
// use: mu guards the maps, which are the API's maps, not copies.
type target struct {
	*sinktest.API
	URL string

	mu                                   *sync.Mutex
	attempts, accepted                   map[string]int
	bodies                               map[string][]byte
	traces                               map[string]string
	inflight, requests, batches, batched *atomic.Int64
}

// newTarget serves an API that answers status(key, attempt) (nil: 200) to
// each event, after delay. A batch request whose body is no JSON array of
// events fails the test.
func newTarget(t *testing.T, delay time.Duration, status func(key string, attempt int) int) *target {
	t.Helper()
	api := sinktest.New(sinktest.Options{Latency: delay, Answer: sinktest.Statuses(status)})
	return serveTarget(t, api)
}

func serveTarget(t *testing.T, api *sinktest.API) *target {
	t.Helper()
	srv, err := sinktest.Listen("127.0.0.1:0", "/events", api)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return asTarget(t, api, srv.URL)
}

// asTarget is api as a target answering at url, for a server in front of it.
func asTarget(t *testing.T, api *sinktest.API, url string) *target {
	t.Cleanup(func() {
		if n := api.Unreadable.Load(); n > 0 {
			t.Errorf("%d batch requests were not a JSON array of events", n)
		}
	})
	return &target{API: api, URL: url, mu: &api.Mu, attempts: api.Attempts, accepted: api.Accepted,
		bodies: api.Bodies, traces: api.Traces,
		inflight: &api.Inflight, requests: &api.Requests, batches: &api.Batches, batched: &api.Batched}
}

// snapshot copies the per-key acceptance counts.
func (tg *target) snapshot() map[string]int { return tg.Snapshot() }

func (tg *target) acceptedCount() int { return tg.AcceptedCount() }
