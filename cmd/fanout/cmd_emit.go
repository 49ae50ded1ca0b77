package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/schemas"
	"github.com/fanout-dev/fanout/tracing"
)

// emitCommand is the "fanout emit" command.
func emitCommand() *command {
	return &command{
		name: "emit", args: "-c FILE --type TYPE (--json DOC | --file FILE.jsonl)", short: "publish events as an upstream system would",
		long: `Validates each JSON document against the event type's schema, encodes it in the
Confluent wire format, and produces it to kafka.topic (acks=all) with the headers
event-id (from events.id_field) and traceparent (a new trace per event), keyed by
events.key_field. --file reads one JSON document per line ("-" for stdin); a bad
line is reported with its number and nothing after it is sent.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			file := fs.String("c", "", "config `FILE` (required)")
			typ := fs.String("type", "", "event type, i.e. the schema subject, e.g. user.registered (required)")
			doc := fs.String("json", "", "one event as a JSON document")
			input := fs.String("file", "", "a file of JSON documents, one per line (- for stdin)")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if *typ == "" {
					return usagef("--type is required")
				}
				if (*doc == "") == (*input == "") {
					return usagef("give exactly one of --json and --file")
				}
				cfg, err := loadConfig(*file)
				if err != nil {
					return err
				}
				rt, err := app.Open(cfg, e.log)
				if err != nil {
					return err
				}
				defer rt.Close()
				codec := rt.Codec
				cl, err := kgo.NewClient(append(app.KafkaOpts(cfg), kgo.DefaultProduceTopic(cfg.Kafka.Topic))...)
				if err != nil {
					return err
				}
				defer cl.Close()
				// A producer retries a broker that refuses it until the
				// record times out: ask first, and say why at once.
				if err := app.ProbeKafka(ctx, cfg, cl, cfg.Kafka.Topic); err != nil {
					return err
				}
				em := &emitter{cfg: cfg, codec: codec, cl: cl, typ: *typ}
				if *doc != "" {
					err = em.one(ctx, []byte(*doc), 0)
				} else {
					err = em.lines(ctx, *input)
				}
				if ferr := cl.Flush(context.WithoutCancel(ctx)); err == nil {
					err = ferr
				}
				if err == nil {
					err = em.err()
				}
				fmt.Fprintf(e.stdout, "emitted %d %s events to %s\n", em.acked.Load(), *typ, cfg.Kafka.Topic)
				return err
			}
		},
	}
}

type emitter struct {
	cfg   *config.Config
	codec *schemas.Codec
	cl    *kgo.Client
	typ   string

	acked   atomic.Int64
	prodErr chan error
}

func (em *emitter) lines(ctx context.Context, path string) error {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return usagef("%v", err)
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := em.one(ctx, line, n); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return sc.Err()
}

// one encodes and produces a document; line is its line number (0: --json).
func (em *emitter) one(ctx context.Context, doc []byte, line int) error {
	value, rec, err := em.codec.EncodeJSON(ctx, em.typ, doc)
	if err != nil {
		if line > 0 {
			return usagef("line %d: %v", line, err)
		}
		return usagef("%v", err)
	}
	r := &kgo.Record{Value: value}
	if k, ok := rec.Field(em.cfg.Events.KeyField); ok {
		r.Key = []byte(k)
	}
	if id, ok := rec.Field(em.cfg.Events.IDField); ok {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "event-id", Value: []byte(id)})
	}
	r.Topic = em.cfg.Kafka.Topic
	pctx, span := tracing.StartSend(ctx, r)
	if !span.SpanContext().IsValid() {
		pctx = newTrace(ctx) // no tracer provider: still give the event a trace id
	}
	tracing.InjectRecord(pctx, r)
	if em.prodErr == nil {
		em.prodErr = make(chan error, 1)
	}
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

func (em *emitter) err() error {
	select {
	case err := <-em.prodErr:
		return fmt.Errorf("produce: %w", err)
	default:
		return nil
	}
}

// newTrace starts a fresh sampled trace context, as an upstream service
// publishing the event would have.
func newTrace(ctx context.Context) context.Context {
	var tid trace.TraceID
	var sid trace.SpanID
	rand.Read(tid[:])
	rand.Read(sid[:])
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	return trace.ContextWithSpanContext(ctx, sc)
}
