package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// key mode across retry tiers: events carry a per-key sequence number; the API
// fails some of them for a while (their first three attempts), so they go
// through both tiers — and the later events of their key are parked behind
// them. The API receives each key's events in strictly increasing order, and
// every event once.
func TestKeyOrderKeptAcrossRetryTiers(t *testing.T) {
	const n, keys = 2000, 20
	s := newScenario(t, "keyorder", 0)
	codec := builtinCodec(t)
	seqOf := map[string][2]int{} // event id → key, seq
	for i := range n {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		k, seq := i%keys, i/keys
		doc := fmt.Appendf(nil, `{"id":%q,"email":"u%d@example.com","name":"key-%02d","plan":"FREE","created_at":"2026-11-27T12:00:00.000Z","metadata":{"seq":"%d"}}`, id, i, k, seq)
		if _, _, err := codec.EncodeJSON(context.Background(), "user.registered", doc); err != nil {
			t.Fatal(err)
		}
		s.ids, s.docs = append(s.ids, id), append(s.docs, doc)
		seqOf[id] = [2]int{k, seq}
	}
	failing := func(id string) bool { i, _ := strconv.Atoi(id[len(id)-12:]); return i%53 == 5 }
	api := newTarget(t, time.Millisecond, func(id string, attempt int) int {
		if failing(id) && attempt <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s.top = "events: {key_field: name}"
	s.writeConfig(sinkSpec{name: "profile", target: api, extra: "ordering: key\nmax_in_flight: 16\n" +
		"retry: {attempts: 2, backoff_base: 5ms, backoff_cap: 10ms, tiers: [1s, 2s]}\nbreaker: {enabled: false}"})
	s.emitAll()
	p := s.start()
	s.waitDone(3*time.Minute, map[string]*target{"profile": api}, map[string][]string{"profile": s.ids})
	for _, g := range []string{"profile.retry.1", "profile.retry.2"} {
		waitFor(t, time.Minute, g+" committed", func() (bool, string) { return s.committedTopicAtEnd(s.topic+"."+g, g) })
	}
	p.term(t)
	checkAccepted(t, "profile", api, s.ids, 0)

	api.mu.Lock()
	defer api.mu.Unlock()
	last := map[int]int{}
	violations := 0
	for _, id := range api.Order {
		ks := seqOf[id]
		if prev, ok := last[ks[0]]; ok && ks[1] <= prev {
			if violations++; violations <= 5 {
				t.Errorf("key %d: seq %d arrived after seq %d", ks[0], ks[1], prev)
			}
		}
		last[ks[0]] = ks[1]
	}
	if violations > 0 {
		t.Errorf("%d out-of-order deliveries", violations)
	}
	behind := 0
	for _, r := range readTopic(t, s.topic+".profile.retry.1") {
		if header(r, "fanout-error-class") == "behind-earlier-of-key" {
			behind++
		}
	}
	failed := 0
	for _, id := range s.ids {
		if failing(id) {
			failed++
		}
	}
	t.Logf("%d events failed for a while; %d later events were parked behind them in tier 1; %s",
		failed, behind, grepLines(p.out.String(), "sink stats"))
	if behind == 0 {
		t.Error("no event was parked behind a failing one: the test did not exercise key order")
	}
	if !strings.Contains(p.out.String(), "partitions assigned") {
		t.Error("fanout never got partitions")
	}
}
