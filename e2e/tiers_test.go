package e2e

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// An API failing one known subset with 503: those records leave the main
// topic through the retry tiers, waiting each tier's delay, and are delivered
// once the API recovers; the rest flow on, and the other sink never notices.
func TestRetryTiersDeliverAfterRecovery(t *testing.T) {
	s, subset, flaky, steady, healed := tierScenario(t, "tiers")
	waitFor(t, 2*time.Minute, "the subset reached the second tier", func() (bool, string) {
		n := len(readTopic(t, s.topic+".email.retry.2"))
		return n >= len(subset), fmt.Sprintf("%d of %d in tier 2", n, len(subset))
	})
	healed.Store(true)
	s.waitDone(3*time.Minute, map[string]*target{"email": flaky, "profile": steady}, map[string][]string{"email": s.ids, "profile": s.ids})
	for n := 1; n <= 2; n++ {
		grp := fmt.Sprintf("email.retry.%d", n)
		waitFor(t, time.Minute, grp+" committed", func() (bool, string) { return s.committedTopicAtEnd(s.topic+"."+grp, grp) })
	}
	checkAccepted(t, "email", flaky, s.ids, 0)
	checkAccepted(t, "profile", steady, s.ids, 0)
	if recs := readTopic(t, s.topic+".email.dlq"); len(recs) != 0 {
		t.Errorf("email DLQ has %d records, want 0", len(recs))
	}
	for _, r := range readTopic(t, s.topic+".email.retry.1") {
		if !subset[header(r, "event-id")] {
			t.Errorf("event %s went to tier 1 but never failed", header(r, "event-id"))
		}
	}
}

// With the API never recovering, the subset ends in the DLQ after the last
// tier, with complete headers.
func TestRetryTiersEndInDLQ(t *testing.T) {
	s, subset, flaky, steady, _ := tierScenario(t, "tiersdlq")
	var rest []string
	for _, id := range s.ids {
		if !subset[id] {
			rest = append(rest, id)
		}
	}
	s.waitDone(3*time.Minute, map[string]*target{"email": flaky, "profile": steady}, map[string][]string{"email": rest, "profile": s.ids})
	waitFor(t, 2*time.Minute, "the subset in the DLQ", func() (bool, string) {
		n := len(readTopic(t, s.topic+".email.dlq"))
		return n == len(subset), fmt.Sprintf("%d of %d in the DLQ", n, len(subset))
	})
	checkAccepted(t, "email", flaky, rest, 0)
	for _, r := range readTopic(t, s.topic+".email.dlq") {
		id := header(r, "event-id")
		if !subset[id] {
			t.Errorf("event %s in the DLQ but never failed", id)
		}
		for k, want := range map[string]string{
			"fanout-original-topic": s.topic, "fanout-sink": "email", "fanout-attempts": "6",
			"fanout-http-status": "503", "fanout-error-class": "retries-exhausted",
			"fanout-error": "http 503: Service Unavailable", "fanout-response-excerpt": "Service Unavailable",
		} {
			if got := header(r, k); got != want {
				t.Errorf("DLQ %s: %s = %q, want %q", id, k, got, want)
			}
		}
		for _, k := range []string{"fanout-original-partition", "fanout-original-offset", "fanout-original-timestamp", "traceparent"} {
			if header(r, k) == "" {
				t.Errorf("DLQ %s: header %s missing", id, k)
			}
		}
	}
}

func tierScenario(t *testing.T, name string) (*scenario, map[string]bool, *target, *target, *atomic.Bool) {
	const n = 2000
	s := newScenario(t, name, n)
	subset := map[string]bool{}
	for i, id := range s.ids {
		if i%40 == 3 {
			subset[id] = true
		}
	}
	var healed atomic.Bool
	flaky := newTarget(t, 0, func(key string, _ int) int {
		if subset[key] && !healed.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	steady := newTarget(t, 0, nil)
	s.writeConfig(
		sinkSpec{name: "email", target: flaky, extra: "ordering: unordered\nretry: {attempts: 2, backoff_base: 5ms, backoff_cap: 10ms, tiers: [2s, 15s]}"},
		sinkSpec{name: "profile", target: steady, extra: "ordering: key\nretry: {tiers: [1s]}"},
	)
	s.emitAll()
	s.start()
	return s, subset, flaky, steady, &healed
}
