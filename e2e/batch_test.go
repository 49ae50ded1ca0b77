package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/e2e/services"
)

// A batched sink against a real broker and redis-server: events travel in
// CloudEvents batches, the API answers per event (some retryable, some
// permanent), and each event still ends up accepted once or dead-lettered.
func TestBatchedSinkEveryEventOnceOrDeadLettered(t *testing.T) {
	s := newScenario(t, "batch", events)
	bad := map[string]bool{}
	var good []string
	for i, id := range s.ids {
		if i%50 == 7 {
			bad[id] = true
		} else {
			good = append(good, id)
		}
	}
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(3, 4))
	api := newTarget(t, 5*time.Millisecond, func(id string, _ int) int {
		if bad[id] {
			return http.StatusUnprocessableEntity
		}
		mu.Lock()
		defer mu.Unlock()
		if rng.IntN(100) < 20 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s.writeConfig(sinkSpec{name: "bulk", target: api, extra: "ordering: unordered\nmax_in_flight: 64\n" +
		"batch: {max_events: 32}\nretry: {attempts: 12, backoff_base: 5ms, backoff_cap: 100ms}"})
	s.emitAll()
	adminAddr := fmt.Sprintf("127.0.0.1:%d", services.FreePort(t))
	p := s.start("--admin", adminAddr)
	s.waitDone(3*time.Minute, map[string]*target{"bulk": api}, map[string][]string{"bulk": good})
	metrics := httpGet(t, "http://"+adminAddr+"/metrics")
	p.term(t)

	checkAccepted(t, "bulk", api, good, 0)
	traceOf := map[string]string{}
	for _, r := range readTopic(t, s.topic) {
		traceOf[header(r, "event-id")] = traceID(header(r, "traceparent"))
	}
	api.mu.Lock()
	diff := 0
	for id, body := range api.bodies {
		if !bytes.Equal(body, s.bodies[id]) || traceID(api.traces[id]) != traceOf[id] {
			if diff++; diff <= 3 {
				t.Errorf("event %s: data %s trace %s, want golden %s trace %s", id, body, traceID(api.traces[id]), s.bodies[id], traceOf[id])
			}
		}
	}
	api.mu.Unlock()
	if diff > 0 {
		t.Errorf("%d events arrived with another body or trace than emitted", diff)
	}

	dead := map[string]int{}
	for _, d := range s.dlqList("bulk") {
		dead[d.EventID]++
		if !bad[d.EventID] || d.Status != http.StatusUnprocessableEntity || d.Class != "permanent" {
			t.Errorf("dead letter %+v: want only the 422 events, class permanent", d)
		}
	}
	for id := range bad {
		if dead[id] != 1 {
			t.Errorf("event %s dead-lettered %d times, want once", id, dead[id])
		}
	}

	single, batches, batched := api.requests.Load()-api.batches.Load(), api.batches.Load(), api.batched.Load()
	t.Logf("%d events in %d batch requests (mean %.1f per request), %d single requests", batched, batches, float64(batched)/float64(max(batches, 1)), single)
	if single != 0 || batches == 0 {
		t.Errorf("%d single requests and %d batches: a batched sink must send only batches", single, batches)
	}
	// fanout counts what the API saw: every request a batch, every event
	// attempt in one.
	for _, want := range []string{
		fmt.Sprintf(`fanout_http_requests_total{sink="bulk"} %d`, batches),
		fmt.Sprintf(`fanout_batch_events_total{sink="bulk"} %d`, batched),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// 64 in flight over 32-event batches: 2 requests at a time, so batches
	// fill up while a request is on the wire. A sink that sent one event per
	// request would have a mean of 1.
	if mean := float64(batched) / float64(max(batches, 1)); mean < 4 {
		t.Errorf("mean batch size %.1f: events were not batched", mean)
	}
}
