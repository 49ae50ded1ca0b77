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

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/letter"
	"github.com/fanout-dev/fanout/pipeline"
	"github.com/fanout-dev/fanout/tracing"
)

func init() {
	register(&command{
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
	})
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

// redriver is one run of dlq redrive.
type redriver struct {
	e      *env
	t      *dlqTarget
	o      redriveOpts
	h      *pipeline.Handler // nil on a dry run
	ids    *idResolver
	out    *letterPrinter     // the dry run's listing
	newest map[string]parking // origin → its newest copy in the range
	next   map[int32]int64    // partition → one past the last letter examined
	sent   time.Time          // when the last letter was sent, for --rate
	commit time.Time          // when offsets were last committed
	counts redriveCounts
	pk     *parker // parks letters that fail again; nil on a dry run
}

func redrive(ctx context.Context, e *env, t *dlqTarget, o redriveOpts) error {
	rd := &redriver{e: e, t: t, o: o, ids: &idResolver{cfg: t.cfg, field: t.sink.IDField},
		newest: map[string]parking{}, next: map[int32]int64{}, commit: time.Now()}
	rd.counts.Topic, rd.counts.Group, rd.counts.DryRun = t.sink.DLQTopic, t.cfg.Kafka.GroupPrefix+t.sink.Name+".redrive", o.dryRun

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
	if err := r.read(ctx, kafkaOpts(t.cfg), func(rec *kgo.Record) error {
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
	} else {
		stopTracing, err := startTracing(t.cfg, e.log)
		if err != nil {
			return err
		}
		defer stopTracing()
		codec, err := buildCodec(t.cfg)
		if err != nil {
			return err
		}
		store, closeStore, err := buildStore(t.cfg, e.log)
		if err != nil {
			return err
		}
		defer closeStore()
		// Only this sink's handler: the other sinks never see a redrive.
		// Without key order: a letter is out of its key's order already,
		// and a redrive parks it on the DLQ again, never in a tier.
		sk, h, err := buildHandler(t.sink, codec, store, *t.sink.Dedupe.Enabled, false, e.log)
		if err != nil {
			return err
		}
		defer sk.Close()
		rd.h = h
		rd.pk = newParker(t.cfg, t.adm, e.log, t.sink.DLQTopic)
		defer rd.pk.close()
	}

	// The letter in hand may finish after SIGINT, within the drain timeout.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(t.cfg.Run.DrainTimeout, cancelWork) })
	defer stopGrace()

	// Pass 2: examine each letter in turn.
	complete := false
	err = r.read(ctx, kafkaOpts(t.cfg), func(rec *kgo.Record) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return rd.examine(ctx, work, parseLetter(rec))
	})
	switch {
	case err == nil:
		complete = rd.o.limit == 0 || rd.counts.Selected < rd.o.limit
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		rd.counts.Interrupted = true
		err = fmt.Errorf("interrupted after %d letters; the examined ones are committed", rd.counts.Examined)
	}
	if complete {
		// Everything up to the range's end was examined, gaps included.
		for p, end := range r.end {
			rd.next[p] = end
		}
	}
	if rd.out != nil {
		rd.out.flush()
	}
	if cerr := rd.commitNow(ctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	rd.summary()
	return err
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

// examine decides what becomes of one letter and, unless it returns an
// error, marks it examined.
func (rd *redriver) examine(ctx, work context.Context, l deadLetter) error {
	c := &rd.counts
	selected := true
	switch {
	case !rd.newest[l.origin()].is(l):
		c.Superseded++
		selected = false
	case !rd.o.filter.match(l):
		c.SkippedByFilter++
		selected = false
	case rd.o.limit > 0 && c.Selected >= rd.o.limit:
		return errStop
	case l.stub != nil:
		// A stub letter's value was dropped when it was parked (too large
		// for the DLQ): there is no event to send. It stays in the DLQ.
		c.ValueDropped++
		if rd.out != nil {
			if err := rd.out.row(l, rd.ids.id(ctx, l), "value dropped"); err != nil {
				return err
			}
		} else {
			rd.e.log.Warn("stub letter not redriven: its value was dropped at parking; the original is at its fanout-original-* coordinates while retained",
				"sink", rd.t.sink.Name, "at", l.at(), "value_bytes", l.stub.ValueBytes, "sha256", l.stub.ValueSHA256)
		}
	case l.redrives >= rd.o.maxRedrives:
		c.CapReached++
		if rd.out != nil {
			if err := rd.out.row(l, rd.ids.id(ctx, l), "cap reached"); err != nil {
				return err
			}
		}
	case rd.out != nil:
		if err := rd.out.row(l, rd.ids.id(ctx, l), "redrive"); err != nil {
			return err
		}
	default:
		if err := rd.pace(ctx); err != nil {
			return err
		}
		if err := rd.send(work, l); err != nil {
			return err
		}
	}
	c.Examined++
	rd.next[l.rec.Partition] = l.rec.Offset + 1
	if selected {
		c.Selected++
		if c.Selected%rd.o.progress == 0 && rd.out == nil {
			fmt.Fprintf(rd.e.stderr, "redrive %s: %d selected: %d delivered, %d already delivered, %d failed again, %d cap reached\n",
				rd.t.sink.Name, c.Selected, c.Delivered, c.AlreadyDelivered, c.FailedAgain, c.CapReached)
		}
	}
	if time.Since(rd.commit) > 5*time.Second {
		return rd.commitNow(ctx)
	}
	return nil
}

// pace waits for --rate.
func (rd *redriver) pace(ctx context.Context) error {
	if rd.o.interval <= 0 {
		return nil
	}
	wait := time.Until(rd.sent.Add(rd.o.interval))
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	rd.sent = time.Now()
	return nil
}

// send hands l to the sink's handler as the consumer would have handed the
// original record, and parks it again if it fails again.
func (rd *redriver) send(ctx context.Context, l deadLetter) error {
	rec := l.original()
	before := rd.h.Stats()
	out := rd.h.Handle(tracing.ExtractRecord(ctx, rec), rec)
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
		return nil
	case consumer.DeadLetter:
		if _, err := rd.pk.park(ctx, func() *kgo.Record { return reparked(l, rd.t.sink.Name, out, time.Now()) },
			rd.e.log.With("sink", rd.t.sink.Name, "at", l.at())); err != nil {
			return fmt.Errorf("park %s again on %s: %w", l.at(), rd.t.sink.DLQTopic, err)
		}
		c.FailedAgain++
		rd.e.log.Info("redrive failed again; parked again", "sink", rd.t.sink.Name, "at", l.at(),
			"event_id", rd.ids.id(ctx, l), "status", out.Status, "class", out.Reason, "redrive_count", l.redrives+1)
		return nil
	}
	return fmt.Errorf("redrive %s: given up before an outcome (dedupe store unreachable, or stopped): %w", l.at(), out.Err)
}

// commitNow commits the examined offsets in the redrive group; a dry run
// commits nothing.
func (rd *redriver) commitNow(ctx context.Context) error {
	rd.commit = time.Now()
	if rd.o.dryRun || len(rd.next) == 0 {
		return nil
	}
	os := kadm.Offsets{}
	for p, o := range rd.next {
		os.Add(kadm.Offset{Topic: rd.counts.Topic, Partition: p, At: o, LeaderEpoch: -1})
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

// reparked is l parked again after out, built as the consumer parks records
// (consumer.ParkedRecord: key, value and own headers kept, the original place
// kept, attempts added up, fresh failure headers) with fanout-redrive-count one
// higher.
func reparked(l deadLetter, sink string, out consumer.Outcome, now time.Time) *kgo.Record {
	r := consumer.ParkedRecord(l.rec.Topic, sink, l.rec, out, now, nil)
	pl, _ := letter.Parse(r)
	pl.RedriveCount = l.redrives + 1
	return pl.Encode(r.Topic, r)
}
