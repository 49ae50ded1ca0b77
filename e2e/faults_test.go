package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fault-injection suite. Each TestFault… runs `fanout run` instances
// against faultTargets, injects its faults while events flow, waits until
// every sink delivered everything and committed the end, and hands what was
// recorded to the checker (checker_test.go), which prints one table per
// scenario and asserts the invariants. docs/reliability.md describes the
// scenarios, the bounds and the last results.

// baseSink is the per-sink config every fault scenario shares: a short lease
// so that a SIGKILLed instance's claims free up quickly.
const baseSink = "dedupe: {lease: 4s}"

// threeSinks is one sink per ordering mode, each with its own API.
func threeSinks(t *testing.T, b faultBehaviour, extra string, tiers int) []*faultSink {
	return []*faultSink{
		{name: "profile", mode: "partition", target: newFaultTarget(t, "profile", b), extra: extra, tiers: tiers},
		{name: "orders", mode: "key", maxInFlight: 16, target: newFaultTarget(t, "orders", b), extra: extra, tiers: tiers},
		// analytics takes CloudEvents batches: every fault also hits batching,
		// and the checker holds it to the same bounds (a batch on the wire at
		// a SIGKILL holds at most max_in_flight events).
		{name: "analytics", mode: "unordered", maxInFlight: 16, batch: 4, target: newFaultTarget(t, "analytics", b), extra: extra, tiers: tiers},
	}
}

func (fr *faultRun) sink(name string) *faultSink {
	for _, s := range fr.sinks {
		if s.name == name {
			return s
		}
	}
	fr.t.Fatalf("no sink %s", name)
	return nil
}

// produceInBackground produces events [0, n) at rate; the returned channel is
// closed once all are acknowledged.
func (fr *faultRun) produceInBackground(ctx context.Context, rate int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fr.produce(ctx, 0, len(fr.events), rate)
	}()
	return done
}

func (fr *faultRun) waitProduced(done <-chan struct{}, timeout time.Duration) {
	fr.t.Helper()
	select {
	case <-done:
	case <-time.After(timeout):
		fr.t.Fatalf("producing %d events took more than %s", len(fr.events), timeout)
	}
	fr.note("all %d events produced and acknowledged", len(fr.events))
}

// waitAccepted waits until sink's API accepted n distinct events.
func (fr *faultRun) waitAccepted(sink string, n int, timeout time.Duration) {
	fr.t.Helper()
	tg := fr.sink(sink).target
	waitFor(fr.t, timeout, fmt.Sprintf("%s accepted %d events", sink, n), func() (bool, string) {
		got := tg.distinct()
		return got >= n, fmt.Sprintf("%d accepted", got)
	})
}

func newRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FANOUT_FAULT_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("random seed %d (FANOUT_FAULT_SEED=%d repeats the schedule)", seed, seed)
	return rand.New(rand.NewPCG(seed, 1))
}

