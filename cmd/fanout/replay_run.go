package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/pipeline"
)

// replayCommitEvery is how often a replay commits its progress.
const replayCommitEvery = 5 * time.Second

// replayer is one run of fanout replay: a range-mode consumer
// (consumer.Config.Range) over the range, with the sink's handler, ordering
// and max_in_flight, parking failures straight on the sink's DLQ (no retry
// tiers) and committing its progress — the watermark, and the range and the
// records done past it as metadata — in the replay's own group. The consumer
// does the reading, lanes, parking, drain on interrupt and watermarks; the
// replayer paces (--rate), counts and commits.
type replayer struct {
	t     *dlqTarget
	r     *replayRange
	group string
	h     *pipeline.Handler
	out   *replayDisplay
	log   *slog.Logger
	ids   *idResolver // names a parked event in the log as delivery does
	c     *consumer.Consumer

	pace     pacer
	stopping <-chan struct{} // closed on interrupt: pacing starts nothing more

	sent      atomic.Int64
	mu        sync.Mutex       // guards failed, commitErr
	failed    map[string]int64 // failed→DLQ by class
	commitErr error            // the last commit's failure, nil once one succeeds
}

func newReplayer(ctx context.Context, t *dlqTarget, r *replayRange, group string, h *pipeline.Handler, o replayOpts, out *replayDisplay, log *slog.Logger) (*replayer, error) {
	s := t.sink
	log = log.With("replay", group)
	rp := &replayer{t: t, r: r, group: group, h: h, out: out, log: log.With("sink", s.Name),
		pace: pacer{interval: o.interval}, failed: map[string]int64{},
		ids: &idResolver{cfg: t.cfg, field: s.IDField}}
	spans := map[int32]consumer.Span{}
	for _, p := range r.parts {
		spans[p.Partition] = consumer.Span{Pos: p.Pos, End: p.End, Done: p.prior}
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	limits := app.TopicLimits(lctx, t.adm, []string{s.DLQTopic}, rp.log)
	cancel()
	c, err := consumer.New(consumer.Config{
		Sink: s.Name, Topic: r.topic, DLQTopic: s.DLQTopic, Ordering: app.Orderings[s.Ordering], MaxInFlight: s.MaxInFlight,
		FetchMaxBytes: 16 << 20, FetchMaxPartitionBytes: 4 << 20,
		CommitInterval: replayCommitEvery, DrainTimeout: t.cfg.Run.DrainTimeout,
		Range: spans, Commit: rp.commit,
	}, rp, log, append(app.KafkaOpts(t.cfg), consumer.ProducerSizing(limits))...)
	if err != nil {
		return nil, err
	}
	rp.c = c
	return rp, nil
}

// run replays until the range is done or ctx ends (SIGINT/SIGTERM: records
// in flight get run.drain_timeout), then commits the progress. err is why it
// stopped early (ctx's error when interrupted); commitErr a failure of the
// last commit. It returns only after every goroutine it started has returned.
func (rp *replayer) run(ctx context.Context) (err, commitErr error) {
	rp.stopping = ctx.Done()
	// The ID is resumable from the start.
	if err := rp.commit(ctx, rp.c.Progress()); err != nil {
		return err, nil
	}
	loops, stopLoops := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { rp.out.run(loops, rp.snapshot) })
	runErr := rp.c.Run(ctx)
	stopLoops()
	wg.Wait()
	rp.out.finish(rp.snapshot())
	rp.mu.Lock()
	commitErr = rp.commitErr
	rp.mu.Unlock()
	switch {
	case commitErr != nil:
		// Run's error is the failed final commit.
	case runErr != nil:
		err = runErr
	case ctx.Err() != nil && !rp.complete():
		err = ctx.Err()
	}
	return err, commitErr
}

