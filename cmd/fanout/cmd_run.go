package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/naming"

	"golang.org/x/sync/errgroup"
)

// runCommand is the "fanout run" command.
func runCommand() *command {
	return &command{
		name: "run", args: "-c FILE [--sinks a,b]", short: "run the sinks of a config file",
		long: `Runs every sink of the config (or only those named by --sinks), each in its own
consumer group. Several instances started with the same file share the partitions.
SIGTERM or SIGINT stops fetching, drains in-flight deliveries within
run.drain_timeout, commits what is done and leaves the groups.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			file := fs.String("c", "", "config `FILE` (required)")
			sinks := fs.String("sinks", "", "comma-separated sink names to run (default all)")
			statsEvery := fs.Duration("stats-interval", 30*time.Second, "how often to log each sink's counts (0: never)")
			adminAddr := fs.String("admin", "", "serve /healthz, /readyz, /metrics, /api/sinks (and /debug/pprof with run.admin_pprof) on `ADDR` (default run.admin_addr; none if both are empty; not loopback only with run.admin_token)")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				cfg, err := loadConfig(*file)
				if err != nil {
					return err
				}
				// An unsafe admin address fails before anything connects.
				if err := config.AdminExposed(cmp.Or(*adminAddr, cfg.Run.AdminAddr), cfg.Run.AdminToken); err != nil {
					return usagef("admin listener: %v", err)
				}
				names, err := selectSinks(cfg, *sinks)
				if err != nil {
					return err
				}
				rt, err := openRuntime(cfg, e.log)
				if err != nil {
					return err
				}
				defer rt.close()
				codec := rt.codec
				if ps := typeProblems(ctx, cfg, names, true, e.log); len(ps) > 0 {
					return &config.Error{File: *file, Problems: ps}
				}
				store, closeStore, err := buildStore(cfg, e.log)
				if err != nil {
					return err
				}
				defer closeStore()
				limits, err := checkTopics(ctx, cfg, names, e.log)
				if err != nil {
					return err
				}
				if err := fitEventBytes(cfg, names, limits, e.log); err != nil {
					return err
				}
				// The parking producer is sized from the park topics' limits.
				runners, err := buildSinks(cfg, names, codec, store, e.log, consumer.ProducerSizing(limits))
				if err != nil {
					return err
				}
				adm := &admin{runners: runners, started: time.Now(), token: cfg.Run.AdminToken, pprof: cfg.Run.AdminPprof, runtimeMetrics: true}
				if addr := cmp.Or(*adminAddr, cfg.Run.AdminAddr); addr != "" {
					stop, err := serveAdmin(addr, adm, e.log)
					if err != nil {
						return err
					}
					defer stop()
				}
				defer context.AfterFunc(ctx, func() { adm.draining.Store(true) })()
				return runAll(ctx, e, runners, *statsEvery)
			}
		},
	}
}

// runAll runs the sinks until ctx ends and they have drained.
func runAll(ctx context.Context, e *env, runners []*runner, statsEvery time.Duration) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, r := range runners {
		for _, c := range r.consumers {
			g.Go(func() error { return c.Run(gctx) })
		}
	}
	if statsEvery > 0 {
		g.Go(func() error {
			every(gctx, statsEvery, func() {
				for _, r := range runners {
					s := r.summary()
					e.log.Info("sink stats", "sink", s.Sink, "delivered", s.Delivered, "retried", s.Retried,
						"in_retry_tiers", s.Tiered, "dead_lettered", s.DeadLettered, "duplicates", s.Duplicates, "skipped", s.Skipped,
						"unprotected", s.Unprotected, "breaker", s.Breaker)
				}
			})
			return nil
		})
	}
	err := g.Wait()
	for _, r := range runners {
		r.sink.Close()
	}
	return err
}

// checkTopics fails fast, naming them, when topics the sinks read or park into
// are missing: running without them would stall at the first park. It
// returns their max.message.bytes (see topicLimits).
func checkTopics(ctx context.Context, cfg *config.Config, names []string, log *slog.Logger) (map[string]int32, error) {
	want := []string{cfg.Kafka.Topic}
	for _, s := range cfg.Sinks {
		if len(names) == 0 || slices.Contains(names, s.Name) {
			want = append(append(want, s.DLQTopic), s.Retry.TierTopics...)
		}
	}
	cl, err := kgo.NewClient(kafkaOpts(cfg)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	// A topic created a moment ago can be unknown to the broker's metadata
	// for a little while: look again for up to 15s before calling it missing.
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(15 * time.Second)
	var missing []string
	for {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		details, err := adm.ListTopics(tctx, want...)
		cancel()
		if errors.Is(err, kerr.TopicAuthorizationFailed) {
			return nil, deniedTopic(ctx, cfg, adm, want, err)
		}
		if err != nil {
			if err := kafkaError(cfg, err); consumer.Denied(err) {
				return nil, err
			}
			return nil, fmt.Errorf("check topics (is Kafka at %s reachable?): %w", strings.Join(cfg.Kafka.Brokers, ","), kafkaError(cfg, err))
		}
		missing = missing[:0]
		for _, t := range want {
			if d, ok := details[t]; ok && errors.Is(d.Err, kerr.TopicAuthorizationFailed) {
				return nil, deniedTopic(ctx, cfg, adm, []string{t}, d.Err)
			}
			if d, ok := details[t]; !ok || d.Err != nil {
				missing = append(missing, t)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing topics %s: create them with fanout topics ensure -c FILE", strings.Join(missing, ", "))
	}
	var groups []string
	for _, s := range cfg.Sinks {
		if len(names) == 0 || slices.Contains(names, s.Name) {
			groups = append(groups, naming.Group(cfg.Kafka.GroupPrefix, s.Name))
			for n := range s.Retry.TierTopics {
				groups = append(groups, naming.TierGroup(cfg.Kafka.GroupPrefix, s.Name, n+1))
			}
		}
	}
	if err := checkGroupAccess(ctx, cfg, adm, groups); err != nil {
		return nil, err
	}
	need := map[string][]kadm.ACLOperation{cfg.Kafka.Topic: {kadm.OpRead}}
	for _, s := range cfg.Sinks {
		if len(names) == 0 || slices.Contains(names, s.Name) {
			need[s.DLQTopic] = append(need[s.DLQTopic], kadm.OpWrite)
			for _, t := range s.Retry.TierTopics {
				need[t] = append(need[t], kadm.OpRead, kadm.OpWrite)
			}
		}
	}
	if err := checkTopicOps(ctx, cfg, cl, need); err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return topicLimits(tctx, adm, want, log), nil
}
