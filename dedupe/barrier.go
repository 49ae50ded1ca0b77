package dedupe

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Barriers counts, per sink and record key, the records parked in each retry
// tier, so that a key-ordered sink can park a key's later records behind an
// earlier one instead of delivering them ahead of it. Keys come from Key(sink,
// recordKey).
//
// Counts are a cache of what the tier topics hold, kept with a TTL that every
// Add renews: a count left behind by a crash between an Add and the produce it
// announced blocks its key only until the TTL ends, never for good.
type Barriers interface {
	// Add changes key's count in tier by delta and renews the key's TTL.
	Add(ctx context.Context, key string, tier int, delta int64, ttl time.Duration) error
	// Behind reports whether key has records parked in a tier above tier.
	Behind(ctx context.Context, key string, tier int) (bool, error)
}

// RedisBarriers keeps the counts in one Redis hash per key (field = tier).
type RedisBarriers struct {
	client redis.UniversalClient
	prefix string
}

// NewRedisBarriers returns Barriers on client; prefix defaults to
// "fanout:order:".
func NewRedisBarriers(client redis.UniversalClient, prefix string) *RedisBarriers {
	if prefix == "" {
		prefix = "fanout:order:"
	}
	return &RedisBarriers{client: client, prefix: prefix}
}

// addScript adds ARGV[2] to field ARGV[1], never below zero, and renews the
// TTL (ARGV[3] ms). The floor matters after Redis lost data: releases of
// counts it no longer has must not go negative and hide later parks.
var addScript = redis.NewScript(`
local v = redis.call("HINCRBY", KEYS[1], ARGV[1], ARGV[2])
if v < 0 then redis.call("HSET", KEYS[1], ARGV[1], 0) end
redis.call("PEXPIRE", KEYS[1], ARGV[3])
return v
`)

// Add implements Barriers.
func (b *RedisBarriers) Add(ctx context.Context, key string, tier int, delta int64, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := addScript.Run(ctx, b.client, []string{b.prefix + key}, strconv.Itoa(tier), delta, ttl.Milliseconds()).Err()
	if err != nil {
		return storeError(ctx, "barrier add "+key, err)
	}
	return nil
}

// Behind implements Barriers.
func (b *RedisBarriers) Behind(ctx context.Context, key string, tier int) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m, err := b.client.HGetAll(ctx, b.prefix+key).Result()
	if err != nil {
		return false, storeError(ctx, "barrier read "+key, err)
	}
	for f, v := range m {
		t, _ := strconv.Atoi(f)
		if n, _ := strconv.ParseInt(v, 10, 64); t > tier && n > 0 {
			return true, nil
		}
	}
	return false, nil
}

// MemoryBarriers keeps the counts in memory, for the embedded default.
type MemoryBarriers struct {
	mu sync.Mutex
	m  map[string]*barrier
}

type barrier struct {
	tiers   map[int]int64
	expires time.Time
}

// NewMemoryBarriers returns empty in-memory Barriers.
func NewMemoryBarriers() *MemoryBarriers { return &MemoryBarriers{m: map[string]*barrier{}} }

// Add implements Barriers.
func (b *MemoryBarriers) Add(ctx context.Context, key string, tier int, delta int64, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	e := b.m[key]
	if e == nil || !now.Before(e.expires) {
		e = &barrier{tiers: map[int]int64{}}
		b.m[key] = e
	}
	e.tiers[tier] = max(e.tiers[tier]+delta, 0) // see addScript
	e.expires = now.Add(ttl)
	if len(b.m) > 1024 && len(b.m)%1024 == 0 { // sweep expired keys now and then
		for k, x := range b.m {
			if !now.Before(x.expires) {
				delete(b.m, k)
			}
		}
	}
	return nil
}

// Behind implements Barriers.
func (b *MemoryBarriers) Behind(ctx context.Context, key string, tier int) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.m[key]
	if e == nil || !time.Now().Before(e.expires) {
		return false, nil
	}
	for t, n := range e.tiers {
		if t > tier && n > 0 {
			return true, nil
		}
	}
	return false, nil
}
