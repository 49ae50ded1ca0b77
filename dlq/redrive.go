package dlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/letter"
	"github.com/fanout-dev/fanout/naming"
	"github.com/fanout-dev/fanout/pipeline"
)

// RedriveOptions are a redrive's settings.
type RedriveOptions struct {
	Filter      Filter
	Limit       int           // letters selected at most; 0 = all
	Interval    time.Duration // between two sends; 0 = unlimited
	MaxRedrives int           // letters with this fanout-redrive-count are not sent
	FromStart   bool          // ignore the redrive group's position
	Progress    int           // Run calls its progress func every this many selected letters
}

// Counts is a redrive's summary. Selected = delivered + already
// delivered + failed again + cap reached + not of the sink's types + value
// dropped.
type Counts struct {
	Topic            string `json:"topic"`
	Group            string `json:"group"`
	Examined         int    `json:"examined"`
	Selected         int    `json:"selected"`
	Delivered        int    `json:"delivered"`
	AlreadyDelivered int    `json:"already_delivered"`
	FailedAgain      int    `json:"failed_again"`
	CapReached       int    `json:"cap_reached"`
	SkippedByFilter  int    `json:"skipped_by_filter"`
	ValueDropped     int    `json:"value_dropped,omitempty"` // stub letters: their value is gone, nothing to send
	Superseded       int    `json:"superseded"`
	NotSinkType      int    `json:"not_of_sink_types,omitempty"`
	DryRun           bool   `json:"dry_run,omitempty"`
	Interrupted      bool   `json:"interrupted,omitempty"`
}

// Redriver is one run of dlq redrive over one sink's DLQ. PrepareRedrive
// takes the range (from the redrive group's position to the end) and finds
// the newest copy of each record; then DryRun lists what would be sent, or
// Run redrives: a range-mode consumer.Consumer over the DLQ (one letter at a
// time, consumer.Config.Range), whose handler is handle: the consumer does
// the reading, parking again (Repark: one more redrive), the drain on
// interrupt and the position, committed through commit.
type Redriver struct {
	cfg    *config.Config
	sink   config.Sink
	o      RedriveOptions
	adm    *kadm.Client
	opts   []kgo.Opt // the Kafka client's
	ids    *IDs
	log    *slog.Logger
	pos    map[int32]int64 // the group's position; nil from the start
	r      *Range
	newest map[string]parking // origin → its newest copy in the range
	pace   Pacer
	counts Counts

	h        *pipeline.Handler                       // nil on a dry run
	row      func(l Letter, id, action string) error // the dry run's listing; nil on a redrive
	progress func(Counts)                            // Run's progress; may be nil
	stopRun  context.CancelFunc                      // ends the consumer's run early (--limit reached, an error)
	stopping <-chan struct{}                         // closed once the run is ending: start no more letters
	limited  bool                                    // --limit reached
	halt     error                                   // why the run ended early, other than --limit and interrupts
}

// PrepareRedrive takes the range of s's DLQ a redrive examines and reads it
// once for the newest copy of each record, so an older copy (parked again
// since, or parked twice by a consumer that crashed before committing) is not
// redriven next to it. opts are the Kafka client's options; ids names events
// in logs and listings.
func PrepareRedrive(ctx context.Context, cfg *config.Config, s config.Sink, o RedriveOptions,
	adm *kadm.Client, opts []kgo.Opt, ids *IDs, log *slog.Logger) (*Redriver, error) {
	rd := &Redriver{cfg: cfg, sink: s, o: o, adm: adm, opts: opts, ids: ids, log: log,
		newest: map[string]parking{}, pace: Pacer{Interval: o.Interval}}
	rd.counts.Topic, rd.counts.Group = s.DLQTopic, naming.RedriveGroup(cfg.Kafka.GroupPrefix, s.Name)

	if !o.FromStart {
		var err error
		if rd.pos, err = rd.position(ctx); err != nil {
			return nil, err
		}
	}
	var err error
	if rd.r, err = TakeRange(ctx, adm, rd.counts.Topic, rd.pos); err != nil {
		return nil, err
	}
	if rd.Empty() {
		return rd, nil
	}
	if err := rd.r.Read(ctx, opts, func(rec *kgo.Record) error {
		l := Parse(rec)
		if cur, ok := rd.newest[l.Origin()]; !ok || l.parking().newer(cur) {
			rd.newest[l.Origin()] = l.parking()
		}
		return nil
	}); err != nil {
		if ctx.Err() != nil {
			return nil, errors.New("interrupted before any letter was sent; nothing committed")
		}
		return nil, err
	}
	return rd, nil
}

