package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/dlq"
	"github.com/fanout-dev/fanout/replay"
)

// fanout replay: send a range of the main topic through one sink's delivery
// path again. Its flags, assembly and printing are here and the progress
// display in replay_display.go; resolving the range, the progress and the run
// (a range-mode consumer.Consumer) are package replay.

const replayArgs = "-c FILE --sink NAME (--from-offset P:O[,P:O…] | --from-time T) [--to-offset P:O[,…] | --to-time T] [--partition P[,P…]] [--dry-run] [--respect-dedupe | --bypass-dedupe] [--rate N/s] [--resume ID [--restart]] [--output text|json]"

// replayCommand is the "fanout replay" command.
func replayCommand() *command {
	return &command{
		name: "replay", args: replayArgs,
		short: "send a range of the topic to one sink again",
		long: `Re-delivers a range of kafka.topic to ONE sink, through that sink's delivery path
(decode, type filter, dedupe, HTTP delivery with in-line retries, rate limit,
circuit breaker). No other sink sees anything: the command never produces to the
topic and never touches the sinks' consumer groups.

The range, per partition, runs from --from-offset (or the first offset at or
after --from-time) up to, not including, --to-offset (or the first offset at or
after --to-time, or else the partition's end when the command starts: it never
waits for new records). Partitions: those of --partition, else those named in
--from-offset, else all. Times are RFC 3339 or a duration back from now (90m,
2h, 7d). Offsets already removed by retention are skipped (a note says so).

--respect-dedupe (the default): events the sink already delivered (within
dedupe.ttl) are not sent and count as "already delivered"; it needs the Redis
dedupe store. --bypass-dedupe: every event in range is sent again, with its
usual Idempotency-Key, without claiming it in the dedupe store.

A record that fails for good (a permanent status, in-line retries spent,
undecodable, too large) is logged and parked on the sink's dead-letter topic
with the headers fanout run writes (no retry tiers). Deliveries run
concurrently up to the sink's max_in_flight, in the sink's ordering (one at a
time per partition or per key, or unordered); --rate caps records per second
on top of the sink's rate_limit.

The replay has an ID derived from the sink, the resolved range and the dedupe
mode (printed at the start). Its progress — per partition the offset below
which all is done, and, as commit metadata, the range and the records done
past it — is committed every 5s and when it stops in the consumer group
<group_prefix><sink>.replay.<ID>. SIGINT or SIGTERM stops starting records,
lets those in flight finish within run.drain_timeout, commits and exits 1;
--resume ID continues that replay over its stored range (no range flags) and
sends nothing it already finished. The same command run again finds the same
ID: it refuses to send the range twice unless --restart is given. Kafka keeps a
replay's progress for offsets.retention.minutes (7 days) after its last commit.

Output: on a terminal a progress bar on stderr, else a line every --progress
records or 10s; at the end a summary (in range, sent, delivered, already
delivered, failed→DLQ, skipped by type, remaining); --output json prints it as
one JSON object on stdout. --dry-run prints the resolved range and sends and
commits nothing.

Exit codes: 0 the whole range was dealt with (delivered, already delivered,
skipped by type or parked on the DLQ); 1 interrupted or failed (resume with
--resume ID); 2 usage or config error (unknown sink, bad range).`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			file := fs.String("c", "", "config `FILE` (required)")
			sinkName := fs.String("sink", "", "the sink `NAME` to replay to (required)")
			fromOffset := fs.String("from-offset", "", "start at these `P:O[,P:O…]` (partition:offset); only these partitions unless --partition")
			fromTime := fs.String("from-time", "", "start at the first record at or after `T`: RFC 3339, or a duration back from now (2h, 7d)")
			toOffset := fs.String("to-offset", "", "stop before these `P:O[,P:O…]`; other partitions run to their end")
			toTime := fs.String("to-time", "", "stop before the first record at or after `T`")
			partitions := fs.String("partition", "", "only these partitions `P[,P…]`")
			dryRun := fs.Bool("dry-run", false, "print the resolved range; send and commit nothing")
			respect := fs.Bool("respect-dedupe", false, "skip events the sink already delivered (the default)")
			bypass := fs.Bool("bypass-dedupe", false, "send every event in range again, whether delivered before or not")
			rate := fs.String("rate", "", "send at most `N/s` records (or N/m; default unlimited)")
			resume := fs.String("resume", "", "continue replay `ID` from its committed progress, over its stored range")
			restart := fs.Bool("restart", false, "start the replay over even though its ID already has progress")
			progress := fs.Int("progress", 1000, "without a terminal, print a progress line every `N` records (and every 10s)")
			output := fs.String("output", "text", "output `FORMAT`: text, or json (the summary as one JSON object)")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				o := replayOpts{req: replay.Request{DryRun: *dryRun, Resume: *resume, Restart: *restart},
					progress: *progress, json: *output == "json", file: *file}
				var err error
				switch {
				case *output != "text" && *output != "json":
					return usagef("--output: %q is not text or json", *output)
				case *respect && *bypass:
					return usagef("give one of --respect-dedupe and --bypass-dedupe, not both")
				case *progress < 1:
					return usagef("--progress: %d is below 1", *progress)
				case *resume != "" && *restart:
					return usagef("--restart starts a replay over; it does not go with --resume")
				case *resume != "" && (*fromOffset != "" || *fromTime != "" || *toOffset != "" || *toTime != "" || *partitions != ""):
					return usagef("--resume uses the stored range of the replay: leave out --from-*, --to-* and --partition")
				case *resume != "" && !replay.ValidID(*resume):
					return usagef("--resume: %q is not a replay ID (8 hex digits, printed when the replay started)", *resume)
				}
				switch {
				case *bypass:
					o.req.Mode = replay.ModeBypass
				case *respect:
					o.req.Mode = replay.ModeRespect
				}
				if o.interval, err = dlq.ParseRate(*rate); err != nil {
					return usagef("--rate: %v", err)
				}
				if *resume == "" {
					if o.req.Spec, err = replay.NewSpec(*fromOffset, *fromTime, *toOffset, *toTime, *partitions, time.Now()); err != nil {
						return replayUsage(err)
					}
				}
				t, err := openDLQ(*file, *sinkName)
				if err != nil {
					return err
				}
				defer t.close()
				return runReplay(ctx, e, t, o)
			}
		},
	}
}

