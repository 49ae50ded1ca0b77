package emit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanout-dev/fanout/schemas"
	"github.com/fanout-dev/fanout/tracing"
)

// Config is what an Emitter writes.
type Config struct {
	Topic    string // the topic produced to (kafka.topic)
	Type     string // the event type, i.e. the schema subject, e.g. user.registered
	KeyField string // the field whose value keys the record (events.key_field); none: no key
	IDField  string // the field whose value is the event-id header (events.id_field); none: no header
}

// DocError is a document that is not an event of the type: its line (0 for
// a single document) and why.
type DocError struct {
	Line int
	Err  error
}

func (e *DocError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return e.Err.Error()
}

func (e *DocError) Unwrap() error { return e.Err }

// Emitter produces documents through cl, which it does not close.
type Emitter struct {
	cfg   Config
	codec *schemas.Codec
	cl    *kgo.Client

	acked   atomic.Int64
	prodErr chan error
}

// New returns an Emitter of cfg's events.
func New(cfg Config, codec *schemas.Codec, cl *kgo.Client) *Emitter {
	return &Emitter{cfg: cfg, codec: codec, cl: cl, prodErr: make(chan error, 1)}
}

// One emits doc, flushes, and returns how many events the broker
// acknowledged (0 or 1).
func (em *Emitter) One(ctx context.Context, doc []byte) (int64, error) {
	return em.finish(ctx, em.produce(ctx, doc, 0))
}

// Lines emits each non-blank line of r as one document, stopping at the
// first that is not an event of the type (a *DocError naming its line:
// nothing after it is sent); then it flushes and returns how many events the
// broker acknowledged. The error is the first of: a bad line, reading r,
// ctx ending, flushing, a produce the broker refused.
func (em *Emitter) Lines(ctx context.Context, r io.Reader) (int64, error) {
	return em.finish(ctx, em.lines(ctx, r))
}

func (em *Emitter) lines(ctx context.Context, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := em.produce(ctx, line, n); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return sc.Err()
}

// finish flushes what was produced, even after err, and returns the count
// acknowledged with err or else the first flush or produce error.
func (em *Emitter) finish(ctx context.Context, err error) (int64, error) {
	if ferr := em.cl.Flush(context.WithoutCancel(ctx)); err == nil {
		err = ferr
	}
	if err == nil {
		select {
		case perr := <-em.prodErr:
			err = fmt.Errorf("produce: %w", perr)
		default:
		}
	}
	return em.acked.Load(), err
}

// produce encodes and produces a document; line is its line number (0: a
// single document).
func (em *Emitter) produce(ctx context.Context, doc []byte, line int) error {
	value, rec, err := em.codec.EncodeJSON(ctx, em.cfg.Type, doc)
	if err != nil {
		return &DocError{Line: line, Err: err}
	}
	r := &kgo.Record{Value: value}
	if k, ok := rec.Field(em.cfg.KeyField); ok {
		r.Key = []byte(k)
	}
	if id, ok := rec.Field(em.cfg.IDField); ok {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "event-id", Value: []byte(id)})
	}
	r.Topic = em.cfg.Topic
	pctx, span := tracing.StartSend(ctx, r)
	if !span.SpanContext().IsValid() {
		pctx = NewTrace(ctx) // no tracer provider: still give the event a trace id
	}
	tracing.InjectRecord(pctx, r)
	em.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
		tracing.EndSend(span, r, err)
		if err != nil {
			select {
			case em.prodErr <- err:
			default:
			}
			return
		}
		em.acked.Add(1)
	})
	return nil
}

// NewTrace starts a fresh sampled trace context, as an upstream service
// publishing the event would have.
func NewTrace(ctx context.Context) context.Context {
	var tid trace.TraceID
	var sid trace.SpanID
	rand.Read(tid[:])
	rand.Read(sid[:])
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	return trace.ContextWithSpanContext(ctx, sc)
}
