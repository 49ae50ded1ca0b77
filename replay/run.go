package replay

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/dlq"
	"github.com/fanout-dev/fanout/pipeline"
)

// commitEvery is how often a replay commits its progress.
const commitEvery = 5 * time.Second

// Job is what a replay run needs besides its Plan; the caller assembles it.
type Job struct {
	Sink         config.Sink
	Ordering     consumer.Ordering // the sink's
	DrainTimeout time.Duration     // run.drain_timeout
	Interval     time.Duration     // between two records (--rate); 0 = unlimited
	Handler      *pipeline.Handler // the sink's, without key order; with dedupe unless ModeBypass
	Admin        *kadm.Client      // commits
	Opts         []kgo.Opt         // the consumer's Kafka options (with consumer.ProducerSizing for the DLQ)
	IDs          *dlq.IDs          // names a parked event in the log as delivery does
	Watcher      Watcher           // may be nil
	Log          *slog.Logger
}

// A Watcher shows a run's progress: Watch runs from the first commit until
// the consumer has stopped (its ctx ends then) and may call snapshot at any
// time; Finish gets the last snapshot.
type Watcher interface {
	Watch(ctx context.Context, snapshot func() Progress)
	Finish(Progress)
}

// Replayer is one run of a replay: a range-mode consumer
// (consumer.Config.Range) over the plan's range, with the sink's handler,
// ordering and max_in_flight, parking failures straight on the sink's DLQ (no
// retry tiers) and committing its progress — the watermark, and the range and
// the records done past it as metadata — in the replay's own group. The
// consumer does the reading, lanes, parking, drain on interrupt and
// watermarks; the replayer paces (Job.Interval), counts and commits.
type Replayer struct {
	j     Job
	r     *Range
	group string
	log   *slog.Logger
	c     *consumer.Consumer

	pace     dlq.Pacer
	stopping <-chan struct{} // closed on interrupt: pacing starts nothing more

	sent      atomic.Int64
	mu        sync.Mutex       // guards failed, commitErr
	failed    map[string]int64 // failed→DLQ by class
	commitErr error            // the last commit's failure, nil once one succeeds
}

// New sets up the run of pl; it starts nothing.
func New(pl *Plan, j Job) (*Replayer, error) {
	s := j.Sink
	log := j.Log.With("replay", pl.Group)
	rp := &Replayer{j: j, r: pl.Range, group: pl.Group, log: log.With("sink", s.Name),
		pace: dlq.Pacer{Interval: j.Interval}, failed: map[string]int64{}}
	spans := map[int32]consumer.Span{}
	for _, p := range rp.r.Parts {
		spans[p.Partition] = consumer.Span{Pos: p.Pos, End: p.End, Done: p.prior}
	}
	c, err := consumer.New(consumer.Config{
		Sink: s.Name, Topic: rp.r.Topic, DLQTopic: s.DLQTopic, Ordering: j.Ordering, MaxInFlight: s.MaxInFlight,
		FetchMaxBytes: 16 << 20, FetchMaxPartitionBytes: 4 << 20,
		CommitInterval: commitEvery, DrainTimeout: j.DrainTimeout,
		Range: spans, Commit: rp.commit,
	}, rp, log, j.Opts...)
	if err != nil {
		return nil, err
	}
	rp.c = c
	return rp, nil
}

// Run replays until the range is done or ctx ends (SIGINT/SIGTERM: records
// in flight get the drain timeout), commits the progress and fills sum with
// the run's counts and final positions. err is why it stopped early (ctx's
// error when interrupted); commitErr a failure of the last commit. It returns
// only after every goroutine it started has returned.
func (rp *Replayer) Run(ctx context.Context, sum *Summary) (err, commitErr error) {
	err, commitErr = rp.run(ctx)
	rp.fill(sum)
	sum.Interrupted = ctx.Err() != nil && sum.Remaining > 0
	return err, commitErr
}

// run replays until the range is done or ctx ends (SIGINT/SIGTERM: records
// in flight get run.drain_timeout), then commits the progress. err is why it
// stopped early (ctx's error when interrupted); commitErr a failure of the
// last commit. It returns only after every goroutine it started has returned.
func (rp *Replayer) run(ctx context.Context) (err, commitErr error) {
	rp.stopping = ctx.Done()
	// The ID is resumable from the start.
	if err := rp.commit(ctx, rp.c.Progress()); err != nil {
		return err, nil
	}
	loops, stopLoops := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if rp.j.Watcher != nil {
		wg.Go(func() { rp.j.Watcher.Watch(loops, rp.Snapshot) })
	}
	runErr := rp.c.Run(ctx)
	stopLoops()
	wg.Wait()
	if rp.j.Watcher != nil {
		rp.j.Watcher.Finish(rp.Snapshot())
	}
	rp.mu.Lock()
	commitErr = rp.commitErr
	rp.mu.Unlock()
	switch {
	case commitErr != nil:
		// Run's error is the failed final commit.
	case runErr != nil:
		err = runErr
	case ctx.Err() != nil && rp.c.Remaining() > 0:
		err = ctx.Err()
	}
	return err, commitErr
}

