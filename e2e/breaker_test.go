package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The email API is down for 30s while 20,000 events flow at a steady rate:
// its breaker opens (records wait instead of filling the retry tiers), probes,
// closes when the API is back, and everything is delivered once — nothing in
// the DLQ. The profile sink keeps the producer's pace throughout.
func TestBreakerRidesOutAnOutage(t *testing.T) {
	const n, rate = 20_000, 500 // 40s of traffic
	s := newScenario(t, "breaker", n)
	var down atomic.Bool
	email := newTarget(t, 0, func(string, int) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	profile := newTarget(t, 0, nil)
	s.writeConfig(
		sinkSpec{name: "email", target: email, extra: "ordering: unordered\nmax_in_flight: 32\n" +
			"retry: {attempts: 3, backoff_base: 10ms, backoff_cap: 50ms, tiers: [5s, 10s]}\n" +
			"breaker: {window: 5s, min_requests: 10, failure_ratio: 0.5, open_for: 3s, max_open_for: 6s}"},
		sinkSpec{name: "profile", target: profile, extra: "ordering: unordered\nmax_in_flight: 32"},
	)
	s.fanout("topics", "ensure", "-c", s.cfg, "--partitions", "3")
	p := s.start()

	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr), kgo.DefaultProduceTopic(s.topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	codec := builtinCodec(t)
	produced := make([]time.Time, n)
	outageStart, outageEnd := 5*time.Second, 35*time.Second
	start := time.Now()
	tick := time.NewTicker(time.Second / rate)
	for i := range n {
		<-tick.C
		el := time.Since(start)
		down.Store(el >= outageStart && el < outageEnd)
		v, _, err := codec.EncodeJSON(context.Background(), "user.registered", s.docs[i])
		if err != nil {
			t.Fatal(err)
		}
		cl.Produce(context.Background(), &kgo.Record{Key: []byte(s.ids[i]), Value: v,
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte(s.ids[i])}}}, nil)
		produced[i] = time.Now()
	}
	tick.Stop()
	if err := cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for time.Since(start) < outageEnd {
		time.Sleep(100 * time.Millisecond)
	}
	down.Store(false)

	// The profile sink kept pace: what was produced up to 1s before the
	// outage ended was delivered by then.
	profile.mu.Lock()
	lagging := 0
	for i, id := range s.ids {
		if produced[i].Sub(start) < outageEnd-time.Second && profile.accepted[id] == 0 {
			lagging++
		}
	}
	inWindow := 0
	for i := range s.ids {
		if el := produced[i].Sub(start); el >= outageStart && el < outageEnd-time.Second {
			inWindow++
		}
	}
	profile.mu.Unlock()
	if lagging > inWindow/10 {
		t.Errorf("profile had %d of the %d events produced during the email outage still undelivered at its end: it did not keep its pace", lagging, inWindow)
	}

	s.waitDone(3*time.Minute, map[string]*target{"email": email, "profile": profile}, map[string][]string{"email": s.ids, "profile": s.ids})
	for _, g := range []string{"email.retry.1", "email.retry.2"} {
		waitFor(t, time.Minute, g+" committed", func() (bool, string) { return s.committedTopicAtEnd(s.topic+"."+g, g) })
	}
	p.term(t)
	checkAccepted(t, "email", email, s.ids, 0)
	checkAccepted(t, "profile", profile, s.ids, 0)
	if recs := readTopic(t, s.topic+".email.dlq"); len(recs) != 0 {
		t.Errorf("email DLQ has %d records, want 0", len(recs))
	}
	out := p.out.String()
	if !strings.Contains(out, `msg="circuit breaker open" sink=email`) || !strings.Contains(out, `msg="circuit breaker closed" sink=email`) {
		t.Errorf("the breaker did not open and close:\n%s", tail(grepLines(out, "breaker"), 20))
	}
	tiered := len(readTopic(t, s.topic+".email.retry.1"))
	t.Logf("email: %d requests for %d events; %d records went through tier 1 before the breaker opened; profile lagged %d of %d during the outage",
		email.requests.Load(), n, tiered, lagging, inWindow)
	if tiered > 100 { // ~ consecutive_failures (20) + what was in flight (32) when it opened
		t.Errorf("%d records went to the retry tiers: the breaker did not stop the flood", tiered)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n") + fmt.Sprintf("\n(%d lines)", len(out))
}
