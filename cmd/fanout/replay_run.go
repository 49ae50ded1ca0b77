package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/pipeline"
	"github.com/fanout-dev/fanout/tracing"
)

// replayCommitEvery is how often a replay commits its progress.
const replayCommitEvery = 5 * time.Second

// replayer is one run of fanout replay: it reads the range with a plain
// (group-less) client, hands records to the sink's handler in the sink's
// ordering lanes, parks failures on the sink's DLQ and commits per-partition
// progress in the replay's own group.
//
// Goroutines: run owns them all — the reader is run's own goroutine; it starts
// one goroutine per active lane (waited for with lanesWG) and the commit and
// display loops (waited for before the final commit).
//
// Tokens: a window token per record taken from Kafka, held until the record
// is below its partition's watermark (so the done-past-the-watermark set that
// goes into the commit metadata stays small); an in-flight token per record in
// the handler (max_in_flight).
type replayer struct {
	t     *dlqTarget
	r     *replayRange
	group string
	h     *pipeline.Handler
	o     replayOpts
	out   *replayDisplay
	log   *slog.Logger
	ids   *idResolver // names a parked event in the log as delivery does
	order consumer.Ordering

	window   chan struct{}
	inflight chan struct{}
	halt     chan struct{} // closed: start no more records (interrupt, read error)
	haltOnce sync.Once
	pace     pacer

	mu      sync.Mutex // guards track, lanes, failed, dirty
	track   map[int32]*replayTracker
	lanes   map[laneKey]*replayLane
	failed  map[string]int64 // failed→DLQ by class
	dirty   bool             // progress moved since the last commit
	lanesWG sync.WaitGroup

	commitMu sync.Mutex // one commit at a time
	sent     atomic.Int64
	parked   atomic.Int64
	dropped  atomic.Int64 // handed to the handler, stopped before an outcome
	pk       *parker      // produces the letters, sized from the DLQ's max.message.bytes
}

// laneKey names an ordering lane: a partition, a partition's key, or one
// record (off >= 0).
type laneKey struct {
	p   int32
	key string
	off int64
}

type replayLane struct {
	key   laneKey
	queue []*kgo.Record
}

func newReplayer(t *dlqTarget, r *replayRange, group string, h *pipeline.Handler, o replayOpts, out *replayDisplay, log *slog.Logger) *replayer {
	mif := t.sink.MaxInFlight
	rp := &replayer{t: t, r: r, group: group, h: h, o: o, out: out, log: log.With("sink", t.sink.Name, "replay", group),
		order:  orderings[t.sink.Ordering],
		window: make(chan struct{}, max(4*mif, 256)), inflight: make(chan struct{}, mif), halt: make(chan struct{}),
		pace:  pacer{interval: o.interval},
		track: map[int32]*replayTracker{}, lanes: map[laneKey]*replayLane{}, failed: map[string]int64{},
		ids: &idResolver{cfg: t.cfg, field: t.sink.IDField}}
	rp.pk = newParker(t.cfg, t.adm, rp.log, t.sink.DLQTopic)
	for _, p := range r.parts {
		rp.track[p.Partition] = newReplayTracker(p.From, p.End, p.Pos, p.prior)
	}
	return rp
}

// stop starts nothing more: the reader and the lanes wind down, records in
// flight finish (or are cancelled after run.drain_timeout).
func (rp *replayer) stop() { rp.haltOnce.Do(func() { close(rp.halt) }) }

func (rp *replayer) halted() bool {
	select {
	case <-rp.halt:
		return true
	default:
		return false
	}
}

// run replays until the range is done, ctx ends (SIGINT/SIGTERM) or reading
// fails, then commits the progress. err is why it stopped early (ctx's error
// when interrupted); commitErr a failure of the last commit. It returns only
// after every goroutine it started has returned.
func (rp *replayer) run(ctx context.Context) (err, commitErr error) {
	// Deliveries run detached from ctx: an interrupt stops new records at
	// once, but those in flight get run.drain_timeout to finish.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	defer rp.pk.close()
	stopWatch := context.AfterFunc(ctx, func() {
		rp.stop()
		time.AfterFunc(rp.t.cfg.Run.DrainTimeout, cancelWork)
	})
	defer stopWatch()

	// The ID is resumable from the start.
	if err := rp.commit(ctx, true); err != nil {
		return err, nil
	}
	loops, stopLoops := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		every(loops, replayCommitEvery, func() {
			if err := rp.commit(loops, false); err != nil {
				rp.log.Warn("could not commit the replay's progress; retrying", "err", err)
			}
		})
	})
	wg.Go(func() { rp.out.run(loops, rp.snapshot) })

	err = rp.read(ctx, work)
	if err != nil {
		rp.stop()
	}
	rp.lanesWG.Wait()
	stopLoops()
	wg.Wait()
	rp.out.finish(rp.snapshot())
	if err == nil && ctx.Err() != nil && !rp.complete() {
		err = ctx.Err()
	}
	return err, rp.commit(ctx, true)
}

