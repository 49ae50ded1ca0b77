package e2e

import (
	"fmt"
	"testing"
	"time"
)

// Redis stopped for 20s mid-run under fail-closed: the sink holds (no
// delivery without a claim), nothing is lost, nothing is accepted twice, and
// it resumes by itself when Redis is back. Redis comes back empty (no
// persistence), which costs nothing here: what was delivered before the
// outage is committed or still held by this same process.
func TestRedisOutageFailClosed(t *testing.T) {
	s := newScenario(t, "redisdown", events)
	a := newTarget(t, 2*time.Millisecond, nil)
	s.writeConfig(sinkSpec{name: "profile", target: a, extra: "ordering: unordered\nmax_in_flight: 16\ndedupe: {policy: fail-closed}"})
	s.emitAll()
	p := s.start()
	waitFor(t, 2*time.Minute, "a third delivered", func() (bool, string) {
		n := a.acceptedCount()
		return n >= events/3, fmt.Sprintf("%d accepted", n)
	})
	if err := redisSrv.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			redisSrv.Restart()
		}
	})
	stoppedAt := time.Now()
	time.Sleep(2 * time.Second) // requests already past their claim finish
	held := a.acceptedCount()
	for time.Since(stoppedAt) < 20*time.Second {
		time.Sleep(500 * time.Millisecond)
	}
	if got := a.acceptedCount(); got != held {
		t.Fatalf("fail-closed sink delivered %d events while Redis was down", got-held)
	}
	if err := redisSrv.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	s.waitDone(3*time.Minute, map[string]*target{"profile": a}, map[string][]string{"profile": s.ids})
	p.term(t)
	checkAccepted(t, "profile", a, s.ids, 0)
	t.Logf("held at %d of %d during the outage; resumed and finished after Redis came back", held, events)
}
