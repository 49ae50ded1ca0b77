package app

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"
)

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
