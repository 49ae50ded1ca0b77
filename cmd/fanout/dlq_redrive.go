package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/letter"
	"github.com/fanout-dev/fanout/naming"
	"github.com/fanout-dev/fanout/pipeline"
)

// dlqRedriveCommand is the "fanout dlq redrive" command.
func dlqRedriveCommand() *command {
	return &command{
		name: "dlq redrive", args: "-c FILE --sink NAME [--since T] [--until T] [--status S] [--class C] [--limit N] [--dry-run] [--rate N/s] [--max-redrives N] [--from-start]",
		short: "send a sink's dead letters through its delivery path again",
		long: `Sends the sink's dead letters that pass the filters through that sink's delivery
path again — decode, dedupe claim, HTTP delivery with in-line retries — one at a
time. No other sink sees them. An event the sink has already delivered is not
sent again (the dedupe store knows it) and counts as "already delivered". A
letter that fails again is parked again on the same topic, with
fanout-redrive-count one higher and fresh fanout-* headers. A letter whose
fanout-redrive-count has reached --max-redrives is not sent ("cap reached").
Only the newest copy of a record counts: older copies, superseded by a later
parking of the same original record, are passed over.
A stub letter (header fanout-value-dropped: the DLQ could not hold the record, so
its value was replaced by its size and SHA-256) is never sent: it counts as "value
dropped" and stays in the DLQ; the original is at its fanout-original-* place in
the main topic while retained.

Where it starts: each run commits the offsets it examined (delivered, failed
again, capped, superseded and filtered out alike) in the consumer group
<group_prefix><sink>.redrive, so the next run looks only at letters parked since;
it reads up to the end the topic has when it starts, so letters it parks again
wait for the next run. --from-start examines the whole topic again: the dedupe
store (Redis) keeps each event delivered once, for dedupe.ttl. Run one redrive
per sink at a time. --dry-run lists what would be sent, sends and commits nothing.

SIGINT or SIGTERM stops after the current letter (allowed run.drain_timeout to
finish) and commits what was examined; the exit code is then 1. Exit code 0
means every letter examined was dealt with, letters that failed again included.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			file, sinkName := dlqFlags(fs)
			sel := filterFlags(fs)
			limit := fs.Int("limit", 0, "redrive at most `N` letters (0: all)")
			dryRun := fs.Bool("dry-run", false, "list the letters that would be sent; send and commit nothing")
			rate := fs.String("rate", "", "send at most `N/s` letters (or N/m; default unlimited)")
			maxRedrives := fs.Int("max-redrives", 5, "do not send letters already redriven `N` times")
			fromStart := fs.Bool("from-start", false, "examine every letter again, not only those parked since the last redrive")
			progress := fs.Int("progress", 100, "print a progress line every `N` letters")
			output := fs.String("output", "text", "output `FORMAT`: text, or json (the summary as one JSON object)")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				o := redriveOpts{limit: *limit, dryRun: *dryRun, maxRedrives: *maxRedrives, fromStart: *fromStart,
					progress: *progress, json: *output == "json"}
				var err error
				switch {
				case *output != "text" && *output != "json":
					return usagef("--output: %q is not text or json", *output)
				case *limit < 0:
					return usagef("--limit: %d is negative", *limit)
				case *maxRedrives < 1:
					return usagef("--max-redrives: %d is below 1", *maxRedrives)
				case *progress < 1:
					return usagef("--progress: %d is below 1", *progress)
				}
				if o.interval, err = parseRate(*rate); err != nil {
					return usagef("--rate: %v", err)
				}
				if o.filter, err = sel(*sinkName, time.Now()); err != nil {
					return err
				}
				t, err := openDLQ(*file, *sinkName)
				if err != nil {
					return err
				}
				defer t.close()
				if o.fromStart && !o.dryRun {
					// Examining letters again is safe only if the store
					// remembers what earlier runs delivered.
					if !t.cfg.Redis.Enabled() {
						return usagef("--from-start needs the Redis dedupe store (redis.addr): the in-memory one cannot know what earlier runs delivered")
					}
					if !*t.sink.Dedupe.Enabled {
						return usagef("--from-start needs dedupe: sink %s has dedupe.enabled false, so every letter examined again would be delivered again", t.sink.Name)
					}
				}
				return redrive(ctx, e, t, o)
			}
		},
	}
}

// redriveOpts are a redrive's settings.
type redriveOpts struct {
	filter      filter
	limit       int           // letters selected at most; 0 = all
	dryRun      bool          // list, send nothing, commit nothing
	interval    time.Duration // between two sends; 0 = unlimited
	maxRedrives int           // letters with this fanout-redrive-count are not sent
	fromStart   bool          // ignore the redrive group's position
	progress    int           // a progress line every this many selected letters
	json        bool          // the summary as JSON
}

// redriveCounts is a redrive's summary. Selected = delivered + already
// delivered + failed again + cap reached + not of the sink's types + value
// dropped.
type redriveCounts struct {
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

// redriver is one run of dlq redrive. A dry run reads the letters with the
// plain reader and lists them; a redrive is a range-mode consumer.Consumer
// over the DLQ (one letter at a time, consumer.Config.Range from the redrive
// group's position to the end), whose handler is examine: the consumer does
// the reading, parking again (Repark: one more redrive), the drain on
// interrupt and the position, committed through commit.
type redriver struct {
	e      *env
	t      *dlqTarget
	o      redriveOpts
	h      *pipeline.Handler // nil on a dry run
	ids    *idResolver
	out    *letterPrinter     // the dry run's listing
	newest map[string]parking // origin → its newest copy in the range
	pace   pacer              // --rate
	counts redriveCounts

	stopRun  context.CancelFunc // ends the consumer's run early (--limit reached, an error)
	stopping <-chan struct{}    // closed once the run is ending: start no more letters
	limited  bool               // --limit reached
	halt     error              // why the run ended early, other than --limit and interrupts
}

func redrive(ctx context.Context, e *env, t *dlqTarget, o redriveOpts) error {
	rd := &redriver{e: e, t: t, o: o, ids: &idResolver{cfg: t.cfg, field: t.sink.IDField},
		newest: map[string]parking{}, pace: pacer{interval: o.interval}}
	rd.counts.Topic, rd.counts.Group, rd.counts.DryRun = t.sink.DLQTopic, naming.RedriveGroup(t.cfg.Kafka.GroupPrefix, t.sink.Name), o.dryRun

	var pos map[int32]int64
	if !o.fromStart {
		var err error
		if pos, err = rd.position(ctx); err != nil {
			return err
		}
	}
	r, err := takeRange(ctx, t.adm, rd.counts.Topic, pos)
	if err != nil {
		return err
	}
	if r.size() == 0 {
		since := ""
		if len(pos) > 0 {
			since = " parked since the last redrive (group " + rd.counts.Group + ")"
		}
		fmt.Fprintf(e.stdout, "no dead letters%s in %s\n", since, rd.counts.Topic)
		return nil
	}

	// Pass 1: the newest copy of each record, so an older copy (parked again
	// since, or parked twice by a consumer that crashed before committing)
	// is not redriven next to it.
	if err := r.read(ctx, app.KafkaOpts(t.cfg), func(rec *kgo.Record) error {
		l := parseLetter(rec)
		if cur, ok := rd.newest[l.origin()]; !ok || l.parking().newer(cur) {
			rd.newest[l.origin()] = l.parking()
		}
		return nil
	}); err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted before any letter was sent; nothing committed")
		}
		return err
	}

	if o.dryRun {
		rd.out = newLetterPrinter(e.stdout, o.json, true)
		err = r.read(ctx, app.KafkaOpts(t.cfg), func(rec *kgo.Record) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			l := parseLetter(rec)
			send, selected, err := rd.decide(ctx, l)
			if err == nil && send {
				err = rd.out.row(l, rd.ids.id(ctx, l), "redrive")
			}
			if err == nil {
				rd.examined(selected)
			}
			return err
		})
		if errors.Is(err, errStop) {
			err = nil
		}
		rd.out.flush()
	} else {
		err = rd.run(ctx, r)
	}
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		rd.counts.Interrupted = true
		err = fmt.Errorf("interrupted after %d letters; the examined ones are committed", rd.counts.Examined)
	}
	rd.summary()
	return err
}

// run redrives r's letters with a range-mode consumer and returns why it
// ended early (ctx's error when interrupted).
func (rd *redriver) run(ctx context.Context, r *dlqRange) error {
	t := rd.t
	rt, err := app.Open(t.cfg, rd.e.log)
	if err != nil {
		return err
	}
	defer rt.Close()
	codec := rt.Codec
	store, closeStore, err := app.BuildStore(t.cfg, rd.e.log)
	if err != nil {
		return err
	}
	defer closeStore()
	// Only this sink's handler: the other sinks never see a redrive.
	// Without key order: a letter is out of its key's order already,
	// and a redrive parks it on the DLQ again, never in a tier.
	sk, h, err := app.BuildHandler(t.sink, codec, store, *t.sink.Dedupe.Enabled, false, rd.e.log)
	if err != nil {
		return err
	}
	defer sk.Close()
	rd.h = h

	spans := map[int32]consumer.Span{}
	for p, from := range r.from {
		spans[p] = consumer.Span{Pos: from, End: r.end[p]}
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	limits := app.TopicLimits(lctx, t.adm, []string{t.sink.DLQTopic}, rd.e.log)
	cancel()
	c, err := consumer.New(consumer.Config{
		Sink: t.sink.Name, Topic: rd.counts.Topic, DLQTopic: t.sink.DLQTopic, Ordering: consumer.ByPartition, MaxInFlight: 1,
		CommitInterval: 5 * time.Second, DrainTimeout: t.cfg.Run.DrainTimeout,
		Range:  spans,
		Commit: func(ctx context.Context, p map[int32]consumer.Progress) error { return rd.commit(ctx, spans, p) },
		Repark: redriven,
	}, consumer.HandlerFunc(rd.handle), rd.e.log.With("redrive", rd.counts.Group), append(app.KafkaOpts(t.cfg), consumer.ProducerSizing(limits))...)
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
	case ctx.Err() != nil && !rd.limited:
		for _, pr := range c.Progress() {
			if pr.Remaining > 0 {
				return ctx.Err()
			}
		}
	}
	return nil
}

// position returns the redrive group's committed offsets in the DLQ topic.
func (rd *redriver) position(ctx context.Context) (map[int32]int64, error) {
	offs, err := rd.t.adm.FetchOffsets(ctx, rd.counts.Group)
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
// says whether it counts as selected; errStop that --limit is reached.
func (rd *redriver) decide(ctx context.Context, l deadLetter) (send, selected bool, err error) {
	c := &rd.counts
	switch {
	case !rd.newest[l.origin()].is(l):
		c.Superseded++
		return false, false, nil
	case !rd.o.filter.match(l):
		c.SkippedByFilter++
		return false, false, nil
	case rd.o.limit > 0 && c.Selected >= rd.o.limit:
		return false, false, errStop
	case l.stub != nil:
		// A stub letter's value was dropped when it was parked (too large
		// for the DLQ): there is no event to send. It stays in the DLQ.
		c.ValueDropped++
		if rd.out != nil {
			return false, true, rd.out.row(l, rd.ids.id(ctx, l), "value dropped")
		}
		rd.e.log.Warn("stub letter not redriven: its value was dropped at parking; the original is at its fanout-original-* coordinates while retained",
			"sink", rd.t.sink.Name, "at", l.at(), "value_bytes", l.stub.ValueBytes, "sha256", l.stub.ValueSHA256)
		return false, true, nil
	case l.redrives >= rd.o.maxRedrives:
		c.CapReached++
		if rd.out != nil {
			return false, true, rd.out.row(l, rd.ids.id(ctx, l), "cap reached")
		}
		return false, true, nil
	}
	return true, true, nil
}

// examined counts a letter dealt with.
func (rd *redriver) examined(selected bool) {
	c := &rd.counts
	c.Examined++
	if selected {
		c.Selected++
		if c.Selected%rd.o.progress == 0 && rd.out == nil {
			fmt.Fprintf(rd.e.stderr, "redrive %s: %d selected: %d delivered, %d already delivered, %d failed again, %d cap reached\n",
				rd.t.sink.Name, c.Selected, c.Delivered, c.AlreadyDelivered, c.FailedAgain, c.CapReached)
		}
	}
}

// handle is the consumer's handler, one letter at a time: it decides, and
// hands a letter to send to the sink's handler as the consumer would have
// handed the original record. A letter that fails again comes back as
// DeadLetter: the consumer parks it again (with Repark's one more redrive).
// Once the run is ending (--limit, an error, an interrupt) it starts nothing:
// the letter stays uncommitted for the next run.
func (rd *redriver) handle(ctx context.Context, rec *kgo.Record) consumer.Outcome {
	abandon := consumer.Outcome{Verdict: consumer.Abandon}
	select {
	case <-rd.stopping:
		return abandon
	default:
	}
	l := parseLetter(rec)
	send, selected, err := rd.decide(ctx, l)
	switch {
	case errors.Is(err, errStop):
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
	case !rd.pace.wait(rd.stopping):
		return abandon
	}
	orig := l.original()
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
			rd.e.log.Info("redrive failed again; parked again", "sink", rd.t.sink.Name, "at", l.at(),
				"event_id", rd.ids.id(ctx, l), "status", out.Status, "class", out.Reason, "redrive_count", l.redrives+1)
			rd.examined(true)
			if then != nil {
				then()
			}
		}
		out.Retryable = false
		return out
	}
	rd.halt = fmt.Errorf("redrive %s: given up before an outcome (dedupe store unreachable, or stopped): %w", l.at(), out.Err)
	rd.stopRun()
	return abandon
}

// commit commits the examined offsets in the redrive group: each partition's
// watermark, where it moved past the start.
func (rd *redriver) commit(ctx context.Context, spans map[int32]consumer.Span, progress map[int32]consumer.Progress) error {
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
	if err := rd.t.adm.CommitAllOffsets(cctx, rd.counts.Group, os); err != nil {
		return fmt.Errorf("commit the redrive position (group %s): %w", rd.counts.Group, err)
	}
	return nil
}

func (rd *redriver) summary() {
	c := rd.counts
	if rd.o.json {
		json.NewEncoder(rd.e.stdout).Encode(c)
		return
	}
	what := "redrive"
	switch {
	case c.DryRun:
		what = "dry run (nothing sent)"
	case c.Interrupted:
		what = "redrive interrupted"
	}
	fmt.Fprintf(rd.e.stdout, "%s %s: %d selected, %d delivered, %d already delivered, %d failed again, %d cap reached, %d skipped by filter, %d superseded",
		what, rd.t.sink.Name, c.Selected, c.Delivered, c.AlreadyDelivered, c.FailedAgain, c.CapReached, c.SkippedByFilter, c.Superseded)
	if c.ValueDropped > 0 {
		fmt.Fprintf(rd.e.stdout, ", %d stub letters not sent (value dropped at parking)", c.ValueDropped)
	}
	if c.NotSinkType > 0 {
		fmt.Fprintf(rd.e.stdout, ", %d not of the sink's types", c.NotSinkType)
	}
	fmt.Fprintf(rd.e.stdout, " (%d examined in %s)\n", c.Examined, c.Topic)
}

// reparked is l parked again after out, as the redrive's consumer parks it:
// built as the consumer parks records (consumer.ParkedRecord: key, value and
// own headers kept, the original place kept, attempts added up, fresh failure
// headers), then redriven.
func reparked(l deadLetter, sink string, out consumer.Outcome, now time.Time) *kgo.Record {
	return redriven(consumer.ParkedRecord(l.rec.Topic, sink, l.rec, out, now, nil))
}

// redriven is a letter parked again by a redrive (consumer.Config.Repark):
// fanout-redrive-count one higher than the letter it was parked from.
func redriven(parked *kgo.Record) *kgo.Record {
	pl, _ := letter.Parse(parked)
	pl.RedriveCount++
	return pl.Encode(parked.Topic, parked)
}
