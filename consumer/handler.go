package consumer

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Handler decides what becomes of one record. It is called concurrently, at
// most MaxInFlight at a time, and never for two records of one ordering lane at
// once. ctx carries the record's trace context and ends when the record's
// partition is revoked past its deadline or the process stops draining.
type Handler interface {
	Handle(ctx context.Context, r *kgo.Record) Outcome
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, r *kgo.Record) Outcome

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, r *kgo.Record) Outcome { return f(ctx, r) }

// Verdict is what the consumer does with a handled record.
type Verdict int

const (
	// Done: delivered, suppressed as a duplicate, or skipped by a filter. The
	// offset may be committed.
	Done Verdict = iota + 1
	// DeadLetter: park the record on the sink's dead-letter topic; the offset is
	// committable once that produce is acknowledged.
	DeadLetter
	// Abandon: the context ended before an outcome; leave the record
	// uncommitted so the partition's next owner (or this process after a
	// restart) handles it again.
	Abandon
)

func (v Verdict) String() string {
	switch v {
	case Done:
		return "done"
	case DeadLetter:
		return "dead-letter"
	case Abandon:
		return "abandon"
	}
	return "unknown"
}

// Outcome is a Handler's answer for one record.
type Outcome struct {
	Verdict Verdict
	// Reason classifies a parked record (retry tier or DLQ), one of
	// pipeline.Reasons: permanent, retries-exhausted, undecodable, too-large,
	// too-old, behind-earlier-of-key, render-failed, propagated-auth-rejected.
	// It becomes the fanout-error-class header.
	Reason   string
	Err      error // the last error, for a dead letter's fanout-error header
	Status   int   // the last HTTP status, 0 if none
	Attempts int   // delivery attempts made
	// Retryable marks a DeadLetter whose last failure was retryable (in-line
	// retries spent): it goes to the next retry tier, if any, before the DLQ.
	Retryable bool
	Excerpt   string // the start of the last failed response's body
	// OnParked, if set, is called once the park (DLQ or tier) is
	// acknowledged, before the offset is marked done.
	OnParked func()
}
