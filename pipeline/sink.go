package pipeline

import (
	"context"
	"time"

	"github.com/fanout-dev/fanout/sink"
)

// Sink is what a Handler needs of the API it delivers to: deliver one event
// under the sink's own policy (in-line retries, rate limit, auth) and report
// a typed outcome, and the circuit breaker every consumer of the sink shares.
// The Handler never looks inside the outcome's error: the sink.Result says
// why (Class, RenderFailed, PropagatedAuthRejected) and what a parked record
// carries (Status, Attempts, Excerpt). An HTTP sink is HTTPSink(*sink.Sink);
// another transport implements Sink with the same value types.
type Sink interface {
	Deliver(ctx context.Context, ev sink.Event) sink.Result
	// CircuitBreaker returns the sink's breaker, nil if it has none.
	CircuitBreaker() Breaker
}

// Breaker is the view of a circuit breaker the Handler uses: admit a record,
// report its outcome, or give the admission back (sink.Breaker has these).
type Breaker interface {
	Allow() (t sink.Ticket, ok bool, retryIn time.Duration)
	Done(t sink.Ticket, success bool)
	Cancel(t sink.Ticket)
	State() sink.State
}

// HTTPSink is s as a Sink.
func HTTPSink(s *sink.Sink) Sink {
	if s == nil {
		return nil
	}
	return httpSink{s}
}

type httpSink struct{ *sink.Sink }

func (h httpSink) CircuitBreaker() Breaker {
	if br := h.Breaker(); br != nil {
		return br
	}
	return nil // not a non-nil interface holding a nil *sink.Breaker
}
