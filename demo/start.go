package demo

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/schemas"
	"github.com/fanout-dev/fanout/tracing"
)

// Demo is the worked example assembled: its three APIs, the in-process
// Kafka, the config a user would write for them, and the sinks built from it
// as run builds them (app.BuildSinks over the in-memory dedupe store).
type Demo struct {
	APIs    []*API
	Cluster *kfake.Cluster
	Codec   *schemas.Codec
	Runners []*app.Runner // in the order of APIs
}

// SinkResult is one sink's line of the summary: its own counts beside what
// its API saw.
type SinkResult struct {
	app.Summary
	Result
}

// Start starts the APIs and the in-process Kafka and builds the sinks; log
// is the sinks' logger. Close releases what it started.
func Start(log *slog.Logger) (*Demo, error) {
	d := &Demo{}
	var err error
	if d.APIs, err = StartAPIs(); err != nil {
		return nil, err
	}
	if d.Cluster, err = StartKafka(d.APIs); err != nil {
		d.Close()
		return nil, err
	}
	cfg, err := config.Parse("demo", []byte(Config(d.Brokers(), d.APIs)), func(string) (string, bool) { return "", false })
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("demo config: %w", err)
	}
	tracing.Setup()
	if d.Codec, err = app.BuildCodec(cfg); err != nil {
		d.Close()
		return nil, err
	}
	if d.Runners, err = app.BuildSinks(cfg, nil, d.Codec, app.NewMemoryStore(), log, kgo.FetchMaxWait(100*time.Millisecond)); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Brokers are the in-process Kafka's addresses.
func (d *Demo) Brokers() []string { return d.Cluster.ListenAddrs() }

// Close stops the in-process Kafka and the APIs.
func (d *Demo) Close() {
	if d.Cluster != nil {
		d.Cluster.Close()
	}
	CloseAPIs(d.APIs)
}

// Run runs the demo's sinks and producer (Run) with o's Duration, Rate, Start
// and Tick, and pairs each sink's counts with what its API saw.
func (d *Demo) Run(ctx context.Context, o Options) (Report, []SinkResult, error) {
	o.Codec, o.Brokers = d.Codec, d.Brokers()
	sinks := make([][]*consumer.Consumer, len(d.Runners))
	for i, r := range d.Runners {
		sinks[i] = r.Consumers
	}
	rep, results, err := Run(ctx, o, d.APIs, sinks)
	if err != nil {
		return rep, nil, err
	}
	out := make([]SinkResult, len(d.Runners))
	for i, r := range d.Runners {
		out[i] = SinkResult{Summary: r.Summary(), Result: results[i]}
	}
	return rep, out, nil
}
