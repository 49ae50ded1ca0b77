package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/dedupe"
)

// fanout replay: send a range of the main topic through one sink's delivery
// path again. The range is resolved here and in replay_range.go, progress is
// kept in replay_progress.go, the run (a range-mode consumer.Consumer) is
// replay_run.go and the progress display replay_display.go.

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
				o := replayOpts{dryRun: *dryRun, resume: *resume, restart: *restart, progress: *progress,
					json: *output == "json", file: *file}
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
				case *resume != "" && !validReplayID(*resume):
					return usagef("--resume: %q is not a replay ID (8 hex digits, printed when the replay started)", *resume)
				}
				switch {
				case *bypass:
					o.mode = modeBypass
				case *respect:
					o.mode = modeRespect
				}
				if o.interval, err = parseRate(*rate); err != nil {
					return usagef("--rate: %v", err)
				}
				if *resume == "" {
					if o.spec, err = newReplaySpec(*fromOffset, *fromTime, *toOffset, *toTime, *partitions, time.Now()); err != nil {
						return err
					}
				}
				t, err := openDLQ(*file, *sinkName)
				if err != nil {
					return err
				}
				defer t.close()
				return replay(ctx, e, t, o)
			}
		},
	}
}

// replayOpts are a replay's settings.
type replayOpts struct {
	file     string // the config file, for the resume hint
	spec     replaySpec
	mode     string // modeRespect, modeBypass, or "" (not given: respect, or the stored mode on resume)
	dryRun   bool
	resume   string // the replay ID to continue
	restart  bool
	interval time.Duration // between two records; 0 = unlimited
	progress int           // plain progress line every this many records
	json     bool
}

// replaySummary is the final report, also --output json.
type replaySummary struct {
	ID               string           `json:"id"`
	Sink             string           `json:"sink"`
	Topic            string           `json:"topic"`
	Group            string           `json:"group"`
	Dedupe           string           `json:"dedupe"`
	DryRun           bool             `json:"dry_run,omitempty"`
	Resumed          bool             `json:"resumed,omitempty"`
	Interrupted      bool             `json:"interrupted,omitempty"`
	InRange          int64            `json:"in_range"`              // offsets in the range
	DoneBefore       int64            `json:"done_before,omitempty"` // offsets earlier runs of this replay finished
	Sent             int64            `json:"sent"`                  // records handed to the sink's delivery path by this run
	Delivered        int64            `json:"delivered"`
	AlreadyDelivered int64            `json:"already_delivered"`
	FailedToDLQ      int64            `json:"failed_to_dlq"`
	FailedByClass    map[string]int64 `json:"failed_by_class,omitempty"`
	SkippedByType    int64            `json:"skipped_by_type"`
	Abandoned        int64            `json:"abandoned,omitempty"` // stopped before an outcome (interrupt past the drain timeout)
	Remaining        int64            `json:"remaining"`           // offsets of the range not done
	Partitions       []replayPart     `json:"partitions"`
}

