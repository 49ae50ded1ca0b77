package dedupe

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Barriers record, per sink and record key, which records sit in which retry
// tier, so that a key-ordered sink can park a key's later records behind an
// earlier one instead of delivering them ahead of it. Keys come from
// Key(sink, recordKey).
//
// A record's membership in a tier is a fact named by the record's origin (the
// topic/partition/offset where it first entered fanout, which every copy of
// it carries), not a count: Enter and Leave are idempotent, so a write that a
// client re-sends after a lost reply, or a caller retries after an error that
// may have taken effect, changes nothing the second time. Leave of a member
// that is not there is a no-op.
//
// Every member expires on its own, ttl after its Enter: a member left behind
// (a crash between an Enter and the produce it announced, a Leave that never
// got through) blocks its key for at most ttl, however busy the key is, since
// other members' Enters never extend it.
type Barriers interface {
	// Enter records that the record at origin sits in tier (1 for the first
	// retry tier) of key, for ttl from now. Entering again renews that
	// member's expiry only.
	Enter(ctx context.Context, key string, tier int, origin string, ttl time.Duration) error
	// Leave records that the record at origin is in none of tiers of key.
	Leave(ctx context.Context, key, origin string, tiers ...int) error
	// Behind reports whether key has a live member in a tier above tier.
	Behind(ctx context.Context, key string, tier int) (bool, error)
}

// DefaultBarrierPrefix is the Redis key prefix of RedisBarriers. The dot
// keeps barrier keys apart from dedupe keys under the same configured prefix
// (a sink name, the first part of a dedupe key, cannot hold one), and "v2"
// from the count hashes of earlier versions under "order:", which are never
// read again and expire with their own TTL.
const DefaultBarrierPrefix = "fanout:order.v2:"

// member is a barrier's member name: "<tier>|<origin>". Kafka topic names
// cannot hold '|', so the first one ends the tier.
func member(tier int, origin string) string { return strconv.Itoa(tier) + "|" + origin }

// checkEnter checks ctx and the arguments of one Enter, in that order, and
// returns the ttl as stored.
func checkEnter(ctx context.Context, tier int, origin string, ttl time.Duration) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := validMember(tier, origin); err != nil {
		return 0, err
	}
	return validDuration("barrier ttl", ttl)
}

func validMember(tier int, origin string) error {
	switch {
	case tier < 1:
		return errors.New("dedupe: barrier tier " + strconv.Itoa(tier) + " is below 1")
	case origin == "":
		return errors.New("dedupe: empty barrier origin")
	}
	return nil
}

// RedisBarriers keeps one sorted set per key: member "<tier>|<origin>", score
// the member's expiry in Unix milliseconds of the Redis server's clock (so
// instances with skewed clocks agree). The key itself expires with its latest
// member.
type RedisBarriers struct {
	client redis.UniversalClient
	prefix string
}

// NewRedisBarriers returns Barriers on client; prefix defaults to
// DefaultBarrierPrefix.
func NewRedisBarriers(client redis.UniversalClient, prefix string) *RedisBarriers {
	if prefix == "" {
		prefix = DefaultBarrierPrefix
	}
	return &RedisBarriers{client: client, prefix: prefix}
}

// The scripts read the server's clock (TIME) and then write; Redis 5+
// replicates a script's effects, not the script, so that is allowed.
// ZREMRANGEBYSCORE drops expired members first: a member expires when the
// clock reaches its score, as in MemoryBarriers.
const nowLua = `
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now)
`

// enterScript adds member ARGV[1] with expiry now + ARGV[2] ms and keeps the
// key alive until its latest member's expiry.
var enterScript = redis.NewScript(nowLua + `
redis.call("ZADD", KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call("ZRANGE", KEYS[1], -1, -1, "WITHSCORES")
redis.call("PEXPIREAT", KEYS[1], math.ceil(tonumber(last[2])))
return 1
`)

// behindScript answers 1 if a live member's tier is above ARGV[1].
var behindScript = redis.NewScript(nowLua + `
local tier = tonumber(ARGV[1])
for _, m in ipairs(redis.call("ZRANGE", KEYS[1], 0, -1)) do
  local bar = string.find(m, "|", 1, true)
  if bar and tonumber(string.sub(m, 1, bar - 1)) > tier then return 1 end
end
return 0
`)

// Enter implements Barriers.
func (b *RedisBarriers) Enter(ctx context.Context, key string, tier int, origin string, ttl time.Duration) error {
	ttl, err := checkEnter(ctx, tier, origin, ttl)
	if err != nil {
		return err
	}
	err = enterScript.Run(ctx, b.client, []string{b.prefix + key}, member(tier, origin), ttl.Milliseconds()).Err()
	if err != nil {
		return storeError(ctx, "barrier enter "+key, err)
	}
	return nil
}

// Leave implements Barriers. ZREM is idempotent by itself; an emptied key is
// deleted by Redis.
func (b *RedisBarriers) Leave(ctx context.Context, key, origin string, tiers ...int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(tiers) == 0 {
		return nil
	}
	ms := make([]any, len(tiers))
	for i, t := range tiers {
		if err := validMember(t, origin); err != nil {
			return err
		}
		ms[i] = member(t, origin)
	}
	if err := b.client.ZRem(ctx, b.prefix+key, ms...).Err(); err != nil {
		return storeError(ctx, "barrier leave "+key, err)
	}
	return nil
}

// Behind implements Barriers.
func (b *RedisBarriers) Behind(ctx context.Context, key string, tier int) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	n, err := behindScript.Run(ctx, b.client, []string{b.prefix + key}, tier).Int()
	if err != nil {
		return false, storeError(ctx, "barrier read "+key, err)
	}
	return n == 1, nil
}

// MemoryBarriers keeps the members in memory, for the embedded default.
type MemoryBarriers struct {
	mu  sync.Mutex
	m   map[string]map[string]time.Time // key → member → expiry
	ops int                             // Enters since the last sweep
}

// NewMemoryBarriers returns empty in-memory Barriers.
func NewMemoryBarriers() *MemoryBarriers {
	return &MemoryBarriers{m: map[string]map[string]time.Time{}}
}

// Enter implements Barriers.
func (b *MemoryBarriers) Enter(ctx context.Context, key string, tier int, origin string, ttl time.Duration) error {
	ttl, err := checkEnter(ctx, tier, origin, ttl)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	ms := b.m[key]
	if ms == nil {
		ms = map[string]time.Time{}
		b.m[key] = ms
	}
	ms[member(tier, origin)] = now.Add(ttl)
	if b.ops++; b.ops >= 1024 { // sweep expired members now and then
		b.ops = 0
		for k, ms := range b.m {
			prune(ms, now)
			if len(ms) == 0 {
				delete(b.m, k)
			}
		}
	}
	return nil
}

// Leave implements Barriers.
func (b *MemoryBarriers) Leave(ctx context.Context, key, origin string, tiers ...int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, t := range tiers {
		if err := validMember(t, origin); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ms := b.m[key]
	for _, t := range tiers {
		delete(ms, member(t, origin))
	}
	if len(ms) == 0 {
		delete(b.m, key)
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
	ms := b.m[key]
	prune(ms, time.Now())
	if len(ms) == 0 {
		delete(b.m, key)
	}
	for m := range ms {
		t, _, _ := strings.Cut(m, "|")
		if n, _ := strconv.Atoi(t); n > tier {
			return true, nil
		}
	}
	return false, nil
}

// prune drops the members of ms that expired by now.
func prune(ms map[string]time.Time, now time.Time) {
	for m, exp := range ms {
		if !now.Before(exp) {
			delete(ms, m)
		}
	}
}
