package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/consumer"
	"golang.org/x/sync/errgroup"
)

// Service is what `fanout run` runs: the selected sinks' Runners, built
// after the start checks passed.
type Service struct {
	Runners []*Runner
	closers // Close releases the dedupe store and the tracing
}

// Prepare does what `fanout run` does before it consumes: opens the codec
// and tracing, checks the sinks' event types against the schemas (a
// *config.Error naming file), opens the dedupe store, checks the topics and
// that an event fits them, and builds the runners, their parking producers
// sized from the park topics' limits.
func Prepare(ctx context.Context, cfg *config.Config, file string, names []string, log *slog.Logger) (*Service, error) {
	s := &Service{}
	rt, err := Open(cfg, log)
	if err != nil {
		return nil, err
	}
	s.add(rt.Close)
	fail := func(err error) (*Service, error) { s.Close(); return nil, err }
	if ps := TypeProblems(ctx, cfg, names, true, log); len(ps) > 0 {
		return fail(&config.Error{File: file, Problems: ps})
	}
	store, closeStore, err := BuildStore(cfg, log)
	if err != nil {
		return fail(err)
	}
	s.add(closeStore)
	limits, err := CheckTopics(ctx, cfg, names, log)
	if err != nil {
		return fail(err)
	}
	if err := FitEventBytes(cfg, names, limits, log); err != nil {
		return fail(err)
	}
	if s.Runners, err = BuildSinks(cfg, names, rt.Codec, store, log, consumer.ProducerSizing(limits)); err != nil {
		return fail(err)
	}
	return s, nil
}

// RunAll runs the sinks until ctx ends and they have drained, logging each
// sink's counts every statsEvery (never if 0).
func RunAll(ctx context.Context, runners []*Runner, statsEvery time.Duration, log *slog.Logger) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, r := range runners {
		for _, c := range r.Consumers {
			g.Go(func() error { return c.Run(gctx) })
		}
	}
	if statsEvery > 0 {
		g.Go(func() error {
			Every(gctx, statsEvery, func() {
				for _, r := range runners {
					s := r.Summary()
					log.Info("sink stats", "sink", s.Sink, "delivered", s.Delivered, "retried", s.Retried,
						"in_retry_tiers", s.Tiered, "dead_lettered", s.DeadLettered, "duplicates", s.Duplicates, "skipped", s.Skipped,
						"unprotected", s.Unprotected, "breaker", s.Breaker)
				}
			})
			return nil
		})
	}
	err := g.Wait()
	for _, r := range runners {
		r.Sink.Close()
	}
	return err
}

// Every calls fn every d until ctx ends.
func Every(ctx context.Context, d time.Duration, fn func()) {
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
