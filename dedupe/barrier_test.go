package dedupe_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/e2e/services"
)

// One suite over both Barriers implementations.
func runBarriers(t *testing.T, b dedupe.Barriers) {
	ctx := t.Context()
	behind := func(key string, tier int) bool {
		t.Helper()
		ok, err := b.Behind(ctx, key, tier)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	add := func(key string, tier int, d int64, ttl time.Duration) {
		t.Helper()
		if err := b.Add(ctx, key, tier, d, ttl); err != nil {
			t.Fatal(err)
		}
	}
	if behind("k", 0) {
		t.Fatal("an unknown key is behind something")
	}
	add("k", 1, 1, time.Minute)
	if !behind("k", 0) || behind("k", 1) || behind("k", 2) {
		t.Fatal("a record in tier 1 must block tier 0 only")
	}
	add("k", 2, 1, time.Minute) // moved on: 2 before 1 is released
	add("k", 1, -1, time.Minute)
	if !behind("k", 0) || !behind("k", 1) || behind("k", 2) {
		t.Fatal("a record in tier 2 must block tiers 0 and 1")
	}
	add("k", 2, -1, time.Minute)
	if behind("k", 0) {
		t.Fatal("all released, still behind")
	}
	if behind("other", 0) {
		t.Fatal("keys are not independent")
	}
	add("leak", 1, 1, 100*time.Millisecond) // an Add whose produce never happened
	time.Sleep(150 * time.Millisecond)
	if behind("leak", 0) {
		t.Fatal("a leaked count outlived its TTL")
	}
	add("neg", 1, -1, time.Minute) // a release of a count Redis lost
	add("neg", 1, -1, time.Minute)
	add("neg", 1, 1, time.Minute) // a later park must still block
	if !behind("neg", 0) {
		t.Fatal("releases of lost counts went below zero and hid a later park")
	}
}

func TestMemoryBarriers(t *testing.T) { runBarriers(t, dedupe.NewMemoryBarriers()) }

func TestRedisBarriers(t *testing.T) {
	srv := services.NewRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	runBarriers(t, dedupe.NewRedisBarriers(client, "t:order:"))
}