// read takes every record of the range from Kafka and hands it to its lane.
// It returns when each partition has been read to its end, or on an error
// (ctx's when interrupted).
func (rp *replayer) read(ctx, work context.Context) error {
	topic := rp.r.topic
	at := map[int32]kgo.Offset{}
	rp.mu.Lock()
	for p, tr := range rp.track {
		if !tr.closed {
			at[p] = kgo.NewOffset().At(tr.pos)
		}
	}
	rp.mu.Unlock()
	if len(at) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(kafkaOpts(rp.t.cfg),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: at}),
		// Offsets deleted by retention since the range was taken: go on
		// from the oldest still there.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Transaction markers take offsets too: seeing them lets the
		// watermark pass them, and a range that ends on one ends.
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(16<<20),
		kgo.FetchMaxPartitionBytes(4<<20),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	open := len(at)
	finished := map[int32]bool{}
	finish := func(p int32) {
		if finished[p] {
			return
		}
		finished[p] = true
		open--
		cl.PauseFetchPartitions(map[string][]int32{topic: {p}})
		rp.mu.Lock()
		rp.track[p].close()
		rp.dirty = true
		rp.mu.Unlock()
	}
	for open > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, fe := range fs.Errors() {
			var lost *kgo.ErrDataLoss
			if errors.As(fe.Err, &lost) {
				rp.log.Warn("offsets of the range were deleted (retention) while replaying; going on from the oldest left",
					"partition", fe.Partition, "err", fe.Err)
				continue
			}
			return fmt.Errorf("read %s partition %d: %w", fe.Topic, fe.Partition, fe.Err)
		}
		for it := fs.RecordIter(); !it.Done(); {
			rec := it.Next()
			p := rec.Partition
			if _, ok := at[p]; !ok || finished[p] {
				continue
			}
			if rec.Offset >= rp.track[p].end {
				finish(p)
				continue
			}
			if err := rp.take(ctx, work, rec); err != nil {
				return err
			}
			if rec.Offset+1 >= rp.track[p].end {
				finish(p)
			}
		}
	}
	return nil
}

