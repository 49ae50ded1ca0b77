package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/naming"
	"github.com/fanout-dev/fanout/pipeline"
	"github.com/fanout-dev/fanout/schemas"
	"github.com/fanout-dev/fanout/sink"
	"github.com/fanout-dev/fanout/tracing"
)

// kafkaOpts are the client options every Kafka client of fanout shares.
func kafkaOpts(cfg *config.Config) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Kafka.Brokers...),
		kgo.ClientID(cfg.Kafka.ClientID),
		// Read the main topic, tiers and DLQs as committed data only: an
		// upstream's aborted transaction is never delivered or replayed.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, kafkaSecurityOpts(cfg)...)
}

// buildCodec returns the schema codec: a Schema Registry when configured, else
// a local directory, else the schemas shipped inside fanout.
func buildCodec(cfg *config.Config) (*schemas.Codec, error) {
	if cfg.Schemas.RegistryURL != "" {
		reg, err := newRegistry(cfg)
		if err != nil {
			return nil, err
		}
		return schemas.NewCodec(reg).WithEventTypes(eventTypes(cfg)), nil
	}
	fsys := schemas.Builtin()
	if cfg.Schemas.Dir != "" {
		fsys = os.DirFS(cfg.Schemas.Dir)
	}
	reg, err := schemas.NewLocal(fsys, cfg.Schemas.Subjects)
	if err != nil {
		return nil, fmt.Errorf("schemas: %w", err)
	}
	return schemas.NewCodec(reg).WithEventTypes(eventTypes(cfg)), nil
}

