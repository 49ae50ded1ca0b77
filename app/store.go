package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/dedupe"
)

// BuildStore returns the dedupe store and its closer: Redis when redis.addr or
// redis.sentinel is set (in the mode redis.mode says or detects), else
// in-memory. A Redis that refuses fanout (login, ACL, TLS) is an error here.
func BuildStore(cfg *config.Config, log *slog.Logger) (dedupe.Store, func(), error) {
	if !cfg.Redis.Enabled() {
		log.Warn("redis.addr is empty: using the in-memory dedupe store, which protects one process only and forgets on restart")
		return NewMemoryStore(), func() {}, nil
	}
	client, err := redisClient(cfg.Redis, log)
	if err != nil {
		return nil, nil, err
	}
	if err := checkRedis(client, cfg.Redis); err != nil {
		client.Close()
		return nil, nil, err
	}
	// Concurrent records share claim and done round trips (pipelines).
	store := dedupe.NewCoalescer(dedupe.NewRedis(client, cfg.Redis.KeyPrefix), dedupe.CoalescerConfig{})
	return redisStore{store, dedupe.NewRedisBarriers(client, cfg.Redis.KeyPrefix+"order.v2:")},
		func() { store.Close(); client.Close() }, nil
}

// The stores fanout builds carry the per-key order barriers of the same
// backend; barriersOf finds them.
type (
	memoryStore struct {
		*dedupe.Memory
		*dedupe.MemoryBarriers
	}
	redisStore struct {
		*dedupe.Coalescer // on a *dedupe.Redis
		*dedupe.RedisBarriers
	}
)

// NewMemoryStore is the in-memory dedupe store with its order barriers: one
// process's, forgotten on restart.
func NewMemoryStore() dedupe.Store {
	return memoryStore{dedupe.NewMemory(), dedupe.NewMemoryBarriers()}
}

// redisClient is go-redis's universal client for r: a failover client
// (through the sentinels) in sentinel mode, a cluster client in cluster mode,
// else a plain client.
func redisClient(r config.Redis, log *slog.Logger) (redis.UniversalClient, error) {
	tlsCfg, err := r.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("redis.tls: %w", err)
	}
	redis.SetLogger(redisLog{log})
	opts := &redis.UniversalOptions{
		Addrs:        r.Addrs(),
		Username:     r.Username,
		Password:     r.Password,
		DB:           r.DB,
		TLSConfig:    tlsCfg,
		DialTimeout:  r.DialTimeout,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
		MaxRetries:   2,
		// A record's context (revoke, drain) interrupts a blocked call
		// instead of waiting out ReadTimeout.
		ContextTimeoutEnabled: true,
	}
	switch r.EffectiveMode() {
	case config.RedisSentinel:
		opts.Addrs = r.Sentinel.Addrs
		opts.MasterName = r.Sentinel.MasterName
		opts.SentinelUsername = r.Sentinel.Username
		opts.SentinelPassword = r.Sentinel.Password
	case config.RedisCluster:
		opts.IsClusterMode = true // also for one configuration endpoint
	}
	return redis.NewUniversalClient(opts), nil
}

// checkRedis asks Redis once at start. A refused login, a missing ACL
// permission or a certificate that does not verify will not heal by waiting,
// so it ends the command naming the cause; an unreachable Redis is left to
// the sinks' dedupe policy, as an outage later would be. go-redis's errors
// name the server and the reason, never a password.
func checkRedis(client redis.UniversalClient, r config.Redis) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.DialTimeout+time.Second)
	defer cancel()
	err := client.Ping(ctx).Err()
	if err == nil || !redisRefused(err) {
		return nil
	}
	where := strings.Join(r.Addrs(), ",")
	if r.EffectiveMode() == config.RedisSentinel {
		where = "primary " + r.Sentinel.MasterName + " via sentinels " + strings.Join(r.Sentinel.Addrs, ",")
	}
	return fmt.Errorf("redis (%s mode, %s) refused fanout: %v", r.EffectiveMode(), where, err)
}

// redisRefused reports whether err is an authentication, permission or TLS
// verification failure rather than an outage.
func redisRefused(err error) bool {
	var reply redis.Error
	if errors.As(err, &reply) {
		for _, p := range []string{"WRONGPASS", "NOAUTH", "NOPERM", "ERR AUTH", "ERR invalid password"} {
			if strings.HasPrefix(reply.Error(), p) {
				return true
			}
		}
		return false
	}
	var (
		verify   *tls.CertificateVerificationError
		alert    tls.AlertError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		header   tls.RecordHeaderError
	)
	// crypto/tls reports the peer's alert (certificate required, bad
	// certificate) as a *net.OpError "remote error".
	var op *net.OpError
	return errors.As(err, &verify) || errors.As(err, &alert) || errors.As(err, &unknown) ||
		errors.As(err, &hostname) || errors.As(err, &header) || (errors.As(err, &op) && op.Op == "remote error")
}

func barriersOf(s dedupe.Store) dedupe.Barriers {
	b, _ := s.(dedupe.Barriers)
	return b
}

// redisLog sends go-redis's own log lines (pool dial failures, which repeat
// many times a second during an outage) to slog at debug level; the pipeline
// already logs each outage once per retry at warn level.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "component", "go-redis")
}
