package dedupe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the Redis key prefix NewRedis uses when given none.
const DefaultPrefix = "fanout:dedupe:"

// Values stored under a key. A pending value is pendingPrefix+token and the done
// value has no such prefix, so no token, whatever its bytes, reads as done.
const (
	pendingPrefix = "pending:"
	doneValue     = "done"
)

// releaseScript deletes KEYS[1] only if it still holds the caller's pending
// value: a stale owner whose lease expired must not delete the next owner's
// claim. Lua runs atomically on the server.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`)

// extendScript resets KEYS[1]'s TTL to ARGV[2] ms only if it still holds the
// caller's pending value ARGV[1].
var extendScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
`)

// Redis is a Store and Batcher backed by Redis. It is safe for concurrent use.
//
// A key's value is "pending:<token>" with the lease as its TTL, or "done" with
// the done TTL. Claim is one SET key value NX GET PX lease (Redis 7.0+), so
// claiming and reading the current owner is atomic; Release is a Lua
// compare-and-delete. Each key is touched by single-key commands only, so
// Redis Cluster works (pipelines are split per node by go-redis).
type Redis struct {
	client redis.UniversalClient
	prefix string
}

var (
	_ Store   = (*Redis)(nil)
	_ Batcher = (*Redis)(nil)
)

// NewRedis returns a store on client whose Redis keys are prefix+key; an empty
// prefix means DefaultPrefix. The caller owns client and closes it.
//
// go-redis retries a command after a dropped connection or a read timeout
// (Options.MaxRetries, default 3); a retried Claim that finds its own first
// write answers Claimed. Configure the client for the time the caller can
// wait: DialTimeout, DialerRetries, ReadTimeout and MaxRetries bound how long a
// down or hung Redis takes to be reported as ErrUnavailable, and without
// ContextTimeoutEnabled go-redis does not stop a blocked read at the ctx
// deadline (the call then returns the ctx error, but only after ReadTimeout).
// After PoolSize failed dials in a row go-redis fails fast and probes the
// server once a second, so recovery after an outage takes up to a second.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Redis{client: client, prefix: prefix}
}

// Claim implements Store.
func (s *Redis) Claim(ctx context.Context, key, token string, lease time.Duration) (Outcome, error) {
	lease, err := checkClaim(ctx, token, lease)
	if err != nil {
		return 0, err
	}
	o, err := claimOutcome(s.claimCmd(ctx, s.client, key, token, lease), token)
	if err != nil {
		return 0, s.fail(ctx, "claim "+key, err)
	}
	return o, nil
}

// Done implements Store.
func (s *Redis) Done(ctx context.Context, key string, ttl time.Duration) error {
	ttl, err := checkDuration(ctx, "done ttl", ttl)
	if err != nil {
		return err
	}
	if err := s.client.Set(ctx, s.prefix+key, doneValue, ttl).Err(); err != nil {
		return s.fail(ctx, "done "+key, err)
	}
	return nil
}

// Release implements Store.
func (s *Redis) Release(ctx context.Context, key, token string) error {
	if err := checkRelease(ctx, token); err != nil {
		return err
	}
	// Run tries EVALSHA and falls back to EVAL on NOSCRIPT, so a restarted
	// server with an empty script cache is fine.
	err := releaseScript.Run(ctx, s.client, []string{s.prefix + key}, pendingPrefix+token).Err()
	if err != nil {
		return s.fail(ctx, "release "+key, err)
	}
	return nil
}

// Extend implements Extender.
func (s *Redis) Extend(ctx context.Context, key, token string, lease time.Duration) (bool, error) {
	lease, err := checkClaim(ctx, token, lease)
	if err != nil {
		return false, err
	}
	n, err := extendScript.Run(ctx, s.client, []string{s.prefix + key}, pendingPrefix+token, lease.Milliseconds()).Int()
	if err != nil {
		return false, s.fail(ctx, "extend "+key, err)
	}
	return n == 1, nil
}

// ClaimBatch implements Batcher with one pipeline round trip (one per node on a
// Cluster).
func (s *Redis) ClaimBatch(ctx context.Context, reqs []ClaimRequest) ([]Outcome, error) {
	leases, err := checkClaims(ctx, reqs)
	if err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return []Outcome{}, nil
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.StatusCmd, len(reqs))
	for i, r := range reqs {
		cmds[i] = s.claimCmd(ctx, pipe, r.Key, r.Token, leases[i])
	}
	// Exec's error is the first command's error, which is redis.Nil for a
	// fresh key; look at every command instead.
	_, _ = pipe.Exec(ctx)
	outs := make([]Outcome, len(reqs))
	for i, cmd := range cmds {
		o, err := claimOutcome(cmd, reqs[i].Token)
		if err != nil {
			return nil, s.fail(ctx, fmt.Sprintf("claim batch of %d", len(reqs)), err)
		}
		outs[i] = o
	}
	return outs, nil
}

// DoneBatch implements Batcher with one pipeline round trip (one per node on a
// Cluster).
func (s *Redis) DoneBatch(ctx context.Context, keys []string, ttl time.Duration) error {
	ttl, err := checkDuration(ctx, "done ttl", ttl)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	pipe := s.client.Pipeline()
	for _, k := range keys {
		pipe.Set(ctx, s.prefix+k, doneValue, ttl)
	}
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		return nil
	}
	for _, cmd := range cmds {
		if cmd.Err() != nil {
			err = cmd.Err()
			break
		}
	}
	return s.fail(ctx, fmt.Sprintf("done batch of %d", len(keys)), err)
}

// claimCmd queues or runs SET prefix+key pending:token NX GET PX lease.
func (s *Redis) claimCmd(ctx context.Context, c redis.Cmdable, key, token string, lease time.Duration) *redis.StatusCmd {
	return c.SetArgs(ctx, s.prefix+key, pendingPrefix+token, redis.SetArgs{
		Mode: "NX",
		Get:  true,
		TTL:  lease,
	})
}

// claimOutcome reads the old value returned by SET NX GET: none means this call
// set the key; our own pending value means an earlier attempt of this claim
// (or of this owner) did.
func claimOutcome(cmd *redis.StatusCmd, token string) (Outcome, error) {
	old, err := cmd.Result()
	switch {
	case errors.Is(err, redis.Nil):
		return Claimed, nil
	case err != nil:
		return 0, err
	case old == pendingPrefix+token:
		return Claimed, nil
	case old == doneValue:
		return Duplicate, nil
	default:
		return Busy, nil
	}
}

// fail wraps err from the client for the caller: the ctx error if ctx ended
// (go-redis may report that as a socket timeout), ErrUnavailable for
// connectivity, timeouts and transient server states, and err as is for any
// other server reply.
func (s *Redis) fail(ctx context.Context, op string, err error) error {
	return storeError(ctx, op, err)
}

// storeError is how every Redis-backed type reports a failed call: the ctx
// error if ctx ended, ErrUnavailable for an outage, the reply otherwise.
func storeError(ctx context.Context, op string, err error) error {
	if ctxErr := ctxEnded(ctx); ctxErr != nil {
		return fmt.Errorf("dedupe: %s: %w", op, ctxErr)
	}
	var reply redis.Error
	if errors.As(err, &reply) && !transientReply(err) {
		return fmt.Errorf("dedupe: %s: %w", op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// ctxEnded returns ctx's error, or DeadlineExceeded once ctx's deadline has
// passed: a socket deadline set from ctx (ContextTimeoutEnabled) can fire a
// moment before ctx's own timer marks it done.
func ctxEnded(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// transientReply reports whether a server error reply means the store cannot
// take writes right now, rather than that the request is wrong.
func transientReply(err error) bool {
	return redis.IsLoadingError(err) ||
		redis.IsReadOnlyError(err) ||
		redis.IsMasterDownError(err) ||
		redis.IsClusterDownError(err) ||
		redis.IsTryAgainError(err) ||
		redis.IsMaxClientsError(err) ||
		redis.IsOOMError(err) ||
		redis.HasErrorPrefix(err, "BUSY ")
}