// replayOpts are a replay's settings.
type replayOpts struct {
	file     string // the config file, for the resume hint
	req      replay.Request
	interval time.Duration // between two records; 0 = unlimited
	progress int           // plain progress line every this many records
	json     bool
}

// replayUsage makes the replay package's invalid-request errors usage
// errors (exit code 2).
func replayUsage(err error) error {
	if errors.Is(err, replay.ErrInvalid) {
		return usageError{err.Error()}
	}
	return err
}

func runReplay(ctx context.Context, e *env, t *dlqTarget, o replayOpts) error {
	cfg, s := t.cfg, t.sink
	o.req.Note = func(id, note string) { fmt.Fprintf(e.stderr, "replay %s: %s\n", id, note) }
	pl, err := replay.Resolve(ctx, t.adm, cfg, s, o.req)
	if err != nil {
		return replayUsage(err)
	}
	if pl.RanBefore != "" {
		fmt.Fprintf(e.stderr, "note: %s\n", pl.RanBefore)
	}
	id := pl.ID
	sum := pl.Summary()
	verb := "starts"
	if o.req.Resume != "" {
		verb = "resumes"
	}
	fmt.Fprintf(e.stderr, "replay %s %s: sink %s, %d offsets of %s to go in %s, dedupe %s; progress in group %s\n",
		id, verb, s.Name, sum.Remaining, sum.Topic, partitionList(sum.Partitions), sum.Dedupe, sum.Group)

	if o.req.DryRun {
		return printDryRun(e.stdout, sum, o.json)
	}
	if sum.Remaining == 0 {
		return printSummary(e.stdout, sum, o.json)
	}
	if _, err := dlq.TakeRange(ctx, t.adm, s.DLQTopic, nil); err != nil {
		return fmt.Errorf("sink %s: %w", s.Name, err) // failures must have a DLQ to go to
	}

	out := newReplayDisplay(e.stderr, id, s.Name, o.progress)
	log := e.log
	if out.tty {
		log = out.logger() // log lines clear and redraw the bar
	}
	path, err := app.OpenPath(ctx, cfg, s, t.adm, app.PathOptions{Store: sum.Dedupe == replay.ModeRespect,
		Dedupe: *s.Dedupe.Enabled && sum.Dedupe != replay.ModeBypass, Log: log, LimitsLog: log.With("replay", sum.Group, "sink", s.Name)})
	if err != nil {
		return err
	}
	defer path.Close()
	rp, err := replay.New(pl, replay.Job{Sink: s, Ordering: app.Orderings[s.Ordering], DrainTimeout: cfg.Run.DrainTimeout,
		Interval: o.interval, Handler: path.Handler, Admin: t.adm, Opts: path.Opts,
		IDs: t.ids(), Watcher: out, Log: log})
	if err != nil {
		return err
	}
	runErr, commitErr := rp.Run(ctx, &sum)
	if err := printSummary(e.stdout, sum, o.json); err != nil {
		return err
	}
	next := fmt.Sprintf("continue with: fanout replay -c %s --sink %s --resume %s", o.file, s.Name, id)
	if commitErr != nil {
		next = fmt.Sprintf("and the progress could not be committed (%v): what was done since the last commit is sent again by --resume %s", commitErr, id)
	}
	switch {
	case sum.Interrupted:
		return fmt.Errorf("interrupted with %d offsets to go; %s", sum.Remaining, next)
	case runErr != nil:
		return fmt.Errorf("%w; %d offsets to go; %s", runErr, sum.Remaining, next)
	case sum.Remaining > 0:
		return fmt.Errorf("%d offsets not done; %s", sum.Remaining, next)
	case commitErr != nil:
		return fmt.Errorf("the range is done but its end could not be committed: %w", commitErr)
	}
	return nil
}

