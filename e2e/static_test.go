package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// kill -9 of `fanout run` mid-stream and an immediate restart: with
// kafka.instance_id the restarted process is the same static member and takes
// its partitions back at once; without it, its new member waits for the old
// one's session to expire (or the rebalance to time out). Only the static
// case is asserted, with a wide margin (half the session timeout); both times
// are reported. The dedupe lease is short here: a killed process's claims
// block its in-flight events for one lease whatever the membership.
func TestStaticMembershipRestart(t *testing.T) {
	const session = 30 * time.Second
	took := map[string]time.Duration{}
	for _, static := range []bool{true, false} {
		name := map[bool]string{true: "static", false: "dynamic"}[static]
		t.Run(name, func(t *testing.T) {
			s := newScenario(t, "restart-"+name, 1500)
			tg := newTarget(t, 20*time.Millisecond, nil)
			// A short dedupe lease: the killed process's claims on its
			// in-flight events block them for a lease (30s by default),
			// which would hide the membership's effect.
			s.writeConfig(sinkSpec{name: "profile", target: tg, extra: "ordering: partition\ndedupe: {lease: 2s}"})
			kafkaBlock := fmt.Sprintf("session_timeout: %s", session)
			if static {
				kafkaBlock += "\n  instance_id: ${FANOUT_E2E_HOST}"
			}
			cfg, err := os.ReadFile(s.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.cfg, []byte(strings.Replace(string(cfg), "session_timeout: 6s", kafkaBlock, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Setenv("FANOUT_E2E_HOST", "host-"+s.topic)
			s.emitAll()

			p := s.start()
			waitFor(t, time.Minute, "300 events delivered before the kill", func() (bool, string) {
				n := tg.acceptedCount()
				return n >= 300, fmt.Sprintf("%d accepted", n)
			})
			p.kill(t)
			time.Sleep(50 * time.Millisecond) // requests already sent land
			before := tg.requests.Load()
			restarted := time.Now()
			s.start()
			waitFor(t, 2*time.Minute, "a delivery after the restart", func() (bool, string) {
				return tg.requests.Load() > before, "no request since the restart"
			})
			took[name] = time.Since(restarted)
			t.Logf("%s membership: first delivery %s after kill -9 and restart (session_timeout %s)", name, took[name].Round(10*time.Millisecond), session)
			if static && took[name] >= session/2 {
				t.Errorf("static member: first delivery %s after the restart, want well within the old session (%s): the restart waited for it", took[name], session)
			}
			s.waitDone(2*time.Minute, map[string]*target{"profile": tg}, map[string][]string{"profile": s.ids})
			// Repeats: what the killed process had in flight (one per
			// partition) and had delivered without marking done.
			checkAccepted(t, "profile", tg, s.ids, 10)
		})
	}
	t.Logf("first delivery after kill -9 + restart: static %s, dynamic %s", took["static"].Round(10*time.Millisecond), took["dynamic"].Round(10*time.Millisecond))
}
