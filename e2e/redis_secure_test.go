package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/e2e/services"
)

// TestRedisSentinelFailover: fanout run uses a Sentinel-managed primary and
// replica (one sentinel, quorum 1). While events flow, the primary is
// SIGKILLed; the sentinel promotes the replica and fanout carries on through
// it without a restart. Nothing is lost.
//
// Async replication can lose the last done keys the primary acknowledged:
// the replica is read the moment the primary dies, and every done key it
// lacks for an event the API had accepted by then is the bound B. After the
// run, the done keys missing on the new primary (L) must lie within B —
// nothing written after the failover is lost — and a replay of the whole
// topic that respects dedupe repeats exactly L: every repeat is explained by a
// done key that replication lost.
func TestRedisSentinelFailover(t *testing.T) {
	const n = 4000
	sent := services.NewRedisSentinel(t)
	s := newScenario(t, "sentinel", n)
	a := newTarget(t, 2*time.Millisecond, nil)
	s.writeConfig(sinkSpec{name: "profile", target: a, extra: "ordering: unordered\nmax_in_flight: 16"})
	useSentinel(t, s, sent)
	s.emitAll()
	p := s.start()

	waitFor(t, 2*time.Minute, "a third delivered", func() (bool, string) {
		got := a.acceptedCount()
		return got >= n/3, fmt.Sprintf("%d accepted", got)
	})
	// On loopback the replica is a fraction of a millisecond behind, so a
	// plain kill rarely loses a write. A replication gap is made real: the
	// replica is frozen and its link cut, so what fanout marks done in the
	// next moments reaches the primary only — as with a lagging replica or a
	// partition between the two.
	primary := sent.Admin(sent.Primary.Addr)
	defer primary.Close()
	if err := sent.Replica.Freeze(); err != nil {
		t.Fatal(err)
	}
	defer sent.Replica.Thaw()
	if err := primary.Do(t.Context(), "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatalf("CLIENT KILL TYPE replica: %v", err)
	}
	gapFrom := a.acceptedCount()
	time.Sleep(300 * time.Millisecond)
	primaryPid := sent.Primary.Pid()
	if err := sent.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	// What the API had by now is all the dead primary can have marked done;
	// what the replica holds once it has applied what reached it is all it
	// will ever get from it.
	accepted := a.snapshot()
	if err := sent.Replica.Thaw(); err != nil {
		t.Fatal(err)
	}
	replica := sent.Admin(sent.Replica.Addr)
	defer replica.Close()
	waitReplicaSettled(t, replica)
	onReplica := doneKeys(t, replica, s, s.ids)
	var bound []string
	for id := range accepted {
		if !onReplica[id] {
			bound = append(bound, id)
		}
	}
	t.Logf("replica frozen and cut off at %d accepted; primary pid %d SIGKILLed 300ms later at %d of %d accepted; replica lacks the done key of %d of them (B)",
		gapFrom, primaryPid, len(accepted), n, len(bound))

	var promoted time.Duration
	waitFor(t, 30*time.Second, "the sentinel promoted the replica", func() (bool, string) {
		addr, err := sent.MasterAddr(t.Context())
		promoted = time.Since(killedAt)
		return err == nil && addr == sent.Replica.Addr, fmt.Sprintf("master %s (%v)", addr, err)
	})
	held := a.acceptedCount()
	s.waitDone(3*time.Minute, map[string]*target{"profile": a}, map[string][]string{"profile": s.ids})
	resumed := a.acceptedCount() - held
	p.term(t)
	checkAccepted(t, "profile", a, s.ids, 0)
	if resumed == 0 {
		t.Fatalf("nothing delivered after the promotion: the test did not exercise the failover")
	}

	newPrimary := sent.Admin(sent.Replica.Addr)
	defer newPrimary.Close()
	have := doneKeys(t, newPrimary, s, s.ids)
	inBound := map[string]bool{}
	for _, id := range bound {
		inBound[id] = true
	}
	var lost []string
	for _, id := range s.ids {
		if !have[id] {
			lost = append(lost, id)
			if !inBound[id] {
				t.Errorf("event %s has no done key on the new primary, but the replica was not missing it when the primary died (or the API had not accepted it then): a write after the failover was lost", id)
			}
		}
	}

	before := a.snapshot()
	cmd := exec.Command(fanoutBin, "replay", "-c", s.cfg, "--sink", "profile", "--from-offset", "0:0,1:0,2:0", "--respect-dedupe", "--output", "json")
	cmd.SysProcAttr = services.ChildProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fanout replay: %v\n%s", err, out)
	}
	after := a.snapshot()
	for _, secret := range []string{sent.Password, sent.SentinelPassword} {
		if strings.Contains(p.out.String(), secret) || strings.Contains(string(out), secret) {
			t.Errorf("a Redis password appears in fanout's output")
		}
	}
	isLost := map[string]bool{}
	for _, id := range lost {
		isLost[id] = true
	}
	repeats := 0
	for _, id := range s.ids {
		switch d := after[id] - before[id]; {
		case d > 1:
			t.Errorf("replay sent %s %d times", id, d)
		case d == 1 && !isLost[id]:
			t.Errorf("replay repeated %s although its done key survived the failover", id)
		case d == 0 && isLost[id]:
			t.Errorf("replay skipped %s although its done key was lost", id)
		}
		if after[id]-before[id] == 1 {
			repeats++
		}
	}
	t.Logf("sentinel promoted the replica %v after the SIGKILL (down-after %v); %d events delivered after it without a restart; "+
		"B = %d accepted events without a done key on the replica at the kill, L = %d done keys lost for good (L within B), replay repeated %d = L",
		promoted.Round(10*time.Millisecond), sent.DownAfter, resumed, len(bound), len(lost), repeats)
}

