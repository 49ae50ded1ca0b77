package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// sinkSpec is one sink of a fanout run and its target.
type sinkSpec struct {
	name     string
	ordering string
	inFlight int
	latency  time.Duration
	// batch > 0 batches the sink: batch: {max_events: batch} in its config.
	// Its target then must get CloudEvents batches only.
	batch int
	// wait: the run ends once this sink's target has every event. A sink
	// without wait (the slow API) is measured over whatever arrived.
	wait bool
}

// runSpec is one `fanout run` process over one batch.
type runSpec struct {
	scenario, run string
	b             *batch
	partitions    int
	sinks         []sinkSpec
	// window > 0 ends the run after that long even if events are left (a
	// backlog is measured while being drained, not to its end).
	window time.Duration
	// during, if set, runs once the process started (a producer at a fixed
	// rate); the run ends when it has returned and the wait sinks have all.
	during func(ctx context.Context, targets []*target) error
	// from: only events from this index on are measured (warm-up excluded).
	from int
}

// runFanout starts fanout on spec's batch (whose topic exists), waits, stops
// it with SIGTERM and returns one result per sink.
func (e *env) runFanout(ctx context.Context, spec runSpec) ([]result, error) {
	var names []string
	var targets []*target
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	var confs []sinkConf
	for _, s := range spec.sinks {
		t, err := startTarget(spec.b, s.latency)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
		names = append(names, s.name)
		confs = append(confs, sinkConf{name: s.name, url: t.URL, ordering: s.ordering, inFlight: s.inFlight, dedupe: true, batch: s.batch})
	}
	runName := fileName(spec.scenario + "-" + spec.run)
	cfg, err := e.writeConfig(runName, spec.b.topic, confs)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(e.log, "  fanout run: %s (%s), %d events\n", spec.run, strings.Join(names, ", "), spec.b.n)
	c, err := e.startFanout(cfg, filepath.Join(e.dir, runName+".log"))
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			c.stop()
		}
	}()

	rctx, cancel := context.WithTimeout(ctx, e.opts.runTimeout)
	defer cancel()
	if spec.window > 0 {
		var wcancel context.CancelFunc
		rctx, wcancel = context.WithTimeout(rctx, spec.window)
		defer wcancel()
	}
	var waitErr error
	if spec.during != nil {
		waitErr = spec.during(rctx, targets)
	}
	for i, s := range spec.sinks {
		if waitErr != nil {
			break
		}
		if s.wait {
			waitErr = targets[i].waitAll(rctx, c.alive)
		}
	}
	if spec.window > 0 && errors.Is(waitErr, context.DeadlineExceeded) && ctx.Err() == nil {
		waitErr = nil // the window ended the run, as asked
	}
	ended := time.Now()
	u, stopErr := c.stop()
	stopped = true
	if waitErr != nil {
		return nil, fmt.Errorf("%s %s: %w\nfanout log ends:\n%s", spec.scenario, spec.run, waitErr, c.tail(20))
	}
	if stopErr != nil {
		return nil, fmt.Errorf("%s %s: %w", spec.scenario, spec.run, stopErr)
	}

	var results []result
	total := 0
	for i, s := range spec.sinks {
		d := targets[i].delivery(spec.from, spec.b.n)
		total += d.count
		if !s.wait && d.count > 0 {
			// Still delivering when the run ended: its rate is what arrived
			// from its first receipt to the end of the run.
			d.rate = float64(d.count) / ended.Sub(d.first).Seconds()
		}
		results = append(results, result{
			Scenario: spec.scenario, Kind: "fanout", Run: spec.run, Sink: s.name,
			Partitions: spec.partitions, Ordering: s.ordering, InFlight: s.inFlight, LatencyMs: ms(s.latency),
			Events: spec.b.n - spec.from, Delivered: d.count, Duplicates: int(targets[i].dups.Load()),
			EventsPerSec: d.rate, WallSec: d.last.Sub(c.started).Seconds(),
			P50ms: ms(d.p50), P99ms: ms(d.p99), P999ms: ms(d.p9),
			CPUSec: u.cpu.Seconds(), PeakRSSMiB: float64(u.peakRSSKB) / 1024,
		})
		if s.ordering != "unordered" {
			results[len(results)-1].OrderErrors = d.orderErrors
		}
		if f := targets[i].foreignCount(); f > 0 {
			return nil, fmt.Errorf("%s %s: sink %s received %d requests that are no event of the batch", spec.scenario, spec.run, s.name, f)
		}
		if s.batch > 0 {
			reqs, bats := targets[i].requests.Load(), targets[i].batches.Load()
			if reqs != bats || bats == 0 {
				return nil, fmt.Errorf("%s %s: sink %s is batched (max_events %d), but %d of its %d requests were not CloudEvents batches",
					spec.scenario, spec.run, s.name, s.batch, reqs-bats, reqs)
			}
			r := &results[len(results)-1]
			r.BatchMaxEvents, r.Requests = s.batch, int(reqs)
			r.EventsPerRequest = float64(targets[i].batched.Load()) / float64(bats)
		}
	}
	for i := range results {
		if total > 0 {
			results[i].CPUSecPer1k = results[i].CPUSec / float64(total) * 1000
		}
	}
	for _, r := range results {
		batched := ""
		if r.BatchMaxEvents > 0 {
			batched = fmt.Sprintf(", %d batch requests of %.1f events on average (max_events %d)", r.Requests, r.EventsPerRequest, r.BatchMaxEvents)
		}
		fmt.Fprintf(e.log, "    %s: %d/%d events, %.0f events/s, p50 %.1fms p99 %.1fms, CPU %.2fs, peak RSS %.0f MiB%s\n",
			r.Sink, r.Delivered, r.Events, r.EventsPerSec, r.P50ms, r.P99ms, r.CPUSec, r.PeakRSSMiB, batched)
	}
	return results, nil
}

// fileName keeps letters, digits and single dashes of s.
func fileName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