// take registers rec with its partition's tracker and queues it in its lane;
// a transaction marker, or a record an earlier run of this replay finished,
// is done at once. It waits for a window token.
func (rp *replayer) take(ctx, work context.Context, rec *kgo.Record) error {
	select {
	case rp.window <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	tr := rp.track[rec.Partition]
	if !tr.add(rec.Offset) {
		<-rp.window
		return nil
	}
	if rec.Attrs.IsControl() || tr.priorDone(rec.Offset) {
		rp.finishLocked(tr, rec.Offset)
		return nil
	}
	key := laneKey{p: rec.Partition, off: -1}
	switch rp.order {
	case consumer.ByKey:
		if rec.Key == nil {
			key.off = rec.Offset
		} else {
			key.key = string(rec.Key)
		}
	case consumer.Unordered:
		key.off = rec.Offset
	}
	if l := rp.lanes[key]; l != nil {
		l.queue = append(l.queue, rec)
		return nil
	}
	l := &replayLane{key: key, queue: []*kgo.Record{rec}}
	rp.lanes[key] = l
	rp.lanesWG.Add(1)
	go rp.runLane(work, l)
	return nil
}

// runLane hands the lane's records to the handler one at a time. Once halted
// it starts none: the rest stay undone (not committed) for --resume.
func (rp *replayer) runLane(work context.Context, l *replayLane) {
	defer rp.lanesWG.Done()
	for {
		rp.mu.Lock()
		if len(l.queue) == 0 || rp.halted() {
			delete(rp.lanes, l.key)
			rp.mu.Unlock()
			return
		}
		rec := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		rp.mu.Unlock()
		if !rp.pace.wait(rp.halt) {
			continue
		}
		select {
		case rp.inflight <- struct{}{}:
		case <-rp.halt:
			continue
		}
		rp.handle(work, rec)
		<-rp.inflight
	}
}

// handle sends rec through the sink's handler and settles it: done, parked
// on the DLQ (then done), or left undone when stopped before an outcome.
func (rp *replayer) handle(ctx context.Context, rec *kgo.Record) {
	rp.sent.Add(1)
	out := rp.h.Handle(tracing.ExtractRecord(ctx, rec), rec)
	switch out.Verdict {
	case consumer.Done:
	case consumer.DeadLetter:
		if err := rp.park(ctx, rec, out); err != nil {
			rp.dropped.Add(1)
			rp.log.Error("could not park a failed record on the dead-letter topic; it stays undone",
				"partition", rec.Partition, "offset", rec.Offset, "err", err)
			return
		}
	default:
		rp.dropped.Add(1)
		rp.log.Debug("stopped before an outcome; left undone", "partition", rec.Partition, "offset", rec.Offset, "err", out.Err)
		return
	}
	rp.mu.Lock()
	rp.finishLocked(rp.track[rec.Partition], rec.Offset)
	rp.mu.Unlock()
}

// finishLocked marks offset done and returns the window tokens of the records
// that passed below the watermark. rp.mu is held.
func (rp *replayer) finishLocked(tr *replayTracker, offset int64) {
	for range tr.finish(offset) {
		<-rp.window
	}
	rp.dirty = true
}

// park produces rec's dead letter to the sink's DLQ — built by the consumer's
// own builder, so it carries the same headers — and waits for the
// acknowledgement as the consumer does (consumer.ProduceParked: a letter the
// topic refuses becomes a stub letter, never an endless retry). A replay
// parks straight on the DLQ, never in the retry tiers.
func (rp *replayer) park(ctx context.Context, rec *kgo.Record, out consumer.Outcome) error {
	if _, err := rp.pk.park(ctx, func() *kgo.Record {
		return consumer.ParkedRecord(rp.t.sink.DLQTopic, rp.t.sink.Name, rec, out, time.Now(), nil)
	}, rp.log.With("partition", rec.Partition, "offset", rec.Offset)); err != nil {
		return err
	}
	rp.parked.Add(1)
	rp.mu.Lock()
	rp.failed[string(out.Reason)]++
	rp.mu.Unlock()
	rp.log.Warn("replayed record failed; parked on the dead-letter topic", "topic", rec.Topic, "partition", rec.Partition,
		"offset", rec.Offset, "event_id", rp.ids.record(ctx, rec), "status", out.Status, "class", out.Reason,
		"attempts", out.Attempts, "dlq", rp.t.sink.DLQTopic)
	return nil
}

// commit writes each partition's watermark and metadata (range, mode, done
// records past the watermark) to the replay's group. Unless always, it
// commits only when progress moved.
func (rp *replayer) commit(ctx context.Context, always bool) error {
	rp.commitMu.Lock()
	defer rp.commitMu.Unlock()
	os := kadm.Offsets{}
	cut := 0
	rp.mu.Lock()
	if !rp.dirty && !always {
		rp.mu.Unlock()
		return nil
	}
	rp.dirty = false
	for _, p := range rp.r.parts {
		if p.From == p.End {
			continue
		}
		tr := rp.track[p.Partition]
		meta, n := replayMeta{from: p.From, end: p.End, mode: rp.r.mode, done: tr.doneAhead()}.encode(tr.pos)
		cut += n
		os.Add(kadm.Offset{Topic: rp.r.topic, Partition: p.Partition, At: tr.pos, LeaderEpoch: -1, Metadata: meta})
	}
	rp.mu.Unlock()
	if cut > 0 {
		rp.log.Info("progress metadata full: records done past the watermark that did not fit are sent again on resume", "not_recorded", cut)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := rp.t.adm.CommitAllOffsets(cctx, rp.group, os); err != nil {
		rp.mu.Lock()
		rp.dirty = true
		rp.mu.Unlock()
		return fmt.Errorf("commit the replay's progress (group %s): %w", rp.group, err)
	}
	return nil
}

func (rp *replayer) complete() bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	for _, tr := range rp.track {
		if !tr.complete() {
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
	p := replayProgress{sent: rp.sent.Load(), delivered: st.Delivered, already: st.Duplicates, failed: rp.parked.Load(), byType: st.Skipped}
	rp.mu.Lock()
	for _, part := range rp.r.parts {
		tr := rp.track[part.Partition]
		todo := part.End - part.Pos - int64(len(part.prior))
		p.total += todo
		p.done += todo - tr.remaining()
	}
	rp.mu.Unlock()
	return p
}

// fill puts the run's counts and final positions into sum.
func (rp *replayer) fill(sum *replaySummary) {
	st := rp.h.Stats()
	sum.Sent, sum.Delivered, sum.AlreadyDelivered, sum.SkippedByType = rp.sent.Load(), st.Delivered, st.Duplicates, st.Skipped
	sum.FailedToDLQ, sum.Abandoned = rp.parked.Load(), rp.dropped.Load()
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if len(rp.failed) > 0 {
		sum.FailedByClass = map[string]int64{}
		for k, v := range rp.failed {
			sum.FailedByClass[k] = v
		}
	}
	sum.Remaining = 0
	sum.Partitions = nil
	for _, p := range rp.r.parts {
		tr := rp.track[p.Partition]
		p.Pos, p.prior = tr.pos, tr.doneAhead()
		sum.Partitions = append(sum.Partitions, p)
		sum.Remaining += tr.remaining()
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