// Handle is the consumer's handler: the sink's, paced by --rate, with each
// parked failure counted by class and logged.
func (rp *Replayer) Handle(ctx context.Context, rec *kgo.Record) consumer.Outcome {
	if !rp.pace.Wait(rp.stopping) {
		return consumer.Outcome{Verdict: consumer.Abandon} // interrupted: left undone for --resume
	}
	rp.sent.Add(1)
	out := rp.j.Handler.Handle(ctx, rec)
	if out.Verdict == consumer.DeadLetter {
		then := out.OnParked
		out.OnParked = func() {
			rp.mu.Lock()
			rp.failed[string(out.Reason)]++
			rp.mu.Unlock()
			rp.log.Warn("replayed record failed; parked on the dead-letter topic", "topic", rec.Topic, "partition", rec.Partition,
				"offset", rec.Offset, "event_id", rp.j.IDs.Record(ctx, rec), "status", out.Status, "class", out.Reason,
				"attempts", out.Attempts, "dlq", rp.j.Sink.DLQTopic)
			if then != nil {
				then()
			}
		}
	}
	return out
}

// commit writes each partition's watermark and metadata (range, mode, done
// records past the watermark) to the replay's group.
func (rp *Replayer) commit(ctx context.Context, progress map[int32]consumer.Progress) error {
	os := kadm.Offsets{}
	cut := 0
	for _, p := range rp.r.Parts {
		if p.From == p.End {
			continue
		}
		pr := progress[p.Partition]
		meta, n := Meta{From: p.From, End: p.End, Mode: rp.r.Mode, Done: pr.DoneAhead}.Encode(pr.Offset)
		cut += n
		os.Add(kadm.Offset{Topic: rp.r.Topic, Partition: p.Partition, At: pr.Offset, LeaderEpoch: -1, Metadata: meta})
	}
	if cut > 0 {
		rp.log.Info("progress metadata full: records done past the watermark that did not fit are sent again on resume", "not_recorded", cut)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := rp.j.Admin.CommitAllOffsets(cctx, rp.group, os)
	if err != nil {
		err = fmt.Errorf("commit the replay's progress (group %s): %w", rp.group, err)
	}
	rp.mu.Lock()
	rp.commitErr = err
	rp.mu.Unlock()
	return err
}

// Progress is a snapshot of a run, what a Watcher shows.
type Progress struct {
	Total, Done int64 // offsets of the range to do in this run, and done of those
	Sent        int64 // handed to the sink's handler
	Delivered   int64
	Already     int64 // already delivered (dedupe)
	Failed      int64 // parked on the DLQ
	ByType      int64 // skipped: not of the sink's types
}

// Snapshot returns the run's progress so far. It is safe for concurrent use.
func (rp *Replayer) Snapshot() Progress {
	st := rp.j.Handler.Stats()
	p := Progress{Sent: rp.sent.Load(), Delivered: st.Delivered, Already: st.Duplicates, Failed: rp.c.Stats().Parked, ByType: st.Skipped}
	prog := rp.c.Progress()
	for _, part := range rp.r.Parts {
		todo := part.End - part.Pos - int64(len(part.prior))
		p.Total += todo
		p.Done += todo - prog[part.Partition].Remaining
	}
	return p
}

// fill puts the run's counts and final positions into sum.
func (rp *Replayer) fill(sum *Summary) {
	st, cs := rp.j.Handler.Stats(), rp.c.Stats()
	sum.Sent, sum.Delivered, sum.AlreadyDelivered, sum.SkippedByType = rp.sent.Load(), st.Delivered, st.Duplicates, st.Skipped
	// Handed to the handler and stopped before an outcome (or its park).
	sum.FailedToDLQ, sum.Abandoned = cs.Parked, sum.Sent-cs.Handled
	rp.mu.Lock()
	if len(rp.failed) > 0 {
		sum.FailedByClass = maps.Clone(rp.failed)
	}
	rp.mu.Unlock()
	prog := rp.c.Progress()
	sum.Remaining = 0
	sum.Partitions = nil
	for _, p := range rp.r.Parts {
		pr := prog[p.Partition]
		p.Pos, p.prior = pr.Offset, pr.DoneAhead
		sum.Partitions = append(sum.Partitions, p)
		sum.Remaining += pr.Remaining
	}
}
