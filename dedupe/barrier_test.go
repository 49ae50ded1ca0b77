package dedupe_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/e2e/services"
)

// runBarriers is the one suite every Barriers passes. newBarriers returns
// empty Barriers for one subtest.
func runBarriers(t *testing.T, newBarriers func(t *testing.T) dedupe.Barriers) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, b dedupe.Barriers)
	}{
		{"BehindOnlyAHigherTier", testBarrierBehind},
		{"EnterTwiceIsOnce", testBarrierEnterTwice},
		{"LeaveTwiceIsOnce", testBarrierLeaveTwice},
		{"LeaveAbsentIsNoop", testBarrierLeaveAbsent},
		{"LeaveManyTiers", testBarrierLeaveMany},
		{"MemberExpiresOnItsOwn", testBarrierMemberExpiry},
		{"ActiveKeyDoesNotExtendOldMember", testBarrierActiveKey},
		{"KeysIndependent", testBarrierKeys},
		{"InvalidArguments", testBarrierInvalid},
		{"CancelledContext", testBarrierCancelled},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newBarriers(t)) })
	}
}

func TestMemoryBarriers(t *testing.T) {
	runBarriers(t, func(*testing.T) dedupe.Barriers { return dedupe.NewMemoryBarriers() })
}

func TestRedisBarriers(t *testing.T) {
	srv := services.NewRedis(t)
	client := newClient(t, srv.Addr)
	runBarriers(t, func(t *testing.T) dedupe.Barriers { return dedupe.NewRedisBarriers(client, uniquePrefix(t)) })
}

// barrierOps wraps b with helpers that fail the test on an error.
type barrierOps struct {
	t *testing.T
	b dedupe.Barriers
}

func (o barrierOps) enter(key string, tier int, origin string, ttl time.Duration) {
	o.t.Helper()
	if err := o.b.Enter(o.t.Context(), key, tier, origin, ttl); err != nil {
		o.t.Fatalf("Enter(%s, %d, %s): %v", key, tier, origin, err)
	}
}

func (o barrierOps) leave(key, origin string, tiers ...int) {
	o.t.Helper()
	if err := o.b.Leave(o.t.Context(), key, origin, tiers...); err != nil {
		o.t.Fatalf("Leave(%s, %s, %v): %v", key, origin, tiers, err)
	}
}

func (o barrierOps) behind(key string, tier int) bool {
	o.t.Helper()
	ok, err := o.b.Behind(o.t.Context(), key, tier)
	if err != nil {
		o.t.Fatalf("Behind(%s, %d): %v", key, tier, err)
	}
	return ok
}

// wantBehind checks Behind(key, tier) for tiers 0..len(want)-1.
func (o barrierOps) wantBehind(key string, want ...bool) {
	o.t.Helper()
	for tier, w := range want {
		if got := o.behind(key, tier); got != w {
			o.t.Fatalf("Behind(%s, %d) = %v, want %v", key, tier, got, w)
		}
	}
}

func testBarrierBehind(t *testing.T, b dedupe.Barriers) {
	o := barrierOps{t, b}
	o.wantBehind("k", false, false, false) // an unknown key
	o.enter("k", 1, "events/0/1", longTTL)
	o.wantBehind("k", true, false, false)  // tier 1 blocks tier 0 only
	o.enter("k", 2, "events/0/1", longTTL) // moved on: enters 2 before leaving 1
	o.leave("k", "events/0/1", 1)
	o.wantBehind("k", true, true, false)
	o.leave("k", "events/0/1", 2)
	o.wantBehind("k", false, false, false)
}

func testBarrierEnterTwice(t *testing.T, b dedupe.Barriers) {
	o := barrierOps{t, b}
	o.enter("k", 1, "events/0/1", longTTL)
	o.enter("k", 1, "events/0/1", longTTL) // a re-sent Enter
	o.leave("k", "events/0/1", 1)
	o.wantBehind("k", false, false) // no phantom left
}

func testBarrierLeaveTwice(t *testing.T, b dedupe.Barriers) {
	o := barrierOps{t, b}
	o.enter("k", 1, "events/0/1", longTTL)
	o.enter("k", 1, "events/0/2", longTTL)
	o.leave("k", "events/0/1", 1)
	o.leave("k", "events/0/1", 1)  // a re-sent Leave
	o.wantBehind("k", true, false) // events/0/2 still holds the key
	o.leave("k", "events/0/2", 1)
	o.wantBehind("k", false)
}

