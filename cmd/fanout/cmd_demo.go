package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/demo"
)

// demoCommand is the "fanout demo" command.
func demoCommand() *command {
	return &command{
		name: "demo", args: "[--duration D] [--rate N] [--output text|json]", short: "run the worked example in-process: no services to install",
		long: `Runs the worked example on the embedded default: an in-process Kafka (kfake), the
in-memory dedupe store, and three local APIs — profile (rejects addresses
without @ with 422), email (answers 503 one time in five) and analytics (slow,
40–120 ms, takes batches of up to 16 events). A producer publishes user.registered events (1% with a bad address,
2% published twice as an upstream retry would) for most of the duration; the
rest lets the sinks catch up. At the end a per-sink summary: produced,
delivered, retried, dead-lettered, duplicates suppressed, and what each API
accepted twice (0 unless an answer was lost: an attempt that timed out, 10s by
default, after the API had accepted; docs/architecture.md lists every window in
which an API can see an event again).`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			dur := fs.Duration("duration", 20*time.Second, "how long the demo runs")
			rate := fs.Int("rate", 200, "events per second the producer publishes")
			output := fs.String("output", "text", "text (a live view and a table) or json (one summary object)")
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if *output != "text" && *output != "json" {
					return usagef("--output: %q is not text or json", *output)
				}
				if *dur < 3*time.Second || *rate < 1 {
					return usagef("--duration must be at least 3s and --rate at least 1")
				}
				return runDemo(ctx, e, *dur, *rate, *output == "json")
			}
		},
	}
}

// demoSummary is what demo prints: the run, and each sink's counts beside
// what its API saw.
type demoSummary struct {
	demo.Report
	Sinks []demo.SinkResult `json:"sinks"`
}

// runDemo starts the worked example (demo.Start: APIs, in-process Kafka, the
// sinks built as run builds them), runs it and prints it.
func runDemo(ctx context.Context, e *env, dur time.Duration, rate int, asJSON bool) error {
	start := time.Now()
	d, err := demo.Start(slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	defer d.Close()
	o := demo.Options{Start: start, Duration: dur, Rate: rate}
	if !asJSON {
		fmt.Fprintf(e.stdout, "fanout demo: in-process Kafka at %s, APIs %s; producing %d events/s for %s\n",
			strings.Join(d.Brokers(), ","), apiURLs(d.APIs), rate, demo.ProduceFor(dur).Round(time.Second))
		o.Tick = func(elapsed time.Duration, produced int64) { liveLine(e.stdout, elapsed, produced, d.Runners) }
	}
	rep, results, err := d.Run(ctx, o)
	if err != nil {
		return err
	}
	sum := demoSummary{Report: rep, Sinks: results}
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(sum)
	}
	printDemoTable(e.stdout, sum)
	return nil
}

func apiURLs(apis []*demo.API) string {
	var s []string
	for _, a := range apis {
		s = append(s, a.URL)
	}
	return strings.Join(s, " ")
}

func liveLine(w io.Writer, since time.Duration, produced int64, runners []*app.Runner) {
	fmt.Fprintf(w, "%5.1fs produced %-6d", since.Seconds(), produced)
	for _, r := range runners {
		s := r.Summary()
		fmt.Fprintf(w, " | %s: delivered %d retried %d tiers %d dlq %d dup %d", s.Sink, s.Delivered, s.Retried, s.Tiered, s.DeadLettered, s.Duplicates)
	}
	fmt.Fprintln(w)
}

func printDemoTable(w io.Writer, s demoSummary) {
	fmt.Fprintf(w, "\nsummary after %s: %d events produced (%d of them published twice)\n\n", s.Duration, s.Produced, s.Repeated)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "sink\tproduced\tdelivered\tretried\tvia retry tiers\tdead-lettered\tduplicates suppressed\tAPI accepted twice\tAPI requests\tcaught up\t")
	for _, r := range s.Sinks {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%v\t\n", r.Sink, r.Produced, r.Delivered, r.Retried, r.Tiered, r.DeadLettered, r.Duplicates, r.AcceptedTwice, r.APIRequests, r.CaughtUp)
	}
	tw.Flush()
}
