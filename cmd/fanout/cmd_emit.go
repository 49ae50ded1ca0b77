package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/emit"
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
			load := configFlag(fs)
			typ := fs.String("type", "", "event type, i.e. the schema subject, e.g. user.registered (required)")
			doc := fs.String("json", "", "one event as a JSON document")
			input := fs.String("file", "", "a file of JSON documents, one per line (- for stdin)")
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if *typ == "" {
					return usagef("--type is required")
				}
				if (*doc == "") == (*input == "") {
					return usagef("give exactly one of --json and --file")
				}
				cfg, err := load()
				if err != nil {
					return err
				}
				rt, err := app.Open(cfg, e.log)
				if err != nil {
					return err
				}
				defer rt.Close()
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
				em := emit.New(emit.Config{Topic: cfg.Kafka.Topic, Type: *typ, KeyField: cfg.Events.KeyField, IDField: cfg.Events.IDField}, rt.Codec, cl)
				var acked int64
				if *doc != "" {
					acked, err = em.One(ctx, []byte(*doc))
				} else {
					acked, err = emitFile(ctx, em, *input)
				}
				if de, ok := errors.AsType[*emit.DocError](err); ok {
					err = usagef("%v", de)
				}
				fmt.Fprintf(e.stdout, "emitted %d %s events to %s\n", acked, *typ, cfg.Kafka.Topic)
				return err
			}
		},
	}
}

// emitFile emits the lines of path ("-": stdin); a file that does not open
// is a usage error.
func emitFile(ctx context.Context, em *emit.Emitter, path string) (int64, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return 0, usagef("%v", err)
		}
		defer f.Close()
		r = f
	}
	return em.Lines(ctx, r)
}
