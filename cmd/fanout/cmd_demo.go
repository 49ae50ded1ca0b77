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

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/naming"
	"github.com/fanout-dev/fanout/sinktest"
	"github.com/fanout-dev/fanout/tracing"
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
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if *output != "text" && *output != "json" {
					return usagef("--output: %q is not text or json", *output)
				}
				if *dur < 3*time.Second || *rate < 1 {
					return usagef("--duration must be at least 3s and --rate at least 1")
				}
				return demo(ctx, e, *dur, *rate, *output == "json")
			}
		},
	}
}

const demoTopic = "events"

type demoSummary struct {
	Duration string       `json:"duration"`
	Produced int64        `json:"produced"`
	Repeated int64        `json:"republished"`
	Sinks    []demoResult `json:"sinks"`
}

type demoResult struct {
	app.Summary
	Produced       int64 `json:"produced"`
	APIAccepted    int   `json:"api_accepted"`
	AcceptedTwice  int   `json:"api_accepted_twice"`
	APIRequests    int   `json:"api_requests"` // fewer than events for a batched sink
	CaughtUp       bool  `json:"caught_up"`
	HandledRecords int64 `json:"handled_records"`
}

func demo(ctx context.Context, e *env, dur time.Duration, rate int, asJSON bool) error {
	start := time.Now()
	quiet := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	apis, err := demoAPIs()
	if err != nil {
		return err
	}
	defer func() {
		for _, a := range apis {
			a.close()
		}
	}()
	var dlqs []string
	for _, a := range apis {
		dlqs = append(dlqs, naming.DLQTopic(demoTopic, a.name), naming.TierTopic(demoTopic, a.name, 1), naming.TierTopic(demoTopic, a.name, 2))
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, append([]string{demoTopic}, dlqs...)...))
	if err != nil {
		return fmt.Errorf("start in-process kafka: %w", err)
	}
	defer cluster.Close()

	cfg, err := config.Parse("demo", []byte(demoConfig(cluster.ListenAddrs(), apis)), func(string) (string, bool) { return "", false })
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	tracing.Setup()
	codec, err := app.BuildCodec(cfg)
	if err != nil {
		return err
	}
	runners, err := app.BuildSinks(cfg, nil, codec, app.NewMemoryStore(), quiet, kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}

	runCtx, stopSinks := context.WithCancel(ctx)
	defer stopSinks()
	g, gctx := errgroup.WithContext(runCtx)
	for _, r := range runners {
		for _, c := range r.Consumers {
			g.Go(func() error { return c.Run(gctx) })
		}
	}

	p := &demoProducer{codec: codec, addrs: cluster.ListenAddrs(), rate: rate}
	produceFor := dur * 7 / 10
	prodCtx, stopProducing := context.WithTimeout(ctx, produceFor)
	defer stopProducing()
	prodDone := make(chan error, 1)
	go func() { prodDone <- p.run(prodCtx) }()

	caughtUp := func() bool {
		if !p.finished.Load() {
			return false
		}
		for _, r := range runners {
			if r.Consumers[0].Stats().Handled < p.produced.Load() || r.Stats().Tiered > r.Stats().Handled-r.Consumers[0].Stats().Handled {
				return false
			}
		}
		return true
	}
	deadline := time.NewTimer(dur)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	if !asJSON {
		fmt.Fprintf(e.stdout, "fanout demo: in-process Kafka at %s, APIs %s; producing %d events/s for %s\n",
			strings.Join(cluster.ListenAddrs(), ","), apiURLs(apis), rate, produceFor.Round(time.Second))
	}
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-deadline.C:
			break wait
		case <-tick.C:
			if !asJSON {
				liveLine(e.stdout, time.Since(start), p, runners)
			}
			if caughtUp() {
				break wait
			}
		}
	}
	stopProducing()
	perr := <-prodDone
	stopSinks()
	if err := g.Wait(); err != nil {
		return err
	}
	if perr != nil && ctx.Err() == nil {
		return fmt.Errorf("demo producer: %w", perr)
	}

	sum := demoSummary{Duration: time.Since(start).Round(time.Millisecond).String(), Produced: p.produced.Load(), Repeated: p.repeated.Load()}
	for i, r := range runners {
		acc, twice, reqs := apis[i].counts()
		sum.Sinks = append(sum.Sinks, demoResult{
			Summary: r.Summary(), Produced: p.produced.Load(), APIAccepted: acc, AcceptedTwice: twice, APIRequests: reqs,
			HandledRecords: r.Consumers[0].Stats().Handled, CaughtUp: r.Consumers[0].Stats().Handled >= p.produced.Load(),
		})
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		return enc.Encode(sum)
	}
	printDemoTable(e.stdout, sum)
	return nil
}

func apiURLs(apis []*demoAPI) string {
	var s []string
	for _, a := range apis {
		s = append(s, a.url)
	}
	return strings.Join(s, " ")
}

func liveLine(w io.Writer, since time.Duration, p *demoProducer, runners []*app.Runner) {
	fmt.Fprintf(w, "%5.1fs produced %-6d", since.Seconds(), p.produced.Load())
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

// demoConfig is the YAML a user would write for the worked example.
func demoConfig(brokers []string, apis []*demoAPI) string {
	tiers := "retry: {tiers: [2s, 4s]}"
	return sinktest.Config{
		Brokers: brokers, Topic: demoTopic,
		DrainTimeout: 5 * time.Second, RevokeTimeout: 5 * time.Second,
		Sinks: []sinktest.Sink{
			{Name: "profile", URL: apis[0].url, Ordering: "key", MaxInFlight: 32, Extra: tiers,
				Headers: map[string]string{"X-Plan": "{{ .Record.plan }}"}},
			{Name: "email", URL: apis[1].url, Ordering: "unordered", MaxInFlight: 32,
				Extra: "retry: {attempts: 3, backoff_base: 20ms, backoff_cap: 200ms, tiers: [2s, 4s]}"},
			// The analytics API takes arrays: a slow API, fewer requests.
			{Name: "analytics", URL: apis[2].url, Ordering: "unordered", MaxInFlight: 64, BatchEvents: 16, Extra: tiers},
		},
	}.YAML()
}
