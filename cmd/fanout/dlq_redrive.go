package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/dlq"
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
				o := dlq.RedriveOptions{Limit: *limit, MaxRedrives: *maxRedrives, FromStart: *fromStart, Progress: *progress}
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
				if o.Interval, err = dlq.ParseRate(*rate); err != nil {
					return usagef("--rate: %v", err)
				}
				if o.Filter, err = sel(*sinkName, time.Now()); err != nil {
					return err
				}
				t, err := openDLQ(*file, *sinkName)
				if err != nil {
					return err
				}
				defer t.close()
				if o.FromStart && !*dryRun {
					// Examining letters again is safe only if the store
					// remembers what earlier runs delivered.
					if !t.cfg.Redis.Enabled() {
						return usagef("--from-start needs the Redis dedupe store (redis.addr): the in-memory one cannot know what earlier runs delivered")
					}
					if !*t.sink.Dedupe.Enabled {
						return usagef("--from-start needs dedupe: sink %s has dedupe.enabled false, so every letter examined again would be delivered again", t.sink.Name)
					}
				}
				return redrive(ctx, e, t, o, *dryRun, *output == "json")
			}
		},
	}
}

// redrive runs dlq.Redriver and prints its listing (--dry-run), progress
// lines and summary. The sink's handler is assembled here, after the
// redriver has found letters to send.
func redrive(ctx context.Context, e *env, t *dlqTarget, o dlq.RedriveOptions, dryRun, asJSON bool) error {
	rd, err := dlq.PrepareRedrive(ctx, t.cfg, t.sink, o, t.adm, app.KafkaOpts(t.cfg), t.ids(), e.log)
	if err != nil {
		return err
	}
	if rd.Empty() {
		c := rd.Counts()
		since := ""
		if rd.SinceLast() {
			since = " parked since the last redrive (group " + c.Group + ")"
		}
		fmt.Fprintf(e.stdout, "no dead letters%s in %s\n", since, c.Topic)
		return nil
	}
	var c dlq.Counts
	if dryRun {
		out := newLetterPrinter(e.stdout, asJSON, true)
		c, err = rd.DryRun(ctx, out.row)
		out.flush()
	} else {
		c, err = redriveRun(ctx, e, t, rd)
	}
	printRedrive(e.stdout, t.sink.Name, c, asJSON)
	return err
}

// redriveRun builds the sink's handler and runs the redrive through it.
func redriveRun(ctx context.Context, e *env, t *dlqTarget, rd *dlq.Redriver) (dlq.Counts, error) {
	c := rd.Counts()
	path, err := app.OpenPath(ctx, t.cfg, t.sink, t.adm, app.PathOptions{Store: true, Dedupe: *t.sink.Dedupe.Enabled, Log: e.log})
	if err != nil {
		return c, err
	}
	defer path.Close()
	return rd.Run(ctx, path.Handler, path.Opts, func(c dlq.Counts) {
		fmt.Fprintf(e.stderr, "redrive %s: %d selected: %d delivered, %d already delivered, %d failed again, %d cap reached\n",
			t.sink.Name, c.Selected, c.Delivered, c.AlreadyDelivered, c.FailedAgain, c.CapReached)
	})
}

// printRedrive prints a redrive's summary.
func printRedrive(w io.Writer, sink string, c dlq.Counts, asJSON bool) {
	if asJSON {
		json.NewEncoder(w).Encode(c)
		return
	}
	what := "redrive"
	switch {
	case c.DryRun:
		what = "dry run (nothing sent)"
	case c.Interrupted:
		what = "redrive interrupted"
	}
	fmt.Fprintf(w, "%s %s: %d selected, %d delivered, %d already delivered, %d failed again, %d cap reached, %d skipped by filter, %d superseded",
		what, sink, c.Selected, c.Delivered, c.AlreadyDelivered, c.FailedAgain, c.CapReached, c.SkippedByFilter, c.Superseded)
	if c.ValueDropped > 0 {
		fmt.Fprintf(w, ", %d stub letters not sent (value dropped at parking)", c.ValueDropped)
	}
	if c.NotSinkType > 0 {
		fmt.Fprintf(w, ", %d not of the sink's types", c.NotSinkType)
	}
	fmt.Fprintf(w, " (%d examined in %s)\n", c.Examined, c.Topic)
}
