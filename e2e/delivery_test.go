package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/e2e/services"
)

const events = 10_000

// waitDone waits until every sink's group has committed the topic's end offsets
// and each target has accepted every event of wantIDs.
func (s *scenario) waitDone(timeout time.Duration, sinks map[string]*target, want map[string][]string) {
	s.t.Helper()
	for name, tg := range sinks {
		ids := want[name]
		waitFor(s.t, timeout, "sink "+name+" delivered everything", func() (bool, string) {
			got := tg.snapshot()
			missing := 0
			for _, id := range ids {
				if got[id] == 0 {
					missing++
				}
			}
			return missing == 0, fmt.Sprintf("%d of %d events not accepted yet", missing, len(ids))
		})
		waitFor(s.t, timeout, "sink "+name+" committed the end offsets", func() (bool, string) { return s.committedAtEnd(name) })
	}
}

// checkAccepted asserts each of ids was accepted at least once, and that at most
// maxTwice were accepted more than once (and never more than twice).
func checkAccepted(t *testing.T, name string, tg *target, ids []string, maxTwice int) int {
	t.Helper()
	got := tg.snapshot()
	twice := 0
	for _, id := range ids {
		switch n := got[id]; {
		case n == 0:
			t.Errorf("%s: event %s never accepted (lost)", name, id)
		case n == 2:
			twice++
		case n > 2:
			t.Errorf("%s: event %s accepted %d times", name, id, n)
		}
	}
	if len(got) != len(ids) {
		t.Errorf("%s: accepted %d distinct events, want %d", name, len(got), len(ids))
	}
	if twice > maxTwice {
		t.Errorf("%s: %d events accepted twice, bound %d", name, twice, maxTwice)
	}
	return twice
}

func TestTwoSinksDeliverEveryEventOnce(t *testing.T) {
	s := newScenario(t, "happy", events)
	a, b := newTarget(t, 0, nil), newTarget(t, 0, nil)
	s.writeConfig(
		sinkSpec{name: "profile", target: a, extra: "ordering: partition"},
		sinkSpec{name: "analytics", target: b, extra: "ordering: unordered\nmax_in_flight: 32"},
	)
	s.emitAll()
	adminAddr := fmt.Sprintf("127.0.0.1:%d", services.FreePort(t))
	p := s.start("--admin", adminAddr)
	s.waitDone(3*time.Minute, map[string]*target{"profile": a, "analytics": b}, map[string][]string{"profile": s.ids, "analytics": s.ids})
	// The admin endpoint counts what the APIs saw (the last counts land just
	// after the APIs answered).
	wants := []string{
		fmt.Sprintf(`fanout_events_delivered_total{sink="profile"} %d`, events),
		fmt.Sprintf(`fanout_events_delivered_total{sink="analytics"} %d`, events),
		// every answer a 200: one request per event
		fmt.Sprintf(`fanout_http_requests_total{sink="profile"} %d`, events),
		`fanout_batch_events_total{sink="profile"} 0`,
	}
	for _, want := range wants {
		waitFor(t, 10*time.Second, "/metrics to say "+want, func() (bool, string) {
			m := httpGet(t, "http://"+adminAddr+"/metrics")
			return strings.Contains(m, want), m
		})
	}
	if got := httpGet(t, "http://"+adminAddr+"/readyz"); got != "ok\n" {
		t.Errorf("/readyz = %q while running, want ok", got)
	}
	p.term(t)

	// Trace context: each request continues the trace the emitter started.
	traceOf := map[string]string{}
	for _, r := range readTopic(t, s.topic) {
		traceOf[header(r, "event-id")] = traceID(header(r, "traceparent"))
	}
	for name, tg := range map[string]*target{"profile": a, "analytics": b} {
		checkAccepted(t, name, tg, s.ids, 0)
		tg.mu.Lock()
		bad := 0
		for id, body := range tg.bodies {
			if !bytes.Equal(body, s.bodies[id]) {
				if bad++; bad < 3 {
					t.Errorf("%s: body of %s = %s, want golden %s", name, id, body, s.bodies[id])
				}
			}
			if tr := traceID(tg.traces[id]); tr == "" || tr != traceOf[id] {
				if bad++; bad < 3 {
					t.Errorf("%s: event %s arrived with trace %q, emitted with %q", name, id, tr, traceOf[id])
				}
			}
		}
		tg.mu.Unlock()
		if bad > 0 {
			t.Errorf("%s: %d bodies or traces differ", name, bad)
		}
	}
	if recs := readTopic(t, s.topic+".profile.dlq"); len(recs) != 0 {
		t.Errorf("profile DLQ has %d records, want 0", len(recs))
	}
}