func replay(ctx context.Context, e *env, t *dlqTarget, o replayOpts) error {
	cfg, s := t.cfg, t.sink
	r, id, err := replayTarget(ctx, e, t, o)
	if err != nil {
		return err
	}
	group := replayGroup(cfg.Kafka.GroupPrefix, s.Name, id)
	sum := replaySummary{ID: id, Sink: s.Name, Topic: r.topic, Group: group, Dedupe: r.mode, DryRun: o.dryRun,
		Resumed: o.resume != "", InRange: r.size(), DoneBefore: r.doneBefore(), Partitions: r.parts}
	sum.Remaining = sum.InRange - sum.DoneBefore
	verb := "starts"
	if o.resume != "" {
		verb = "resumes"
	}
	fmt.Fprintf(e.stderr, "replay %s %s: sink %s, %d offsets of %s to go in %s, dedupe %s; progress in group %s\n",
		id, verb, s.Name, sum.Remaining, r.topic, partitionList(r), r.mode, group)

	if o.dryRun {
		return printDryRun(e.stdout, sum, o.json)
	}
	if sum.Remaining == 0 {
		return printSummary(e.stdout, sum, o.json)
	}
	if _, err := takeRange(ctx, t.adm, s.DLQTopic, nil); err != nil {
		return fmt.Errorf("sink %s: %w", s.Name, err) // failures must have a DLQ to go to
	}

	rt, err := app.Open(cfg, e.log)
	if err != nil {
		return err
	}
	defer rt.Close()
	codec := rt.Codec
	var store dedupe.Store
	if r.mode == modeRespect {
		var closeStore func()
		if store, closeStore, err = app.BuildStore(cfg, e.log); err != nil {
			return err
		}
		defer closeStore()
	}
	out := newReplayDisplay(e.stderr, id, s.Name, o.progress)
	log := e.log
	if out.tty {
		log = out.logger() // log lines clear and redraw the bar
	}
	sk, h, err := app.BuildHandler(s, codec, store, *s.Dedupe.Enabled && r.mode != modeBypass, false, log)
	if err != nil {
		return err
	}
	defer sk.Close()

	rp, err := newReplayer(ctx, t, r, group, h, o, out, log)
	if err != nil {
		return err
	}
	runErr, commitErr := rp.run(ctx)
	rp.fill(&sum)
	sum.Interrupted = ctx.Err() != nil && sum.Remaining > 0
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

// replayTarget finds what the replay covers and its ID: the stored range of
// --resume ID, or the range the flags resolve to. A new replay whose ID
// already has progress is refused (unless --restart or --dry-run): the same
// command twice must not send the range twice.
func replayTarget(ctx context.Context, e *env, t *dlqTarget, o replayOpts) (*replayRange, string, error) {
	cfg, s := t.cfg, t.sink
	if o.resume != "" {
		id := o.resume
		group := replayGroup(cfg.Kafka.GroupPrefix, s.Name, id)
		r, found, err := loadProgress(ctx, t.adm, group, cfg.Kafka.Topic)
		switch {
		case err != nil && found:
			return nil, "", usagef("--resume %s: %v", id, err)
		case err != nil:
			return nil, "", err
		case !found:
			return nil, "", usagef("--resume %s: no replay %s of sink %s (group %s holds no progress in %s; progress expires offsets.retention.minutes after the last commit)",
				id, id, s.Name, group, cfg.Kafka.Topic)
		case o.mode != "" && o.mode != r.mode:
			return nil, "", usagef("--resume %s: that replay runs with --%s-dedupe; leave the dedupe flag out or give the same one", id, r.mode)
		}
		return r, id, checkDedupeMode(cfg, s, r.mode)
	}

	mode := o.mode
	if mode == "" {
		mode = modeRespect
	}
	if err := checkDedupeMode(cfg, s, mode); err != nil {
		return nil, "", err
	}
	r, notes, err := resolveRange(ctx, t.adm, cfg.Kafka.Topic, mode, o.spec)
	if err != nil {
		return nil, "", err
	}
	id := r.id(s.Name)
	for _, n := range notes {
		fmt.Fprintf(e.stderr, "replay %s: %s\n", id, n)
	}
	prev, found, err := loadProgress(ctx, t.adm, replayGroup(cfg.Kafka.GroupPrefix, s.Name, id), r.topic)
	if err != nil && !found {
		return nil, "", err
	}
	if found && !o.restart {
		state := "was interrupted"
		if err == nil && prev.doneBefore() == prev.size() {
			state = "has finished"
		}
		msg := fmt.Sprintf("replay %s (this sink, range and dedupe mode) ran before and %s: --resume %s continues it, --restart sends the range again", id, state, id)
		if !o.dryRun {
			return nil, "", usageError{msg}
		}
		fmt.Fprintf(e.stderr, "note: %s\n", msg)
	}
	return r, id, nil
}

// checkDedupeMode refuses --respect-dedupe where the dedupe store cannot know
// what the sink delivered: everything would be sent again without anyone
// having asked for it.
func checkDedupeMode(cfg *config.Config, s config.Sink, mode string) error {
	if mode != modeRespect {
		return nil
	}
	switch {
	case !*s.Dedupe.Enabled:
		return usagef("sink %s has dedupe.enabled false, so --respect-dedupe cannot skip anything: pass --bypass-dedupe to send every event in range again", s.Name)
	case !cfg.Redis.Enabled():
		return usagef("--respect-dedupe needs the Redis dedupe store (redis.addr): the in-memory one does not know what was delivered; pass --bypass-dedupe to send every event in range again")
	}
	return nil
}

func partitionList(r *replayRange) string {
	var ps []string
	for _, p := range r.parts {
		ps = append(ps, fmt.Sprint(p.Partition))
	}
	if len(ps) == 1 {
		return "partition " + ps[0]
	}
	return "partitions " + strings.Join(ps, ",")
}

func printDryRun(w io.Writer, sum replaySummary, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(sum)
	}
	fmt.Fprintf(w, "dry run (nothing sent, nothing committed): replay %s of %s to sink %s, dedupe %s\n", sum.ID, sum.Topic, sum.Sink, sum.Dedupe)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tFROM\tTO (EXCL.)\tOFFSETS\tDONE")
	for _, p := range sum.Partitions {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\n", p.Partition, p.From, p.End, p.End-p.From, p.Pos-p.From+int64(len(p.prior)))
	}
	tw.Flush()
	_, err := fmt.Fprintf(w, "%d offsets in range, %d done before, %d to send (group %s)\n", sum.InRange, sum.DoneBefore, sum.Remaining, sum.Group)
	return err
}

func printSummary(w io.Writer, sum replaySummary, asJSON bool) error {
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
