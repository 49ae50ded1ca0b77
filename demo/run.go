package demo

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/schemas"
)

// Options are what Run needs besides the sinks.
type Options struct {
	Start    time.Time     // when the demo began; Report.Duration and Tick's elapsed count from it
	Duration time.Duration // at most this long; the producer publishes for ProduceFor(Duration)
	Rate     int           // events per second
	Codec    *schemas.Codec
	Brokers  []string
	// Tick, if set, is called every second while the sinks run, with the
	// time since Start and the records produced so far.
	Tick func(elapsed time.Duration, produced int64)
}

// Report is the run as a whole.
type Report struct {
	Duration string `json:"duration"`
	Produced int64  `json:"produced"`
	Repeated int64  `json:"republished"`
}

// Result is one sink's side of the run: what was produced for it and what its
// API saw. The sink's own counts are the command's.
type Result struct {
	Produced       int64 `json:"produced"`
	APIAccepted    int   `json:"api_accepted"`
	AcceptedTwice  int   `json:"api_accepted_twice"`
	APIRequests    int   `json:"api_requests"` // fewer than events for a batched sink
	CaughtUp       bool  `json:"caught_up"`
	HandledRecords int64 `json:"handled_records"`
}

// ProduceFor is how long the producer publishes in a demo of d: the rest
// lets the sinks catch up.
func ProduceFor(d time.Duration) time.Duration { return d * 7 / 10 }

// Run runs sinks (each sink's consumers, [0] reading Topic, in the order of
// apis) and the producer until every sink has caught up, o.Duration has
// passed or ctx ends; then it stops them and returns the report and one
// Result per sink. A sink has caught up when its main consumer has handled
// every produced record and its tiers hold none.
func Run(ctx context.Context, o Options, apis []*API, sinks [][]*consumer.Consumer) (Report, []Result, error) {
	runCtx, stopSinks := context.WithCancel(ctx)
	defer stopSinks()
	g, gctx := errgroup.WithContext(runCtx)
	for _, cs := range sinks {
		for _, c := range cs {
			g.Go(func() error { return c.Run(gctx) })
		}
	}

	p := &Producer{Codec: o.Codec, Addrs: o.Brokers, Rate: o.Rate}
	prodCtx, stopProducing := context.WithTimeout(ctx, ProduceFor(o.Duration))
	defer stopProducing()
	prodDone := make(chan error, 1)
	go func() { prodDone <- p.Run(prodCtx) }()

	deadline := time.NewTimer(o.Duration)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-deadline.C:
			break wait
		case <-tick.C:
			if o.Tick != nil {
				o.Tick(time.Since(o.Start), p.Produced())
			}
			if caughtUp(p, sinks) {
				break wait
			}
		}
	}
	stopProducing()
	perr := <-prodDone
	stopSinks()
	if err := g.Wait(); err != nil {
		return Report{}, nil, err
	}
	if perr != nil && ctx.Err() == nil {
		return Report{}, nil, fmt.Errorf("demo producer: %w", perr)
	}

	rep := Report{Duration: time.Since(o.Start).Round(time.Millisecond).String(), Produced: p.Produced(), Repeated: p.Repeated()}
	var results []Result
	for i, cs := range sinks {
		acc, twice, reqs := apis[i].Counts()
		handled := cs[0].Stats().Handled
		results = append(results, Result{Produced: p.Produced(), APIAccepted: acc, AcceptedTwice: twice, APIRequests: reqs,
			HandledRecords: handled, CaughtUp: handled >= p.Produced()})
	}
	return rep, results, nil
}

// caughtUp: the producer is done, and every sink's main consumer has handled
// all it produced and no record sits in a tier unhandled.
func caughtUp(p *Producer, sinks [][]*consumer.Consumer) bool {
	if !p.Finished() {
		return false
	}
	for _, cs := range sinks {
		var handled, tiered int64
		for _, c := range cs {
			s := c.Stats()
			handled += s.Handled
			tiered += s.Tiered
		}
		main := cs[0].Stats().Handled
		if main < p.Produced() || tiered > handled-main {
			return false
		}
	}
	return true
}