// waitReplicaSettled waits until the replica has lost its primary and its
// replication offset has stopped moving: it applied whatever reached it.
func waitReplicaSettled(t *testing.T, c *redis.Client) {
	t.Helper()
	last := ""
	waitFor(t, 10*time.Second, "the replica applied what reached it", func() (bool, string) {
		info, err := c.Info(t.Context(), "replication").Result()
		if err != nil {
			return false, err.Error()
		}
		off := ""
		for _, l := range strings.Split(info, "\r\n") {
			if strings.HasPrefix(l, "slave_repl_offset:") || strings.HasPrefix(l, "master_repl_offset:") {
				off += l + " "
			}
		}
		settled := strings.Contains(info, "master_link_status:down") && off == last
		last = off
		time.Sleep(100 * time.Millisecond)
		return settled, off
	})
}

// useSentinel points the scenario's config at the sentinel instead of the
// shared redis-server.
func useSentinel(t *testing.T, s *scenario, sent *services.RedisSentinel) {
	t.Helper()
	b, err := os.ReadFile(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	old := "  addr: " + redisSrv.Addr + "\n"
	if !strings.Contains(string(b), old) {
		t.Fatalf("config has no %q", old)
	}
	cfg := strings.Replace(string(b), old, fmt.Sprintf("  username: %s\n  password: ${E2E_REDIS_PASSWORD}\n  sentinel: {master_name: %s, addrs: [%s], password: \"${E2E_SENTINEL_PASSWORD}\"}\n",
		sent.User, services.SentinelMaster, sent.Sentinel.Addr), 1)
	// The least-privilege user owns keys under FanoutACLPrefix only.
	oldPrefix := fmt.Sprintf("  key_prefix: \"%s:\"\n", s.topic)
	if !strings.Contains(cfg, oldPrefix) {
		t.Fatalf("config has no %q", oldPrefix)
	}
	cfg = strings.Replace(cfg, oldPrefix, fmt.Sprintf("  key_prefix: \"%s\"\n", sentinelKeyPrefix(s)), 1)
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_REDIS_PASSWORD", sent.Password)
	t.Setenv("E2E_SENTINEL_PASSWORD", sent.SentinelPassword)
}

func sentinelKeyPrefix(s *scenario) string { return services.FanoutACLPrefix + s.topic + ":" }

// doneKeys reports which of ids have a done key of sink profile on c.
func doneKeys(t *testing.T, c *redis.Client, s *scenario, ids []string) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pipe := c.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, sentinelKeyPrefix(s)+dedupe.Key("profile", id))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		t.Fatalf("read done keys from %s: %v", c.Options().Addr, err)
	}
	have := map[string]bool{}
	for i, cmd := range cmds {
		if v, _ := cmd.Result(); v == "done" {
			have[ids[i]] = true
		}
	}
	return have
}
