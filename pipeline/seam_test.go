package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/letter"
	"github.com/fanout-dev/fanout/sink"
)

// queueSink is a non-HTTP Sink: it delivers into an in-process bounded
// queue. Its outcomes carry everything the Handler needs (class, status,
// attempts, excerpt, why), so the Handler parks its refusals without any
// *sink.StatusError in sight.
type queueSink struct {
	mu     sync.Mutex
	queue  []sink.Event
	cap    int
	refuse map[string]sink.Result // by event type: the outcome to report instead
}

func (q *queueSink) Deliver(ctx context.Context, ev sink.Event) sink.Result {
	if err := ctx.Err(); err != nil {
		return sink.Result{Class: sink.Canceled, Err: err}
	}
	if res, ok := q.refuse[ev.Type]; ok {
		return res
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) >= q.cap {
		return sink.Result{Class: sink.Retryable, Attempts: 3, Err: errors.New("queue full"), Excerpt: "queue full: 1/1"}
	}
	q.queue = append(q.queue, ev)
	return sink.Result{Class: sink.Done, Attempts: 1}
}

func (q *queueSink) CircuitBreaker() Breaker { return nil }

func TestNonHTTPSink(t *testing.T) {
	c := codec(t)
	rec := record(t, c, "user.registered", userDoc)
	tests := []struct {
		name      string
		full      bool
		refuse    *sink.Result
		verdict   consumer.Verdict
		reason    letter.Reason
		excerpt   string
		retryable bool
	}{
		{name: "delivered", verdict: consumer.Done},
		{name: "refused", refuse: &sink.Result{Class: sink.Permanent, Attempts: 1, Status: 7, Err: errors.New("schema mismatch"), Excerpt: "field plan unknown"},
			verdict: consumer.DeadLetter, reason: letter.ReasonPermanent, excerpt: "field plan unknown"},
		{name: "not rendered", refuse: &sink.Result{Class: sink.Permanent, Err: errors.New("no such field"), RenderFailed: true},
			verdict: consumer.DeadLetter, reason: letter.ReasonRenderFailed},
		{name: "forwarded credentials refused", refuse: &sink.Result{Class: sink.Permanent, Attempts: 1, Err: errors.New("token expired"), PropagatedAuthRejected: true, Excerpt: "denied"},
			verdict: consumer.DeadLetter, reason: letter.ReasonPropagatedAuth, excerpt: "denied"},
		{name: "full", full: true, verdict: consumer.DeadLetter, reason: letter.ReasonRetriesExhausted, excerpt: "queue full: 1/1", retryable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &queueSink{cap: 1, refuse: map[string]sink.Result{}}
			if tt.full {
				q.queue = append(q.queue, sink.Event{ID: "earlier"})
			}
			if tt.refuse != nil {
				q.refuse["user.registered"] = *tt.refuse
			}
			h, err := New(Config{Sink: "queue"}, c, nil, q, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			out := h.Handle(context.Background(), rec)
			if out.Verdict != tt.verdict || out.Reason != tt.reason || out.Excerpt != tt.excerpt || out.Retryable != tt.retryable {
				t.Fatalf("outcome %+v, want %s/%q excerpt %q retryable %v", out, tt.verdict, tt.reason, tt.excerpt, tt.retryable)
			}
			if tt.verdict == consumer.Done {
				if len(q.queue) != 1 || q.queue[0].ID != "6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a" || !strings.Contains(string(q.queue[0].Body), `"email":"ada@example.com"`) {
					t.Fatalf("queue %+v, want the event", q.queue)
				}
			}
			if tt.refuse != nil && (out.Status != tt.refuse.Status || out.Attempts != tt.refuse.Attempts) {
				t.Fatalf("status %d attempts %d, want %d %d", out.Status, out.Attempts, tt.refuse.Status, tt.refuse.Attempts)
			}
		})
	}
}