func testBarrierLeaveAbsent(t *testing.T, b dedupe.Barriers) {
	o := barrierOps{t, b}
	o.leave("k", "events/0/1", 1, 2) // a key never entered
	o.enter("k", 2, "events/0/2", longTTL)
	o.leave("k", "events/0/1", 1, 2) // another origin, another tier
	o.leave("k", "events/0/2", 1)
	o.wantBehind("k", true, true, false)
	o.leave("k", "events/0/2") // no tiers
	o.wantBehind("k", true, true, false)
}

func testBarrierLeaveMany(t *testing.T, b dedupe.Barriers) {
	o := barrierOps{t, b}
	o.enter("k", 1, "events/0/1", longTTL) // a leave that never got through
	o.enter("k", 3, "events/0/1", longTTL) // an enter whose park failed
	o.enter("k", 2, "events/0/9", longTTL)
	o.leave("k", "events/0/1", 1, 2, 3)
	o.wantBehind("k", true, true, false, false) // events/0/9 only
}

// A member left behind expires ttl after its Enter.
func testBarrierMemberExpiry(t *testing.T, b dedupe.Barriers) {
	o := barrierOps{t, b}
	start := time.Now()
	o.enter("k", 2, "events/0/1", shortTTL)
	o.enter("k", 1, "events/0/2", longTTL)
	o.wantBehind("k", true, true, false)
	gone := pollBarrier(t, b, "k", 1, false)
	if age := gone.Sub(start); age < shortTTL-clockSlack {
		t.Fatalf("member gone after %v, before its ttl %v", age, shortTTL)
	}
	o.wantBehind("k", true, false) // the long one stays
}

// A key whose records keep entering and leaving does not keep an old member
// alive: only the member's own Enter sets its expiry.
func testBarrierActiveKey(t *testing.T, b dedupe.Barriers) {
	o := barrierOps{t, b}
	start := time.Now()
	o.enter("k", 2, "events/0/1", shortTTL) // a phantom in tier 2
	deadline := start.Add(waitFor)
	for i := 0; ; i++ {
		origin := "events/0/" + string(rune('a'+i%26))
		o.enter("k", 1, origin, longTTL) // the key stays busy in tier 1
		if !o.behind("k", 1) {
			break
		}
		o.leave("k", origin, 1)
		if time.Now().After(deadline) {
			t.Fatalf("an active key kept its tier-2 member alive for %v (ttl %v)", time.Since(start), shortTTL)
		}
		time.Sleep(pollEvery)
	}
	if age := time.Since(start); age < shortTTL-clockSlack {
		t.Fatalf("member gone after %v, before its ttl %v", age, shortTTL)
	}
	o.wantBehind("k", true, false) // the tier-1 member entered last
}

func testBarrierKeys(t *testing.T, b dedupe.Barriers) {
	o := barrierOps{t, b}
	o.enter("a", 1, "events/0/1", longTTL)
	o.wantBehind("b", false)
	o.leave("b", "events/0/1", 1)
	o.wantBehind("a", true)
}

func testBarrierInvalid(t *testing.T, b dedupe.Barriers) {
	ctx := t.Context()
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"tier 0", b.Enter(ctx, "k", 0, "o", longTTL), "tier 0"},
		{"empty origin", b.Enter(ctx, "k", 1, "", longTTL), "origin"},
		{"ttl below 1ms", b.Enter(ctx, "k", 1, "o", time.Microsecond), "ttl"},
		{"leave tier 0", b.Leave(ctx, "k", "o", 0), "tier 0"},
		{"leave empty origin", b.Leave(ctx, "k", "", 1), "origin"},
	} {
		if c.err == nil || errors.Is(c.err, dedupe.ErrUnavailable) || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.name, c.err, c.want)
		}
	}
}

func testBarrierCancelled(t *testing.T, b dedupe.Barriers) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Enter(ctx, "k", 1, "o", longTTL); !errors.Is(err, context.Canceled) {
		t.Errorf("Enter: %v", err)
	}
	if err := b.Leave(ctx, "k", "o", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Leave: %v", err)
	}
	if _, err := b.Behind(ctx, "k", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Behind: %v", err)
	}
	barrierOps{t, b}.wantBehind("k", false) // nothing was entered
}

