package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/pipeline"
)

// PathOptions say how OpenPath builds a sink's delivery path.
type PathOptions struct {
	// Store opens the dedupe store (replay with --bypass-dedupe needs none).
	Store bool
	// Dedupe claims each event in the store (the sink's dedupe.enabled,
	// unless the caller bypasses it).
	Dedupe bool
	// Log is the handler's logger; LimitsLog, if set, is the one the broker's
	// size limits are read with (default Log).
	Log, LimitsLog *slog.Logger
}

// Path is one sink's delivery path outside run: the handler a range-mode
// consumer (replay, dlq redrive) hands each record to, and the Kafka options
// that consumer needs to park on the sink's DLQ. Only this sink's handler is
// built: the other sinks never see a replay or a redrive. It has no key
// order: a replayed or redriven record is parked on the DLQ again, never in
// a tier. Close releases the sink, the store and the tracing it opened.
type Path struct {
	Handler *pipeline.Handler
	Opts    []kgo.Opt
	closers
}

// OpenPath opens the codec and tracing, the dedupe store if asked, and the
// sink's handler, and sizes the produce requests to the DLQ topic's limit.
func OpenPath(ctx context.Context, cfg *config.Config, s config.Sink, adm *kadm.Client, o PathOptions) (*Path, error) {
	p := &Path{}
	rt, err := Open(cfg, o.Log)
	if err != nil {
		return nil, err
	}
	p.add(rt.Close)
	var store dedupe.Store
	if o.Store {
		var closeStore func()
		if store, closeStore, err = BuildStore(cfg, o.Log); err != nil {
			p.Close()
			return nil, err
		}
		p.add(closeStore)
	}
	sk, h, err := BuildHandler(s, rt.Codec, store, o.Dedupe, false, o.Log)
	if err != nil {
		p.Close()
		return nil, err
	}
	p.add(sk.Close)
	p.Handler = h
	limitsLog := o.LimitsLog
	if limitsLog == nil {
		limitsLog = o.Log
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	limits := TopicLimits(lctx, adm, []string{s.DLQTopic}, limitsLog)
	cancel()
	p.Opts = append(KafkaOpts(cfg), consumer.ProducerSizing(limits))
	return p, nil
}

// closers are what a Path or a Service opened; Close releases them, the
// last opened first (the sink before the store before tracing).
type closers []func()

func (c *closers) add(f func()) { *c = append(*c, f) }

// Close releases what was opened, in reverse order.
func (c *closers) Close() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}