// buildStore returns the dedupe store and its closer: Redis when redis.addr or
// redis.sentinel is set (in the mode redis.mode says or detects), else
// in-memory. A Redis that refuses fanout (login, ACL, TLS) is an error here.
func buildStore(cfg *config.Config, log *slog.Logger) (dedupe.Store, func(), error) {
	if !cfg.Redis.Enabled() {
		log.Warn("redis.addr is empty: using the in-memory dedupe store, which protects one process only and forgets on restart")
		return memoryStore{dedupe.NewMemory(), dedupe.NewMemoryBarriers()}, func() {}, nil
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

func sinkConfig(s config.Sink) sink.Config {
	var br *sink.BreakerConfig
	if *s.Breaker.Enabled {
		br = &sink.BreakerConfig{
			Window: s.Breaker.Window, MinRequests: s.Breaker.MinRequests, FailureRatio: s.Breaker.FailureRatio,
			OpenFor: s.Breaker.OpenFor, MaxOpenFor: s.Breaker.MaxOpenFor, Probes: s.Breaker.Probes,
			ConsecutiveFailures: s.Breaker.ConsecutiveFailures,
		}
	}
	return sink.Config{
		Breaker: br, RateLimit: sink.LimiterConfig{Rate: s.RateLimit.Rate, Burst: s.RateLimit.Burst},
		Name: s.Name, Method: s.Method, URL: s.URL, Headers: s.Headers, Body: s.Body, ContentType: s.ContentType,
		Timeout: s.Timeout, Attempts: s.Retry.Attempts, BackoffBase: s.Retry.BackoffBase, BackoffCap: s.Retry.BackoffCap,
		RetryAfterCap: s.Retry.RetryAfterCap, RetryStatus: s.Retry.RetryStatus, PermanentStatus: s.Retry.PermanentStatus,
		MaxConns: s.MaxInFlight, Batch: sink.BatchConfig{MaxEvents: s.Batch.MaxEvents, MaxWait: s.Batch.MaxWait, MaxBytes: s.Batch.MaxBytes},
		PropagateHeaders: s.PropagateHeaders, MaxBodyBytes: s.MaxBodyBytes,
		TLS: sinkTLS(s.TLS), Auth: sinkAuth(s.Auth), Signing: sink.SigningConfig{Secrets: s.Signing.Secrets},
	}
}

func sinkTLS(t config.SinkTLS) sink.TLSConfig {
	return sink.TLSConfig{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName, MinVersion: t.MinVersion}
}

func sinkAuth(a config.Auth) sink.AuthConfig {
	o := a.OAuth2
	out := sink.AuthConfig{Type: a.Type, Token: a.Token, TokenFile: a.TokenFile, Username: a.Username, Password: a.Password, Header: a.Header, Value: a.Value,
		OAuth2: sink.OAuth2Config{TokenURL: o.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret, Scopes: o.Scopes,
			Audience: o.Audience, Params: o.Params, AuthStyle: o.AuthStyle, TLS: sinkTLS(o.TLS)}}
	if out.TokenFile != "" {
		out.Token = "" // the file is read, and read again when it changes
	}
	return out
}

var orderings = map[string]consumer.Ordering{
	config.OrderPartition: consumer.ByPartition,
	config.OrderKey:       consumer.ByKey,
	config.OrderUnordered: consumer.Unordered,
}

func startOffset(s config.Sink) kgo.Offset {
	switch s.Start {
	case "latest":
		return kgo.NewOffset().AtEnd()
	case "earliest":
		return kgo.NewOffset().AtStart()
	}
	t, _ := s.StartTime()
	return kgo.NewOffset().AfterMilli(t.UnixMilli())
}

// runner is one sink ready to run: its main-topic consumer and one consumer
// per retry tier, all delivering through the same handler.
type runner struct {
	name      string
	sink      *sink.Sink
	handler   *pipeline.Handler
	consumers []*consumer.Consumer // [0] reads the main topic, [n] retry tier n
}

// stats adds up the consumers' counts.
func (r *runner) stats() consumer.Stats {
	var t consumer.Stats
	for _, c := range r.consumers {
		s := c.Stats()
		t.Handled += s.Handled
		t.Parked += s.Parked
		t.Tiered += s.Tiered
		t.Abandoned += s.Abandoned
		t.Commits += s.Commits
	}
	return t
}

// buildSinks builds the named sinks (all if names is empty).
// selectSinks splits a --sinks flag; every name must be a sink of cfg. An
// empty flag means all sinks (nil).
func selectSinks(cfg *config.Config, flag string) ([]string, error) {
	if flag == "" {
		return nil, nil
	}
	names := strings.Split(flag, ",")
	var errs []error
	for _, n := range names {
		if !slices.ContainsFunc(cfg.Sinks, func(s config.Sink) bool { return s.Name == n }) {
			errs = append(errs, usagef("--sinks: no sink named %q in the config", n))
		}
	}
	return names, errors.Join(errs...)
}

func buildSinks(cfg *config.Config, names []string, codec *schemas.Codec, store dedupe.Store, log *slog.Logger, extra ...kgo.Opt) ([]*runner, error) {
	var out []*runner
	var errs []error
	for _, s := range cfg.Sinks {
		if len(names) > 0 && !slices.Contains(names, s.Name) {
			continue
		}
		r, err := buildSink(cfg, s, codec, store, log, extra...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func buildSink(cfg *config.Config, s config.Sink, codec *schemas.Codec, store dedupe.Store, log *slog.Logger, extra ...kgo.Opt) (*runner, error) {
	sk, h, err := buildHandler(s, codec, store, *s.Dedupe.Enabled, true, log)
	if err != nil {
		return nil, err
	}
	opts := append(kafkaOpts(cfg), append([]kgo.Opt{
		kgo.SessionTimeout(cfg.Kafka.SessionTimeout),
		kgo.RebalanceTimeout(cfg.Kafka.RebalanceTimeout),
	}, extra...)...)
	if cfg.Kafka.InstanceID != "" {
		// Static membership: one id per process, legal in every group it
		// joins (the sink's and each tier's), since ids are unique per group.
		opts = append(opts, kgo.InstanceID(cfg.Kafka.InstanceID))
	}
	r := &runner{name: s.Name, sink: sk, handler: h}
	tiers := make([]*consumer.Tier, len(s.Retry.Tiers)+1) // tiers[n] is tier n; tiers[0] unused
	for n, d := range s.Retry.Tiers {
		tiers[n+1] = &consumer.Tier{Number: n + 1, Topic: s.Retry.TierTopics[n], Delay: d}
	}
	for n := range tiers {
		cc := consumer.Config{
			Sink: s.Name, Topic: cfg.Kafka.Topic, Group: naming.Group(cfg.Kafka.GroupPrefix, s.Name), DLQTopic: s.DLQTopic,
			Ordering: orderings[s.Ordering], MaxInFlight: s.MaxInFlight, Start: startOffset(s),
			RevokeTimeout: cfg.Run.RevokeTimeout, DrainTimeout: cfg.Run.DrainTimeout, Tier: n,
		}
		if n > 0 {
			// A tier starts at its beginning: everything parked there is owed.
			cc.Topic, cc.Group, cc.Start = tiers[n].Topic, naming.TierGroup(cfg.Kafka.GroupPrefix, s.Name, n), kgo.NewOffset().AtStart()
		}
		if n+1 < len(tiers) {
			cc.Retry = tiers[n+1]
		}
		c, err := consumer.New(cc, h, log, opts...)
		if err != nil {
			return nil, err
		}
		r.consumers = append(r.consumers, c)
	}
	return r, nil
}

// buildHandler builds a sink's HTTP side (with its breaker's transitions
// logged) and its per-record handler. withDedupe turns claims on; keyOrder
// keeps a key-ordered sink's order across its retry tiers, which only the
// sink's consumers (not a replay or a redrive) park into.
func buildHandler(s config.Sink, codec *schemas.Codec, store dedupe.Store, withDedupe, keyOrder bool, log *slog.Logger) (*sink.Sink, *pipeline.Handler, error) {
	sk, err := sink.New(sinkConfig(s), log)
	if err != nil {
		return nil, nil, err
	}
	if br := sk.Breaker(); br != nil {
		name := s.Name
		br.OnChange(func(from, to sink.State) {
			lvl := slog.LevelWarn
			if to == sink.Closed {
				lvl = slog.LevelInfo
			}
			log.Log(context.Background(), lvl, "circuit breaker "+to.String(), "sink", name, "from", from.String(), "to", to.String())
		})
	}
	pc := pipeline.Config{
		Sink: s.Name, IDField: s.IDField, Types: s.Types, Dedupe: withDedupe,
		FailOpen: s.Dedupe.Policy == config.FailOpen, DoneTTL: s.Dedupe.TTL, Lease: s.Dedupe.Lease,
		MaxEventBytes: s.MaxEventBytes, MaxEventAge: s.MaxEventAge,
		Redact: secrets.String,
	}
	if keyOrder {
		pc.KeyOrder, pc.Tiers, pc.BarrierTTL = s.Ordering == config.OrderKey, len(s.Retry.Tiers), barrierTTL(s)
	}
	h, err := pipeline.New(pc, codec, store, pipeline.HTTPSink(sk), log)
	if err != nil {
		sk.Close()
		return nil, nil, err
	}
	if keyOrder {
		h.WithBarriers(barriersOf(store))
	}
	return sk, h, nil
}

// barrierTTL is pipeline.Config.BarrierTTL for s: how long one record's
// membership in a tier of its key lasts after it entered (per member; other
// records' entries never extend it): twice the sum of the tier delays, plus
// 10 minutes.
func barrierTTL(s config.Sink) time.Duration {
	var sum time.Duration
	for _, d := range s.Retry.Tiers {
		sum += d
	}
	return 2*sum + 10*time.Minute
}

// summary is one sink's counts, as printed by demo and logged by run.
type summary struct {
	Sink         string `json:"sink"`
	Delivered    int64  `json:"delivered"`
	Retried      int64  `json:"retried"`
	DeadLettered int64  `json:"dead_lettered"`
	Tiered       int64  `json:"parked_in_retry_tiers"`
	Duplicates   int64  `json:"duplicates_suppressed"`
	Skipped      int64  `json:"skipped"`
	Abandoned    int64  `json:"abandoned"`
	Unprotected  int64  `json:"unprotected"` // delivered without a claim (fail-open, Redis down)
	Breaker      string `json:"breaker,omitempty"`
}

func (r *runner) summary() summary {
	h, c := r.handler.Stats(), r.stats()
	s := summary{Sink: r.name, Delivered: h.Delivered, Retried: h.Retried, DeadLettered: c.Parked, Tiered: c.Tiered,
		Duplicates: h.Duplicates, Skipped: h.Skipped, Abandoned: c.Abandoned, Unprotected: h.Unprotected}
	if br := r.sink.Breaker(); br != nil {
		s.Breaker = br.State().String()
	}
	return s
}

// every calls fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// redisLog sends go-redis's own log lines (pool dial failures, which repeat
// many times a second during an outage) to slog at debug level; the pipeline
// already logs each outage once per retry at warn level.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "component", "go-redis")
}

// startTracing installs the propagator and, when cfg (or the OTEL_EXPORTER_OTLP_*
// environment) names an OTLP endpoint, exports spans to it. The returned func
// flushes the spans still buffered, waiting at most 5s; defer it.
// eventRuntime is what every command that handles events opens first, after the
// config: tracing (spans exported until close) and the schema codec.
type eventRuntime struct {
	codec *schemas.Codec
	close func()
}

// openRuntime starts tracing and builds the codec; the one preamble of run,
// emit, replay and dlq redrive.
func openRuntime(cfg *config.Config, log *slog.Logger) (*eventRuntime, error) {
	stop, err := startTracing(cfg, log)
	if err != nil {
		return nil, err
	}
	codec, err := buildCodec(cfg)
	if err != nil {
		stop()
		return nil, err
	}
	return &eventRuntime{codec: codec, close: stop}, nil
}

func startTracing(cfg *config.Config, log *slog.Logger) (func(), error) {
	shutdown, endpoint, err := tracing.Start(tracing.Config{
		Endpoint: cfg.Tracing.OTLPEndpoint, SampleRatio: cfg.Tracing.SampleRatio, ServiceName: cfg.Tracing.ServiceName,
		Headers: cfg.Tracing.Headers, Redact: secrets.String,
	})
	if err != nil {
		return nil, usagef("%v", err)
	}
	if endpoint != "" {
		log.Info("exporting spans", "endpoint", endpoint)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("spans not exported", "err", err)
		}
	}, nil
}