// pollBarrier polls Behind(key, tier) until it answers want and returns when.
func pollBarrier(t *testing.T, b dedupe.Barriers, key string, tier int, want bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		got, err := b.Behind(t.Context(), key, tier)
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("Behind(%s, %d) still %v after %v", key, tier, got, waitFor)
		}
		time.Sleep(pollEvery)
	}
}

// TestRedisBarriersLayout pins what an operator sees in redis-cli: one sorted
// set per key under the "order.v2:" prefix, member "<tier>|<origin>" scored
// by its expiry, the key's TTL that of its latest member; an old count hash
// under the same key name is not read (a new prefix), and the default
// prefix is apart from every dedupe key.
func TestRedisBarriersLayout(t *testing.T) {
	srv := services.NewRedis(t)
	client := newClient(t, srv.Addr)
	b := dedupe.NewRedisBarriers(client, "")
	key := dedupe.Key("profile", "user-7")
	const redisKey = "fanout:order.v2:profile:user-7"
	ctx := t.Context()
	// What an earlier version left: a count hash under the old prefix.
	if err := client.HSet(ctx, "fanout:order:profile:user-7", "1", 3).Err(); err != nil {
		t.Fatal(err)
	}
	if behind, err := b.Behind(ctx, key, 0); err != nil || behind {
		t.Fatalf("an old count hash is read: %v %v", behind, err)
	}
	if err := b.Enter(ctx, key, 1, "events/3/17", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := b.Enter(ctx, key, 2, "events/3/9", time.Hour); err != nil {
		t.Fatal(err)
	}
	zs, err := client.ZRangeWithScores(ctx, redisKey, 0, -1).Result()
	if err != nil || len(zs) != 2 || zs[0].Member != "1|events/3/17" || zs[1].Member != "2|events/3/9" {
		t.Fatalf("ZRANGE %s = %v, %v", redisKey, zs, err)
	}
	now := float64(time.Now().UnixMilli())
	if d := zs[0].Score - now; d <= 0 || d > float64(time.Minute.Milliseconds()) {
		t.Fatalf("member score %v is not its expiry (now %v + 1m)", zs[0].Score, now)
	}
	ttl, err := client.PTTL(ctx, redisKey).Result()
	if err != nil || ttl <= time.Minute || ttl > time.Hour {
		t.Fatalf("PTTL %s = %v, %v; want the latest member's, in (1m, 1h]", redisKey, ttl, err)
	}
	if err := b.Leave(ctx, key, "events/3/17", 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Leave(ctx, key, "events/3/9", 2); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Exists(ctx, redisKey).Result(); err != nil || n != 0 {
		t.Fatalf("an emptied barrier key stays: EXISTS %d, %v", n, err)
	}
}

// TestRedisBarriersServerDown: every operation reports ErrUnavailable, so a
// fail-open sink can go on without key order.
func TestRedisBarriersServerDown(t *testing.T) {
	srv := services.NewRedis(t)
	b := dedupe.NewRedisBarriers(newClient(t, srv.Addr), "")
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	_, berr := b.Behind(ctx, "k", 0)
	for name, err := range map[string]error{
		"Enter":  b.Enter(ctx, "k", 1, "o", longTTL),
		"Leave":  b.Leave(ctx, "k", "o", 1),
		"Behind": berr,
	} {
		if !errors.Is(err, dedupe.ErrUnavailable) {
			t.Errorf("%s on a stopped server: %v, want ErrUnavailable", name, err)
		}
	}
}

// BenchmarkRedisBarriers measures the round trips of a key-ordered sink: the
// Behind every keyed record asks, and the Enter + Leave of a park through a
// tier. Never gates CI.
func BenchmarkRedisBarriers(b *testing.B) {
	srv := services.NewRedis(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	b.Cleanup(func() { client.Close() })
	br := dedupe.NewRedisBarriers(client, "bench:")
	ctx := context.Background()
	if err := br.Enter(ctx, "k", 1, "events/0/1", time.Hour); err != nil {
		b.Fatal(err)
	}
	b.Run("Behind", func(b *testing.B) {
		for b.Loop() {
			if _, err := br.Behind(ctx, "k", 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("EnterLeave", func(b *testing.B) {
		for b.Loop() {
			if err := br.Enter(ctx, "k", 2, "events/0/2", time.Hour); err != nil {
				b.Fatal(err)
			}
			if err := br.Leave(ctx, "k", "events/0/2", 1, 2); err != nil {
				b.Fatal(err)
			}
		}
	})
}