// httpGet returns the body of a GET that must answer.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func traceID(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 {
		return ""
	}
	return parts[1]
}

func TestFlakyAPIEveryEventOnceAfterRetries(t *testing.T) {
	s := newScenario(t, "flaky", events)
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	flaky := newTarget(t, 0, func(string, int) int {
		mu.Lock()
		defer mu.Unlock()
		if rng.IntN(100) < 30 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	steady := newTarget(t, 0, nil)
	s.writeConfig(
		// 12 in-line attempts: 0.3^12 ≈ 5e-7, so no event should exhaust them.
		sinkSpec{name: "email", target: flaky, extra: "ordering: unordered\nmax_in_flight: 32\nretry: {attempts: 12, backoff_base: 5ms, backoff_cap: 100ms}"},
		sinkSpec{name: "profile", target: steady, extra: "ordering: key"},
	)
	s.emitAll()
	p := s.start()
	s.waitDone(3*time.Minute, map[string]*target{"email": flaky, "profile": steady}, map[string][]string{"email": s.ids, "profile": s.ids})
	p.term(t)
	checkAccepted(t, "email", flaky, s.ids, 0)
	checkAccepted(t, "profile", steady, s.ids, 0)
	if r := flaky.requests.Load(); r < int64(events)*12/10 {
		t.Errorf("flaky API saw %d requests for %d events: the 30%% failures were not retried?", r, events)
	}
	if n := steady.requests.Load(); n != int64(events) {
		t.Errorf("steady API saw %d requests, want exactly %d", n, events)
	}
	if recs := readTopic(t, s.topic+".email.dlq"); len(recs) != 0 {
		t.Errorf("email DLQ has %d records, want 0", len(recs))
	}
}

func TestPermanentFailuresAreDeadLettered(t *testing.T) {
	s := newScenario(t, "dlq", events)
	bad := map[string]bool{}
	for i, id := range s.ids {
		if i%50 == 7 {
			bad[id] = true
		}
	}
	strict := newTarget(t, 0, func(key string, _ int) int {
		if bad[key] {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	other := newTarget(t, 0, nil)
	s.writeConfig(
		sinkSpec{name: "profile", target: strict, extra: "ordering: unordered"},
		sinkSpec{name: "analytics", target: other, extra: "ordering: unordered"},
	)
	s.emitAll()
	p := s.start()
	var good []string
	for _, id := range s.ids {
		if !bad[id] {
			good = append(good, id)
		}
	}
	s.waitDone(3*time.Minute, map[string]*target{"profile": strict, "analytics": other}, map[string][]string{"profile": good, "analytics": s.ids})
	p.term(t)
	checkAccepted(t, "profile", strict, good, 0)
	checkAccepted(t, "analytics", other, s.ids, 0)

	parked := map[string]bool{}
	for _, r := range readTopic(t, s.topic+".profile.dlq") {
		id := header(r, "event-id")
		if parked[id] {
			t.Errorf("event %s parked twice", id)
		}
		parked[id] = true
		off, _ := strconv.Atoi(header(r, "fanout-original-offset"))
		for k, want := range map[string]string{
			"fanout-original-topic": s.topic, "fanout-sink": "profile", "fanout-attempts": "1",
			"fanout-http-status": "400", "fanout-error-class": "permanent", "fanout-error": "http 400: Bad Request",
		} {
			if got := header(r, k); got != want {
				t.Errorf("parked %s: header %s = %q, want %q", id, k, got, want)
			}
		}
		for _, k := range []string{"fanout-original-partition", "fanout-original-timestamp", "fanout-parked-at", "traceparent"} {
			if header(r, k) == "" {
				t.Errorf("parked %s: header %s missing", id, k)
			}
		}
		if off < 0 || len(r.Value) < 6 || r.Value[0] != 0 {
			t.Errorf("parked %s: offset %d, value not the original Confluent-framed bytes", id, off)
		}
	}
	if len(parked) != len(bad) {
		t.Errorf("DLQ holds %d events, want %d", len(parked), len(bad))
	}
	for id := range bad {
		if !parked[id] {
			t.Errorf("event %s not in the DLQ", id)
		}
	}
	if recs := readTopic(t, s.topic+".analytics.dlq"); len(recs) != 0 {
		t.Errorf("analytics DLQ has %d records, want 0", len(recs))
	}
}

// restartScenario runs two sinks, stops fanout with sig once the first target
// has accepted a third of the events, restarts it, and checks the outcome.
func restartScenario(t *testing.T, name string, kill bool) {
	const maxInFlight = 16
	s := newScenario(t, name, events)
	a := newTarget(t, 3*time.Millisecond, nil)
	b := newTarget(t, time.Millisecond, nil)
	extra := fmt.Sprintf("ordering: unordered\nmax_in_flight: %d\ndedupe: {lease: 4s}", maxInFlight)
	s.writeConfig(sinkSpec{name: "profile", target: a, extra: extra}, sinkSpec{name: "email", target: b, extra: extra})
	s.emitAll()
	p := s.start()
	waitFor(t, 2*time.Minute, "a third delivered", func() (bool, string) {
		n := a.acceptedCount()
		return n >= events/3, fmt.Sprintf("%d accepted", n)
	})
	inA, inB := a.inflight.Load(), b.inflight.Load()
	if kill {
		p.kill(t)
	} else {
		p.term(t)
	}
	t.Logf("stopped (kill=%v) with %d/%d accepted by profile, %d/%d in flight", kill, a.acceptedCount(), events, inA, inB)
	p2 := s.start()
	s.waitDone(4*time.Minute, map[string]*target{"profile": a, "email": b}, map[string][]string{"profile": s.ids, "email": s.ids})
	p2.term(t)
	bound := 0
	if kill {
		bound = maxInFlight // one kill: at most the requests that were on the wire
	}
	ta := checkAccepted(t, "profile", a, s.ids, bound)
	tb := checkAccepted(t, "email", b, s.ids, bound)
	t.Logf("accepted twice: profile %d, email %d (bound %d per sink)", ta, tb, bound)
}

func TestSIGKILLMidStreamLosesNothing(t *testing.T)       { restartScenario(t, "kill", true) }
func TestSIGTERMRestartDeliversNothingTwice(t *testing.T) { restartScenario(t, "term", false) }

// Two instances with one file share the partitions; one of them runs only the
// profile sink (--sinks). The second joins mid-stream, so the profile group
// rebalances under load: still every event accepted exactly once by each API.
func TestInstancesSharePartitions(t *testing.T) {
	s := newScenario(t, "share", events)
	a := newTarget(t, time.Millisecond, nil)
	b := newTarget(t, time.Millisecond, nil)
	s.writeConfig(
		sinkSpec{name: "profile", target: a, extra: "ordering: key\nmax_in_flight: 8"},
		sinkSpec{name: "email", target: b, extra: "ordering: partition"},
	)
	s.emitAll()
	p1 := s.start("--sinks", "profile")
	waitFor(t, time.Minute, "profile started", func() (bool, string) {
		n := a.acceptedCount()
		return n >= events/10, fmt.Sprintf("%d accepted", n)
	})
	if b.acceptedCount() != 0 {
		t.Fatalf("email received events from an instance started with --sinks profile")
	}
	p2 := s.start()
	s.waitDone(3*time.Minute, map[string]*target{"profile": a, "email": b}, map[string][]string{"profile": s.ids, "email": s.ids})
	p1.term(t)
	p2.term(t)
	checkAccepted(t, "profile", a, s.ids, 0)
	checkAccepted(t, "email", b, s.ids, 0)
	for i, p := range []*proc{p1, p2} {
		if !strings.Contains(p.out.String(), `msg="partitions assigned" sink=profile`) {
			t.Errorf("instance %d never owned a profile partition:\n%s", i+1, tail(p.out.String(), 20))
		}
	}
}
