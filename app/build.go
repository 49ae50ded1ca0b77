package app

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/naming"
	"github.com/fanout-dev/fanout/pipeline"
	"github.com/fanout-dev/fanout/schemas"
	"github.com/fanout-dev/fanout/sink"
)

// sinkConfig is the sink.Config of s.
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

// Orderings maps a sink's ordering setting to the consumer's Ordering.
var Orderings = map[string]consumer.Ordering{
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

// Runner is one sink ready to run: its main-topic consumer and one consumer
// per retry tier, all delivering through the same handler.
type Runner struct {
	Name      string
	Sink      *sink.Sink
	Handler   *pipeline.Handler
	Consumers []*consumer.Consumer // [0] reads the main topic, [n] retry tier n
}

// Stats adds up the consumers' counts.
func (r *Runner) Stats() consumer.Stats {
	var t consumer.Stats
	for _, c := range r.Consumers {
		s := c.Stats()
		t.Handled += s.Handled
		t.Parked += s.Parked
		t.Tiered += s.Tiered
		t.Abandoned += s.Abandoned
		t.Commits += s.Commits
	}
	return t
}

// SelectSinks splits a --sinks flag; every name must be a sink of cfg. An
// empty flag means all sinks (nil).
func SelectSinks(cfg *config.Config, flag string) ([]string, error) {
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

// BuildSinks builds the named sinks (all if names is empty).
func BuildSinks(cfg *config.Config, names []string, codec *schemas.Codec, store dedupe.Store, log *slog.Logger, extra ...kgo.Opt) ([]*Runner, error) {
	var out []*Runner
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

func buildSink(cfg *config.Config, s config.Sink, codec *schemas.Codec, store dedupe.Store, log *slog.Logger, extra ...kgo.Opt) (*Runner, error) {
	sk, h, err := BuildHandler(s, codec, store, *s.Dedupe.Enabled, true, log)
	if err != nil {
		return nil, err
	}
	opts := append(KafkaOpts(cfg), append([]kgo.Opt{
		kgo.SessionTimeout(cfg.Kafka.SessionTimeout),
		kgo.RebalanceTimeout(cfg.Kafka.RebalanceTimeout),
	}, extra...)...)
	if cfg.Kafka.InstanceID != "" {
		// Static membership: one id per process, legal in every group it
		// joins (the sink's and each tier's), since ids are unique per group.
		opts = append(opts, kgo.InstanceID(cfg.Kafka.InstanceID))
	}
	r := &Runner{Name: s.Name, Sink: sk, Handler: h}
	tiers := make([]*consumer.Tier, len(s.Retry.Tiers)+1) // tiers[n] is tier n; tiers[0] unused
	for n, d := range s.Retry.Tiers {
		tiers[n+1] = &consumer.Tier{Number: n + 1, Topic: s.Retry.TierTopics[n], Delay: d}
	}
	for n := range tiers {
		cc := consumer.Config{
			Sink: s.Name, Topic: cfg.Kafka.Topic, Group: naming.Group(cfg.Kafka.GroupPrefix, s.Name), DLQTopic: s.DLQTopic,
			Ordering: Orderings[s.Ordering], MaxInFlight: s.MaxInFlight, Start: startOffset(s),
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
		r.Consumers = append(r.Consumers, c)
	}
	return r, nil
}

// BuildHandler builds a sink's HTTP side (with its breaker's transitions
// logged) and its per-record handler. withDedupe turns claims on; keyOrder
// keeps a key-ordered sink's order across its retry tiers, which only the
// sink's consumers (not a replay or a redrive) park into.
func BuildHandler(s config.Sink, codec *schemas.Codec, store dedupe.Store, withDedupe, keyOrder bool, log *slog.Logger) (*sink.Sink, *pipeline.Handler, error) {
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
		Redact: Secrets.String,
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

// Summary is one sink's counts, as printed by demo and logged by run.
type Summary struct {
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

// Summary is r's counts now.
func (r *Runner) Summary() Summary {
	h, c := r.Handler.Stats(), r.Stats()
	s := Summary{Sink: r.Name, Delivered: h.Delivered, Retried: h.Retried, DeadLettered: c.Parked, Tiered: c.Tiered,
		Duplicates: h.Duplicates, Skipped: h.Skipped, Abandoned: c.Abandoned, Unprotected: h.Unprotected}
	if br := r.Sink.Breaker(); br != nil {
		s.Breaker = br.State().String()
	}
	return s
}