// Empty reports whether the range holds no letters: nothing to do.
func (rd *Redriver) Empty() bool { return rd.r.Size() == 0 }

// SinceLast reports whether the range starts at an earlier redrive's
// position (else at the topic's start).
func (rd *Redriver) SinceLast() bool { return len(rd.pos) > 0 }

// Counts returns the counts so far: the topic and group from the start.
func (rd *Redriver) Counts() Counts { return rd.counts }

// DryRun decides every letter of the range as Run would and calls row for
// each it would send ("redrive") or counts as selected without sending
// ("value dropped", "cap reached"); it sends and commits nothing.
func (rd *Redriver) DryRun(ctx context.Context, row func(l Letter, id, action string) error) (Counts, error) {
	rd.row, rd.counts.DryRun = row, true
	err := rd.r.Read(ctx, rd.opts, func(rec *kgo.Record) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l := Parse(rec)
		send, selected, err := rd.decide(ctx, l)
		if err == nil && send {
			err = row(l, rd.ids.Of(ctx, l), "redrive")
		}
		if err == nil {
			rd.examined(selected)
		}
		return err
	})
	if errors.Is(err, ErrStop) {
		err = nil
	}
	return rd.end(ctx, err)
}

// Run redrives the range's letters through h, the sink's handler (built
// without key order: a letter is out of its key's order already, and a
// redrive parks it on the DLQ again, never in a tier), with a range-mode
// consumer whose Kafka options are copts; progress (if not nil) gets the
// counts every RedriveOptions.Progress selected letters. It returns the
// counts and why it ended early; interrupted, the examined letters are
// committed.
func (rd *Redriver) Run(ctx context.Context, h *pipeline.Handler, copts []kgo.Opt, progress func(Counts)) (Counts, error) {
	rd.h, rd.progress = h, progress
	return rd.end(ctx, rd.run(ctx, copts))
}

// end marks an interrupted run.
func (rd *Redriver) end(ctx context.Context, err error) (Counts, error) {
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		rd.counts.Interrupted = true
		err = fmt.Errorf("interrupted after %d letters; the examined ones are committed", rd.counts.Examined)
	}
	return rd.counts, err
}

// run redrives the letters with a range-mode consumer and returns why it
// ended early (ctx's error when interrupted).
func (rd *Redriver) run(ctx context.Context, copts []kgo.Opt) error {
	s := rd.sink
	spans := map[int32]consumer.Span{}
	for p, from := range rd.r.From {
		spans[p] = consumer.Span{Pos: from, End: rd.r.End[p]}
	}
	c, err := consumer.New(consumer.Config{
		Sink: s.Name, Topic: rd.counts.Topic, DLQTopic: s.DLQTopic, Ordering: consumer.ByPartition, MaxInFlight: 1,
		CommitInterval: 5 * time.Second, DrainTimeout: rd.cfg.Run.DrainTimeout,
		Range:  spans,
		Commit: func(ctx context.Context, p map[int32]consumer.Progress) error { return rd.commit(ctx, spans, p) },
		Repark: redriven,
	}, consumer.HandlerFunc(rd.handle), rd.log.With("redrive", rd.counts.Group), copts...)
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	rd.stopRun, rd.stopping = stopRun, runCtx.Done()
	err = c.Run(runCtx)
	switch {
	case rd.halt != nil:
		return errors.Join(rd.halt, err)
	case err != nil:
		return err
	case ctx.Err() != nil && !rd.limited && c.Remaining() > 0:
		return ctx.Err()
	}
	return nil
}

// position returns the redrive group's committed offsets in the DLQ topic.
func (rd *Redriver) position(ctx context.Context) (map[int32]int64, error) {
	offs, err := rd.adm.FetchOffsets(ctx, rd.counts.Group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, nil // the first redrive of this sink
	}
	if err != nil {
		return nil, fmt.Errorf("fetch the offsets of group %s: %w", rd.counts.Group, err)
	}
	pos := map[int32]int64{}
	for p, o := range offs[rd.counts.Topic] {
		if o.Err != nil {
			return nil, fmt.Errorf("fetch the offsets of group %s: partition %d: %w", rd.counts.Group, p, o.Err)
		}
		if o.At >= 0 {
			pos[p] = o.At
		}
	}
	return pos, nil
}

