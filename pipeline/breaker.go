package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/fanout-dev/fanout/sink"
)

// admit waits until the sink's circuit breaker lets a record through. Without
// a breaker it admits at once.
func (h *Handler) admit(ctx context.Context) (ticket, error) {
	br := h.sink.CircuitBreaker()
	if br == nil {
		return ticket{}, nil
	}
	for {
		t, ok, wait := br.Allow()
		if ok {
			return ticket{t: t}, nil
		}
		h.held.Add(1)
		timer := time.NewTimer(max(wait, 10*time.Millisecond))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ticket{}, fmt.Errorf("waiting for the circuit breaker: %w", ctx.Err())
		case <-timer.C:
		}
	}
}

// breakerTripped reports whether the sink's breaker is open or probing.
func (h *Handler) breakerTripped() bool {
	br := h.sink.CircuitBreaker()
	return br != nil && br.State() != sink.Closed
}

// ticket is a breaker admission and where its record came from.
type ticket struct {
	t        sink.Ticket
	fromTier bool
}

// settle reports a delivery's class to the breaker. A permanent failure is the
// event's fault, not the API's: it counts as the API answering. Nothing was
// learned from a cancelled or never-sent request. Records from a retry tier
// are a biased sample — only failures get there — so they count only as
// probes (half-open); otherwise a subset of events that keeps failing would
// open the breaker for the whole sink.
func (h *Handler) settle(t ticket, class sink.Class, attempts int) {
	br := h.sink.CircuitBreaker()
	if br == nil {
		return
	}
	switch {
	case t.fromTier && br.State() != sink.HalfOpen:
		br.Cancel(t.t)
	case class == sink.Done, class == sink.Permanent && attempts > 0:
		br.Done(t.t, true)
	case class == sink.Retryable:
		br.Done(t.t, false)
	default:
		br.Cancel(t.t)
	}
}