func partitionList(parts []replay.Part) string {
	var ps []string
	for _, p := range parts {
		ps = append(ps, fmt.Sprint(p.Partition))
	}
	if len(ps) == 1 {
		return "partition " + ps[0]
	}
	return "partitions " + strings.Join(ps, ",")
}

func printDryRun(w io.Writer, sum replay.Summary, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(sum)
	}
	fmt.Fprintf(w, "dry run (nothing sent, nothing committed): replay %s of %s to sink %s, dedupe %s\n", sum.ID, sum.Topic, sum.Sink, sum.Dedupe)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tFROM\tTO (EXCL.)\tOFFSETS\tDONE")
	for _, p := range sum.Partitions {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\n", p.Partition, p.From, p.End, p.End-p.From, p.Done())
	}
	tw.Flush()
	_, err := fmt.Fprintf(w, "%d offsets in range, %d done before, %d to send (group %s)\n", sum.InRange, sum.DoneBefore, sum.Remaining, sum.Group)
	return err
}

func printSummary(w io.Writer, sum replay.Summary, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(sum)
	}
	what := "replay"
	if sum.Interrupted {
		what = "replay interrupted"
	}
	fmt.Fprintf(w, "%s %s to %s: %d in range, %d sent: %d delivered, %d already delivered, %d failed→DLQ, %d skipped by type",
		what, sum.ID, sum.Sink, sum.InRange, sum.Sent, sum.Delivered, sum.AlreadyDelivered, sum.FailedToDLQ, sum.SkippedByType)
	if sum.Abandoned > 0 {
		fmt.Fprintf(w, ", %d stopped before an outcome", sum.Abandoned)
	}
	if sum.DoneBefore > 0 {
		fmt.Fprintf(w, " (%d done by earlier runs)", sum.DoneBefore)
	}
	_, err := fmt.Fprintf(w, "; %d remaining\n", sum.Remaining)
	return err
}