// Three instances share three sinks (partition, key, unordered) while 100,000
// events flow. For ~50s a random instance is SIGKILLed every 2–5s and
// restarted 0.3–1.5s later; then the fleet is scaled 3 → 1 → 3 → 1 with
// SIGTERM, events still flowing.
func TestFaultRollingKillAndScale(t *testing.T) {
	const n, partitions, rate = 100_000, 12, 1000
	fr := newFaultRun(t, "rollkill", n, partitions, 1000)
	fr.sinks = threeSinks(t, faultBehaviour{Jitter: time.Millisecond}, baseSink+"\nretry: {tiers: []}", 0)
	cfg := fr.writeConfig("fanout.yaml", fr.sinks...)
	fr.ensureTopics(cfg)
	slots := []string{"i1", "i2", "i3"}
	for _, s := range slots {
		fr.start(s, cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := fr.produceInBackground(ctx, rate)

	rng := newRand(t)
	for until := time.Now().Add(50 * time.Second); time.Now().Before(until); {
		time.Sleep(jittered(rng, 2*time.Second, 5*time.Second))
		slot := slots[rng.IntN(len(slots))]
		fr.kill(slot)
		time.Sleep(jittered(rng, 300*time.Millisecond, 1500*time.Millisecond))
		fr.start(slot, cfg)
	}
	fr.note("scale down to one (SIGTERM)")
	fr.term("i2")
	fr.term("i3")
	time.Sleep(8 * time.Second)
	fr.note("scale up to three")
	fr.start("i2", cfg)
	fr.start("i3", cfg)
	time.Sleep(10 * time.Second)
	fr.note("scale back to one (SIGTERM)")
	fr.term("i2")
	fr.term("i3")
	fr.waitProduced(produced, 3*time.Minute)
	fr.waitComplete(5 * time.Minute)
	fr.termAll()
	fr.check()
}

// The Kafka broker is stopped (controlled shutdown) for ~8s while two
// instances deliver and events are produced, then restarted on the same data.
// The APIs answer in 300ms from 2s before the stop until 5s after the
// restart, so every sink has requests on the wire when its group notices the
// broker is gone. No process dies and Redis keeps its keys: the contract
// allows no repeat here, so every repeat is unexplained.
// (With fanout at 00547cc this fails: OnPartitionsLost cancels the in-flight
// deliveries, the API has already accepted them, their claims are released,
// and they are delivered again after the rejoin; see docs/reliability.md.)
func TestFaultKafkaBrokerRestart(t *testing.T) {
	const n, partitions, rate = 20_000, 6, 1000
	fr := newFaultRun(t, "kafkarestart", n, partitions, 500)
	fr.sinks = threeSinks(t, faultBehaviour{Jitter: time.Millisecond}, baseSink+"\nretry: {tiers: [2s]}", 1)
	cfg := fr.writeConfig("fanout.yaml", fr.sinks...)
	fr.ensureTopics(cfg)
	fr.start("i1", cfg)
	fr.start("i2", cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := fr.produceInBackground(ctx, rate)
	fr.waitAccepted("analytics", n/4, 2*time.Minute)

	restarted := false
	t.Cleanup(func() { // other tests share the broker: never leave it down
		if !restarted {
			kafka.Restart()
		}
	})
	// The APIs slow down to 300ms around the outage, so that every sink has
	// deliveries on the wire (and a backlog) when its group notices that the
	// broker is gone.
	for _, sk := range fr.sinks {
		sk.target.set(faultBehaviour{Latency: 300 * time.Millisecond})
	}
	fr.note("APIs slowed to 300ms")
	time.Sleep(2 * time.Second)
	fr.note("stopping the Kafka broker")
	if err := kafka.Stop(); err != nil {
		t.Errorf("stop kafka: %v", err)
	}
	fr.note("Kafka broker stopped")
	time.Sleep(8 * time.Second)
	if err := kafka.Restart(); err != nil {
		t.Fatalf("restart kafka: %v", err)
	}
	restarted = true
	fr.note("Kafka broker restarted and ready")
	time.Sleep(5 * time.Second)
	for _, sk := range fr.sinks {
		sk.target.set(faultBehaviour{Jitter: time.Millisecond})
	}
	fr.note("APIs fast again")
	fr.waitProduced(produced, 3*time.Minute)
	fr.waitComplete(4 * time.Minute)
	fr.termAll()
	fr.check()
	t.Logf("fanout's complaints during the outage: %d lines mention the broker being unreachable; first few:\n%s",
		len(fr.logLines("level=WARN", "level=ERROR")), tail(joinLines(fr.logLines("level=WARN", "level=ERROR")), 12))
}

// Redis is restarted twice (every key lost): once alone — nothing re-reads
// what was delivered, so no repeat should follow — and once followed 200ms
// later by a SIGKILL of an instance, so that its delivered-but-uncommitted
// records are re-read with their "done" keys gone. The repeats this allows
// are counted and bounded by what was delivered and uncommitted (or in
// flight) when Redis went down.
func TestFaultRedisRestart(t *testing.T) {
	const n, partitions, rate = 20_000, 6, 1000
	fr := newFaultRun(t, "redisrestart", n, partitions, 500)
	fr.sinks = threeSinks(t, faultBehaviour{Jitter: time.Millisecond}, baseSink+"\nretry: {tiers: [2s]}", 1)
	cfg := fr.writeConfig("fanout.yaml", fr.sinks...)
	fr.ensureTopics(cfg)
	fr.start("i1", cfg)
	fr.start("i2", cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := fr.produceInBackground(ctx, rate)

	fr.waitAccepted("analytics", n/4, 2*time.Minute)
	fr.restartRedis()
	fr.waitAccepted("analytics", n*6/10, 2*time.Minute)
	fr.restartRedis()
	time.Sleep(200 * time.Millisecond)
	fr.kill("i1")
	time.Sleep(time.Second)
	fr.start("i1", cfg)
	fr.waitProduced(produced, 3*time.Minute)
	fr.waitComplete(4 * time.Minute)
	fr.termAll()
	reps := fr.check()
	for _, r := range reps {
		t.Logf("%s: Redis data loss explained %d repeats, SIGKILL %d (at most %d per kill, bound %d), lost answers %d",
			r.Sink, r.RedisExplained, r.KillExplained, r.KillMax, r.KillCap, r.LostExplained)
	}
}

// One API answers in 2s while two answer in 5ms: the fast sinks' throughput
// stays within 10% of a run without the slow sink. Both runs use 5,000
// events produced before fanout starts, one instance, the same fast sinks.
// Throughput is events over the span from a sink's first to its last first
// acceptance. The fast sinks are bound by the API's latency (5ms × their
// in-flight limit), not by CPU, so that the other work on the machine moves
// both runs alike.
func TestFaultSlowSinkDoesNotSlowOthers(t *testing.T) {
	const n = 5000
	extra := baseSink + "\nretry: {tiers: []}"
	run := func(name string, slow bool) map[string]float64 {
		fr := newFaultRun(t, name, n, 6, 500)
		fast := faultBehaviour{Latency: 5 * time.Millisecond}
		fr.sinks = []*faultSink{
			{name: "profile", mode: "partition", target: newFaultTarget(t, "profile", fast), extra: extra},
			{name: "analytics", mode: "unordered", maxInFlight: 8, target: newFaultTarget(t, "analytics", fast), extra: extra},
		}
		if slow {
			fr.sinks = append(fr.sinks, &faultSink{name: "email", mode: "unordered", maxInFlight: 64, partial: true,
				target: newFaultTarget(t, "email", faultBehaviour{Latency: 2 * time.Second}), extra: extra})
		}
		cfg := fr.writeConfig("fanout.yaml", fr.sinks...)
		fr.ensureTopics(cfg)
		fr.produce(context.Background(), 0, n, 0)
		fr.start("i1", cfg)
		fr.waitComplete(3 * time.Minute)
		rates := map[string]float64{}
		for _, sk := range fr.sinks {
			if sk.partial {
				fr.note("slow sink %s: %s", sk.name, sk.target.counts())
				continue
			}
			reqs := sk.target.requests()
			rates[sk.name] = throughput(reqs)
			fr.note("%s: %.0f events/s, %.1f requests in flight on average", sk.name, rates[sk.name], meanInFlight(reqs))
		}
		fr.termAll()
		fr.check()
		return rates
	}
	without := run("alone", false)
	with := run("withslow", true)
	for _, name := range []string{"profile", "analytics"} {
		a, b := without[name], with[name]
		// The bar is 10%; it is reported here (and in
		// docs/reliability.md) rather than asserted, since CI never fails
		// on wall-clock time. What is asserted is the structural property
		// with a margin no scheduler noise reaches: a fast sink blocked
		// behind a 2s API would drop by orders of magnitude, not by half.
		t.Logf("%s: %.0f events/s without the slow sink, %.0f with it (%+.1f%%; bar -10%%)", name, a, b, (b/a-1)*100)
		if b < 0.5*a {
			t.Errorf("%s: %.0f events/s next to a slow sink, %.0f without: the slow sink holds the fast one back", name, b, a)
		}
	}
}

// throughput is distinct events per second from the first to the last first acceptance.
func throughput(reqs []faultRequest) float64 {
	seen := map[string]bool{}
	var first, last time.Time
	for _, r := range reqs {
		if !r.Accepted || seen[r.Key] {
			continue
		}
		seen[r.Key] = true
		if first.IsZero() {
			first = r.Arrived
		}
		last = r.Arrived
	}
	if len(seen) < 2 || !last.After(first) {
		return 0
	}
	return float64(len(seen)-1) / last.Sub(first).Seconds()
}

// Two sinks run on one instance while events flow; a third sink (start:
// earliest) is added to the config, a second instance starts with the new
// config, and the first is restarted with it (SIGTERM). The new sink catches
// up from the beginning of the topic; the existing sinks see no repeat and no
// gap.
func TestFaultAddSinkWhileRunning(t *testing.T) {
	const n, partitions, rate = 15_000, 6, 600 // 25s of traffic
	fr := newFaultRun(t, "addsink", n, partitions, 500)
	b := faultBehaviour{Jitter: time.Millisecond}
	extra := baseSink + "\nretry: {tiers: [2s]}"
	profile := &faultSink{name: "profile", mode: "partition", target: newFaultTarget(t, "profile", b), extra: extra, tiers: 1}
	analytics := &faultSink{name: "analytics", mode: "unordered", maxInFlight: 16, target: newFaultTarget(t, "analytics", b), extra: extra, tiers: 1}
	cfg1 := fr.writeConfig("fanout-1.yaml", profile, analytics)
	fr.ensureTopics(cfg1)
	fr.start("i1", cfg1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := fr.produceInBackground(ctx, rate)
	fr.waitAccepted("analytics", n/3, 2*time.Minute)

	orders := &faultSink{name: "orders", mode: "key", maxInFlight: 16, target: newFaultTarget(t, "orders", b), extra: extra + "\nstart: earliest", tiers: 1}
	cfg2 := fr.writeConfig("fanout-2.yaml", profile, analytics, orders)
	fr.ensureTopics(cfg2)
	added := time.Now()
	fr.note("sink orders added to the config (start: earliest)")
	fr.start("i2", cfg2)
	fr.waitAccepted("analytics", n*6/10, 2*time.Minute)
	fr.term("i1")
	fr.start("i1", cfg2)
	fr.waitProduced(produced, 2*time.Minute)
	fr.waitComplete(3 * time.Minute)
	fr.termAll()
	reps := fr.check()
	for _, r := range reps {
		if r.Sink != "orders" && (r.Twice > 0 || r.Lost > 0) {
			t.Errorf("existing sink %s: %d repeats, %d gaps while a sink was added", r.Sink, r.Twice, r.Lost)
		}
	}
	var early int
	for _, r := range orders.target.requests() {
		if r.Arrived.Before(added) {
			early++
		}
	}
	if early > 0 {
		t.Errorf("orders received %d requests before it was configured", early)
	}
}

// The mixed-failure soak: every fault at a low rate for $FANOUT_SOAK
// (default 45s; `make soak` runs 10m). The APIs add 1–11ms latency, answer 1%
// with 503, reset 0.5% of connections and trickle 0.5% of bodies over 300ms;
// orders rejects a fixed 0.2% with 422 (they must end in its DLQ). Every 45s
// cycle: one SIGKILL (and restart 1s later) of a random instance of two at
// 20%, a 3s down window at 45% (profile and orders refuse connections,
// analytics answers 503 with Retry-After: 1), and a Redis restart at 70%.
// Retry tiers are short (1s, 3s) so that records parked by the down window
// come back within the run; orders (key) must keep key order across them.
func TestFaultMixedSoak(t *testing.T) {
	d := 45 * time.Second
	if s := os.Getenv("FANOUT_SOAK"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatalf("FANOUT_SOAK=%q: %v", s, err)
		}
	}
	const rate, partitions, cycle = 300, 6, 45 * time.Second
	n := int(d.Seconds() * rate)
	fr := newFaultRun(t, "soak", n, partitions, 500)
	poison := func(id string) bool {
		i, _ := strconv.Atoi(id[len(id)-12:])
		return i%500 == 7
	}
	b := faultBehaviour{Latency: time.Millisecond, Jitter: 10 * time.Millisecond, ErrorRate: 0.01, ResetRate: 0.005,
		SlowBodyRate: 0.005, SlowBody: 300 * time.Millisecond, LostRate: 0.002, SlowAnswer: 2 * time.Second}
	extra := baseSink + "\ntimeout: 1s\nretry: {tiers: [1s, 3s]}\nbreaker: {open_for: 2s, max_open_for: 4s}"
	fr.sinks = threeSinks(t, b, extra, 2)
	ob := b
	ob.Reject = func(id string) int {
		if poison(id) {
			return http.StatusUnprocessableEntity
		}
		return 0
	}
	orders := fr.sink("orders")
	orders.target.set(ob)
	orders.rejects = poison
	cfg := fr.writeConfig("fanout.yaml", fr.sinks...)
	fr.ensureTopics(cfg)
	slots := []string{"i1", "i2"}
	for _, s := range slots {
		fr.start(s, cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := fr.produceInBackground(ctx, rate)

	rng := newRand(t)
	began := time.Now()
	at := func(off time.Duration) { time.Sleep(time.Until(began.Add(off))) }
	for c := time.Duration(0); c < d; c += cycle {
		at(c + cycle*20/100)
		slot := slots[rng.IntN(len(slots))]
		fr.kill(slot)
		time.Sleep(time.Second)
		fr.start(slot, cfg)
		at(c + cycle*45/100)
		fr.note("down window 3s: profile and orders refuse connections, analytics answers 503")
		fr.sink("profile").target.downFor(downRefuse, 3*time.Second)
		fr.sink("orders").target.downFor(downRefuse, 3*time.Second)
		fr.sink("analytics").target.downFor(down503, 3*time.Second)
		at(c + cycle*70/100)
		fr.restartRedis()
	}
	fr.waitProduced(produced, d+2*time.Minute)
	fr.waitComplete(4 * time.Minute)
	fr.termAll()
	fr.check()
	for _, sk := range fr.sinks {
		t.Logf("%s API: %s", sk.name, sk.target.counts())
	}
	t.Logf("breaker transitions:\n%s", tail(joinLines(fr.logLines("circuit breaker")), 20))
}

func joinLines(ls []string) string {
	var b []byte
	for _, l := range ls {
		b = append(b, l...)
		b = append(b, '\n')
	}
	return string(b)
}

// meanInFlight is the average number of requests the API was answering at
// once, over the span from the first arrival to the last answer.
func meanInFlight(reqs []faultRequest) float64 {
	if len(reqs) == 0 {
		return 0
	}
	var busy time.Duration
	first, last := reqs[0].Arrived, reqs[0].Answered
	for _, r := range reqs {
		if r.Answered.IsZero() {
			continue
		}
		busy += r.Answered.Sub(r.Arrived)
		last = later(last, r.Answered)
	}
	if !last.After(first) {
		return 0
	}
	return busy.Seconds() / last.Sub(first).Seconds()
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Lost answers: the APIs accept 1.5% of requests and then lose the answer —
// the connection is dropped after the decision, the answer comes after the
// sink's 1s attempt timeout (2s), or a batch's 2xx body with the per-event
// results is cut off halfway. Two instances, one of them SIGTERMed and
// started again halfway with a 300ms drain_timeout, so that deliveries
// waiting for a held answer are cancelled on the wire (a rebalance follows).
// No process dies and Redis keeps its keys: every repeat must follow a
// recorded lost answer of that event.
func TestFaultLostAnswers(t *testing.T) {
	const n, partitions, rate = 6000, 6, 600
	fr := newFaultRun(t, "lostanswers", n, partitions, 300)
	fr.drain = "300ms"
	b := faultBehaviour{Jitter: 2 * time.Millisecond, LostRate: 0.015, SlowAnswer: 2 * time.Second}
	fr.sinks = threeSinks(t, b, baseSink+"\ntimeout: 1s\nretry: {tiers: [2s]}", 1)
	cfg := fr.writeConfig("fanout.yaml", fr.sinks...)
	fr.ensureTopics(cfg)
	fr.start("i1", cfg)
	fr.start("i2", cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := fr.produceInBackground(ctx, rate)
	fr.waitAccepted("analytics", n/2, 2*time.Minute)
	fr.term("i2")
	var cancelled []string // "consumer stopped … abandoned=N" of the drained incarnation
	for _, l := range fr.logLines(`msg="consumer stopped"`) {
		if strings.HasPrefix(l, "i2.1: ") && !strings.Contains(l, "abandoned=0") {
			cancelled = append(cancelled, l)
		}
	}
	fr.note("i2.1 cancelled deliveries at its 300ms drain_timeout in %d consumers", len(cancelled))
	fr.start("i2", cfg)
	fr.waitProduced(produced, 2*time.Minute)
	fr.waitComplete(3 * time.Minute)
	fr.termAll()
	reps := fr.check()
	for _, sk := range fr.sinks {
		t.Logf("%s API: %s", sk.name, sk.target.counts())
	}
	for _, r := range reps {
		if r.LostAnswers == 0 {
			t.Errorf("%s: the API lost no answer; the scenario tested nothing", r.Sink)
		}
	}
}

// Key order across retry tiers after Redis lost the tier barriers. One key,
// one partition; events 2 and 6 fail their first two attempts (main topic,
// tier 1) and so wait in tier 2, and the key's later events are parked behind
// each of them. Redis restarts while event 2 waits in tier 2 — the
// documented case where losing Redis data may reorder: events 3–5 may pass
// it (the checker counts them against the "in a tier at the restart"
// bound). Event 6 is produced only after all that is over, so its barrier is
// written to the new Redis and events 7–11 must wait behind it: no reorder
// is allowed there.
func TestFaultRedisRestartKeyOrderBarriers(t *testing.T) {
	fr := newFaultRun(t, "barriers", 12, 1, 1)
	var mu sync.Mutex
	attempts := map[string]int{}
	b := faultBehaviour{Reject: func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		if attempts[id]++; (id == eventID(2) || id == eventID(6)) && attempts[id] <= 2 {
			return http.StatusServiceUnavailable
		}
		return 0
	}}
	fr.sinks = []*faultSink{{name: "orders", mode: "key", maxInFlight: 4, target: newFaultTarget(t, "orders", b), tiers: 2,
		extra: baseSink + "\nretry: {attempts: 1, tiers: [1s, 4s]}\nbreaker: {enabled: false}"}}
	cfg := fr.writeConfig("fanout.yaml", fr.sinks...)
	fr.ensureTopics(cfg)
	fr.start("i1", cfg)
	fr.produce(context.Background(), 0, 6, 0)
	waitFor(t, time.Minute, "event 2 parked in tier 2", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return attempts[eventID(2)] >= 2, fmt.Sprintf("%d attempts", attempts[eventID(2)])
	})
	time.Sleep(500 * time.Millisecond) // the tier-1 consumer parks it in tier 2
	fr.restartRedis()
	fr.waitAccepted("orders", 6, time.Minute)
	// Event 2's delivery from tier 2, and those of the events parked behind
	// it, leave the tiers: no membership may be left for the key.
	waitFor(t, time.Minute, "the key's tier memberships all left", func() (bool, string) {
		m := barrierMembers(t, fr.topic+":order.v2:*")
		return len(m) == 0, fmt.Sprint(m)
	})
	fr.note("events 0–5 delivered, no tier membership left; producing 6–11")
	fr.produce(context.Background(), 6, 12, 0)
	fr.waitComplete(time.Minute)
	fr.termAll()
	var order []string
	for _, r := range fr.sinks[0].target.requests() {
		if r.Accepted {
			n, _ := strconv.Atoi(r.Key[len(r.Key)-12:])
			order = append(order, strconv.Itoa(n))
		}
	}
	t.Logf("acceptance order (event numbers): %v", order)
	fr.check()
}

// barrierMembers lists the key-order tier memberships (sorted-set members
// "<tier>|<origin>") of the barrier keys matching pattern.
func barrierMembers(t *testing.T, pattern string) []string {
	t.Helper()
	cl := redis.NewClient(&redis.Options{Addr: redisSrv.Addr})
	defer cl.Close()
	ctx := context.Background()
	keys, err := cl.Keys(ctx, pattern).Result()
	if err != nil {
		t.Fatalf("barrier keys: %v", err)
	}
	var out []string
	for _, k := range keys {
		m, err := cl.ZRange(ctx, k, 0, -1).Result()
		if err != nil {
			t.Fatalf("barrier members of %s: %v", k, err)
		}
		for _, x := range m {
			out = append(out, k[strings.LastIndex(k, ":")+1:]+"="+x)
		}
	}
	return out
}