// Handle is the consumer's handler: the sink's, paced by --rate, with each
// parked failure counted by class and logged.
func (rp *replayer) Handle(ctx context.Context, rec *kgo.Record) consumer.Outcome {
	if !rp.pace.wait(rp.stopping) {
		return consumer.Outcome{Verdict: consumer.Abandon} // interrupted: left undone for --resume
	}
	rp.sent.Add(1)
	out := rp.h.Handle(ctx, rec)
	if out.Verdict == consumer.DeadLetter {
		then := out.OnParked
		out.OnParked = func() {
			rp.mu.Lock()
			rp.failed[string(out.Reason)]++
			rp.mu.Unlock()
			rp.log.Warn("replayed record failed; parked on the dead-letter topic", "topic", rec.Topic, "partition", rec.Partition,
				"offset", rec.Offset, "event_id", rp.ids.record(ctx, rec), "status", out.Status, "class", out.Reason,
				"attempts", out.Attempts, "dlq", rp.t.sink.DLQTopic)
			if then != nil {
				then()
			}
		}
	}
	return out
}

// commit writes each partition's watermark and metadata (range, mode, done
// records past the watermark) to the replay's group.
func (rp *replayer) commit(ctx context.Context, progress map[int32]consumer.Progress) error {
	os := kadm.Offsets{}
	cut := 0
	for _, p := range rp.r.parts {
		if p.From == p.End {
			continue
		}
		pr := progress[p.Partition]
		meta, n := replayMeta{from: p.From, end: p.End, mode: rp.r.mode, done: pr.DoneAhead}.encode(pr.Offset)
		cut += n
		os.Add(kadm.Offset{Topic: rp.r.topic, Partition: p.Partition, At: pr.Offset, LeaderEpoch: -1, Metadata: meta})
	}
	if cut > 0 {
		rp.log.Info("progress metadata full: records done past the watermark that did not fit are sent again on resume", "not_recorded", cut)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := rp.t.adm.CommitAllOffsets(cctx, rp.group, os)
	if err != nil {
		err = fmt.Errorf("commit the replay's progress (group %s): %w", rp.group, err)
	}
	rp.mu.Lock()
	rp.commitErr = err
	rp.mu.Unlock()
	return err
}

func (rp *replayer) complete() bool {
	for _, pr := range rp.c.Progress() {
		if pr.Remaining > 0 {
			return false
		}
	}
	return true
}

// replayProgress is what the display shows.
type replayProgress struct {
	total, done                              int64 // offsets of the range to do in this run, and done of those
	sent, delivered, already, failed, byType int64
}

func (rp *replayer) snapshot() replayProgress {
	st := rp.h.Stats()
	p := replayProgress{sent: rp.sent.Load(), delivered: st.Delivered, already: st.Duplicates, failed: rp.c.Stats().Parked, byType: st.Skipped}
	prog := rp.c.Progress()
	for _, part := range rp.r.parts {
		todo := part.End - part.Pos - int64(len(part.prior))
		p.total += todo
		p.done += todo - prog[part.Partition].Remaining
	}
	return p
}

// fill puts the run's counts and final positions into sum.
func (rp *replayer) fill(sum *replaySummary) {
	st, cs := rp.h.Stats(), rp.c.Stats()
	sum.Sent, sum.Delivered, sum.AlreadyDelivered, sum.SkippedByType = rp.sent.Load(), st.Delivered, st.Duplicates, st.Skipped
	// Handed to the handler and stopped before an outcome (or its park).
	sum.FailedToDLQ, sum.Abandoned = cs.Parked, sum.Sent-cs.Handled
	rp.mu.Lock()
	if len(rp.failed) > 0 {
		sum.FailedByClass = map[string]int64{}
		for k, v := range rp.failed {
			sum.FailedByClass[k] = v
		}
	}
	rp.mu.Unlock()
	prog := rp.c.Progress()
	sum.Remaining = 0
	sum.Partitions = nil
	for _, p := range rp.r.parts {
		pr := prog[p.Partition]
		p.Pos, p.prior = pr.Offset, pr.DoneAhead
		sum.Partitions = append(sum.Partitions, p)
		sum.Remaining += pr.Remaining
	}
}

// pacer spaces records by interval (--rate), over all lanes.
type pacer struct {
	interval time.Duration
	mu       sync.Mutex
	next     time.Time
}

// wait waits for the next slot; false if halt closed first.
func (p *pacer) wait(halt <-chan struct{}) bool {
	if p.interval <= 0 {
		return true
	}
	p.mu.Lock()
	at := p.next
	if now := time.Now(); at.Before(now) {
		at = now
	}
	p.next = at.Add(p.interval)
	p.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-halt:
		return false
	case <-t.C:
		return true
	}
}