// decide decides what becomes of one letter: send it, or count it as
// superseded, filtered out, a stub or capped (listed on a dry run). selected
// says whether it counts as selected; ErrStop that the limit is reached.
func (rd *Redriver) decide(ctx context.Context, l Letter) (send, selected bool, err error) {
	c := &rd.counts
	switch {
	case !rd.newest[l.Origin()].is(l):
		c.Superseded++
		return false, false, nil
	case !rd.o.Filter.Match(l):
		c.SkippedByFilter++
		return false, false, nil
	case rd.o.Limit > 0 && c.Selected >= rd.o.Limit:
		return false, false, ErrStop
	case l.Stub != nil:
		// A stub letter's value was dropped when it was parked (too large
		// for the DLQ): there is no event to send. It stays in the DLQ.
		c.ValueDropped++
		if rd.row != nil {
			return false, true, rd.row(l, rd.ids.Of(ctx, l), "value dropped")
		}
		rd.log.Warn("stub letter not redriven: its value was dropped at parking; the original is at its fanout-original-* coordinates while retained",
			"sink", rd.sink.Name, "at", l.At(), "value_bytes", l.Stub.ValueBytes, "sha256", l.Stub.ValueSHA256)
		return false, true, nil
	case l.Redrives >= rd.o.MaxRedrives:
		c.CapReached++
		if rd.row != nil {
			return false, true, rd.row(l, rd.ids.Of(ctx, l), "cap reached")
		}
		return false, true, nil
	}
	return true, true, nil
}

// examined counts a letter dealt with.
func (rd *Redriver) examined(selected bool) {
	c := &rd.counts
	c.Examined++
	if selected {
		c.Selected++
		if c.Selected%rd.o.Progress == 0 && rd.row == nil && rd.progress != nil {
			rd.progress(*c)
		}
	}
}

// handle is the consumer's handler, one letter at a time: it decides, and
// hands a letter to send to the sink's handler as the consumer would have
// handed the original record. A letter that fails again comes back as
// DeadLetter: the consumer parks it again (with Repark's one more redrive).
// Once the run is ending (the limit, an error, an interrupt) it starts
// nothing: the letter stays uncommitted for the next run.
func (rd *Redriver) handle(ctx context.Context, rec *kgo.Record) consumer.Outcome {
	abandon := consumer.Outcome{Verdict: consumer.Abandon}
	select {
	case <-rd.stopping:
		return abandon
	default:
	}
	l := Parse(rec)
	send, selected, err := rd.decide(ctx, l)
	switch {
	case errors.Is(err, ErrStop):
		rd.limited = true
		rd.stopRun()
		return abandon
	case err != nil:
		rd.halt = err
		rd.stopRun()
		return abandon
	case !send:
		rd.examined(selected)
		return consumer.Outcome{Verdict: consumer.Done}
	case !rd.pace.Wait(rd.stopping):
		return abandon
	}
	orig := l.Original()
	before := rd.h.Stats()
	out := rd.h.Handle(ctx, orig)
	after := rd.h.Stats()
	c := &rd.counts
	switch out.Verdict {
	case consumer.Done:
		switch {
		case after.Delivered > before.Delivered:
			c.Delivered++
		case after.Duplicates > before.Duplicates:
			c.AlreadyDelivered++
		default:
			c.NotSinkType++
		}
		rd.examined(true)
		return out
	case consumer.DeadLetter:
		then := out.OnParked
		out.OnParked = func() {
			c.FailedAgain++
			rd.log.Info("redrive failed again; parked again", "sink", rd.sink.Name, "at", l.At(),
				"event_id", rd.ids.Of(ctx, l), "status", out.Status, "class", out.Reason, "redrive_count", l.Redrives+1)
			rd.examined(true)
			if then != nil {
				then()
			}
		}
		out.Retryable = false
		return out
	}
	rd.halt = fmt.Errorf("redrive %s: given up before an outcome (dedupe store unreachable, or stopped): %w", l.At(), out.Err)
	rd.stopRun()
	return abandon
}

// commit commits the examined offsets in the redrive group: each partition's
// watermark, where it moved past the start.
func (rd *Redriver) commit(ctx context.Context, spans map[int32]consumer.Span, progress map[int32]consumer.Progress) error {
	os := kadm.Offsets{}
	for p, pr := range progress {
		if pr.Offset > spans[p].Pos {
			os.Add(kadm.Offset{Topic: rd.counts.Topic, Partition: p, At: pr.Offset, LeaderEpoch: -1})
		}
	}
	if len(os) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := rd.adm.CommitAllOffsets(cctx, rd.counts.Group, os); err != nil {
		return fmt.Errorf("commit the redrive position (group %s): %w", rd.counts.Group, err)
	}
	return nil
}

// redriven is a letter parked again by a redrive (consumer.Config.Repark):
// fanout-redrive-count one higher than the letter it was parked from.
func redriven(parked *kgo.Record) *kgo.Record {
	pl, _ := letter.Parse(parked)
	pl.RedriveCount++
	return pl.Encode(parked.Topic, parked)
}
