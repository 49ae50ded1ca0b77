package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/dlq"
	"github.com/fanout-dev/fanout/schemas"
)

// The dlq commands: list, show and redrive one sink's dead letters. Their
// flags and printing are here, the filter flags in dlq_filter.go and redrive's
// command in dlq_redrive.go; reading, filtering and redriving are package dlq.

// dlqListCommand is the "fanout dlq list" command.
func dlqListCommand() *command {
	return &command{
		name: "dlq list", args: "-c FILE --sink NAME [--since T] [--until T] [--status S] [--class C] [--limit N] [--output table|json]",
		short: "list a sink's dead letters",
		long: `Reads the sink's dead-letter topic from its oldest record up to the end it has
when the command starts (letters parked meanwhile are not waited for) and prints
each dead letter that passes the filters: its place in the topic
(partition:offset), event id, when it was parked, error class, HTTP status,
delivery attempts, how often it was redriven, and the error (shortened in the
table; --output json prints one JSON object per line with all of it and the
original topic, partition and offset). The topic is an append-only log: letters
that were redriven are still listed, and a letter parked again by a redrive
appears once more with a higher redrive count.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			file, sinkName := dlqFlags(fs)
			sel := filterFlags(fs)
			limit := fs.Int("limit", 0, "print at most `N` letters (0: all)")
			output := fs.String("output", "table", "output `FORMAT`: table, or json (one object per line)")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if *output != "table" && *output != "json" {
					return usagef("--output: %q is not table or json", *output)
				}
				if *limit < 0 {
					return usagef("--limit: %d is negative", *limit)
				}
				f, err := sel(*sinkName, time.Now())
				if err != nil {
					return err
				}
				t, err := openDLQ(*file, *sinkName)
				if err != nil {
					return err
				}
				defer t.close()
				return listLetters(ctx, e, t, f, *limit, *output == "json")
			}
		},
	}
}

// dlqShowCommand is the "fanout dlq show" command.
func dlqShowCommand() *command {
	return &command{
		name: "dlq show", args: "-c FILE --sink NAME --at PARTITION:OFFSET", short: "print one dead letter: headers and body",
		long: `Prints the dead letter at PARTITION:OFFSET of the sink's dead-letter topic (the
first column of fanout dlq list): its key, every header (the record's own and
fanout's) and the body decoded with its writer schema, as indented JSON. A body
that does not decode is printed as base64 after the decode error.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			file, sinkName := dlqFlags(fs)
			at := fs.String("at", "", "the letter's `PARTITION:OFFSET` (required)")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if *at == "" {
					return usagef("--at PARTITION:OFFSET is required")
				}
				p, o, err := dlq.ParseAt(*at)
				if err != nil {
					return usagef("--at: %v", err)
				}
				t, err := openDLQ(*file, *sinkName)
				if err != nil {
					return err
				}
				defer t.close()
				return showLetter(ctx, e, t, p, o)
			}
		},
	}
}

// dlqFlags defines the flags every dlq command has.
func dlqFlags(fs *flag.FlagSet) (file, sink *string) {
	return fs.String("c", "", "config `FILE` (required)"), fs.String("sink", "", "the sink `NAME` whose dead letters to read (required)")
}

// dlqTarget is what a dlq command works on: one sink's dead-letter topic.
type dlqTarget struct {
	cfg  *config.Config
	sink config.Sink
	cl   *kgo.Client // admin requests and parking again
	adm  *kadm.Client
}

// openDLQ loads the config and finds the sink; a missing or unknown sink is
// a usage error.
func openDLQ(file, name string) (*dlqTarget, error) {
	if name == "" {
		return nil, usagef("--sink NAME is required")
	}
	cfg, err := loadConfig(file)
	if err != nil {
		return nil, err
	}
	t := &dlqTarget{cfg: cfg}
	found := false
	for _, s := range cfg.Sinks {
		if s.Name == name {
			t.sink, found = s, true
		}
	}
	if !found {
		return nil, usagef("--sink: no sink named %q in the config (sinks: %s)", name, sinkNames(cfg))
	}
	if t.cl, err = kgo.NewClient(app.KafkaOpts(cfg)...); err != nil {
		return nil, err
	}
	t.adm = kadm.NewClient(t.cl)
	return t, nil
}

func (t *dlqTarget) close() { t.cl.Close() }

// ids names events as the sink's delivery path does.
func (t *dlqTarget) ids() *dlq.IDs {
	return dlq.NewIDs(t.sink.IDField, func() (*schemas.Codec, error) { return app.BuildCodec(t.cfg) })
}

func listLetters(ctx context.Context, e *env, t *dlqTarget, f dlq.Filter, limit int, asJSON bool) error {
	topic := t.sink.DLQTopic
	out := newLetterPrinter(e.stdout, asJSON, false)
	n, err := dlq.List(ctx, t.adm, app.KafkaOpts(t.cfg), topic, f, limit, t.ids(), func(l dlq.Letter, id string) error {
		return out.row(l, id, "")
	})
	out.flush()
	if err != nil {
		return err
	}
	// The count goes to stderr with --output json, so stdout stays JSON lines.
	note := e.stdout
	if asJSON {
		note = e.stderr
	}
	switch {
	case n.Examined == 0:
		fmt.Fprintf(note, "no dead letters in %s\n", topic)
	case n.Shown == 0:
		fmt.Fprintf(note, "no dead letters match the filters (%d in %s)\n", n.Examined, topic)
	case !asJSON:
		fmt.Fprintf(note, "%d dead letters shown (%d read from %s)\n", n.Shown, n.Examined, topic)
	}
	return nil
}

func showLetter(ctx context.Context, e *env, t *dlqTarget, p int32, o int64) error {
	topic := t.sink.DLQTopic
	rec, err := dlq.ReadOne(ctx, t.adm, app.KafkaOpts(t.cfg), topic, p, o)
	if err != nil {
		return err
	}
	w := e.stdout
	fmt.Fprintf(w, "dead letter %s %d:%d, produced %s\n", topic, p, o, rec.Timestamp.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(w, "key: %s\n", printable(rec.Key))
	fmt.Fprintln(w, "headers:")
	for _, h := range rec.Headers {
		fmt.Fprintf(w, "  %s: %s\n", h.Key, printable(h.Value))
	}
	codec, err := app.BuildCodec(t.cfg)
	if err != nil {
		return err
	}
	body, err := dlq.DecodeBody(ctx, codec, rec.Value)
	switch {
	case err != nil:
		return err
	case body.Err == nil:
		fmt.Fprintf(w, "body: %s (schema id %d, %s), %d bytes:\n%s\n", body.Subject, body.SchemaID, body.Name, len(rec.Value), body.JSON)
		return nil
	case body.Undecodable:
		fmt.Fprintf(w, "body: undecodable: %v\n", body.Err)
	default:
		fmt.Fprintf(w, "body: not decoded: %v\n", body.Err)
	}
	fmt.Fprintf(w, "body as base64 (%d bytes):\n", len(rec.Value))
	b64 := base64.StdEncoding.EncodeToString(rec.Value)
	for len(b64) > 76 {
		fmt.Fprintf(w, "  %s\n", b64[:76])
		b64 = b64[76:]
	}
	fmt.Fprintf(w, "  %s\n", b64)
	if !body.Undecodable {
		return fmt.Errorf("decode the body of %d:%d: %w", p, o, body.Err) // the registry did not answer: worth another try
	}
	return nil
}

// printable renders a key or header value: quoted text, or base64 when it is
// not printable UTF-8.
func printable(b []byte) string {
	switch {
	case b == nil:
		return "(none)"
	case utf8.Valid(b) && !bytes.ContainsFunc(b, func(r rune) bool { return !unicode.IsPrint(r) }):
		return string(b)
	}
	return "base64:" + base64.StdEncoding.EncodeToString(b)
}

// letterPrinter prints letters as a table or as JSON lines.
type letterPrinter struct {
	w      io.Writer
	tw     *tabwriter.Writer
	json   *json.Encoder
	action bool // an ACTION column (redrive --dry-run)
	header bool
}

func newLetterPrinter(w io.Writer, asJSON, action bool) *letterPrinter {
	p := &letterPrinter{w: w, action: action}
	if asJSON {
		p.json = json.NewEncoder(w)
		p.json.SetEscapeHTML(false)
	} else {
		p.tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	}
	return p
}

// letterJSON is one line of --output json.
type letterJSON struct {
	Partition         int32  `json:"partition"`
	Offset            int64  `json:"offset"`
	EventID           string `json:"event_id"`
	ParkedAt          string `json:"parked_at"`
	Class             string `json:"class"`
	Status            int    `json:"status"`
	Attempts          int    `json:"attempts"`
	RedriveCount      int    `json:"redrive_count"`
	Error             string `json:"error"`
	Sink              string `json:"sink"`
	OriginalTopic     string `json:"original_topic"`
	OriginalPartition int32  `json:"original_partition"`
	OriginalOffset    int64  `json:"original_offset"`
	Action            string `json:"action,omitempty"`
}

func (p *letterPrinter) row(l dlq.Letter, id, action string) error {
	parked := ""
	if !l.ParkedAt.IsZero() {
		parked = l.ParkedAt.UTC().Format(time.RFC3339Nano)
	}
	if p.json != nil {
		return p.json.Encode(letterJSON{
			Partition: l.Rec.Partition, Offset: l.Rec.Offset, EventID: id, ParkedAt: parked, Class: l.Class,
			Status: l.Status, Attempts: l.Attempts, RedriveCount: l.Redrives, Error: l.ErrText, Sink: l.Sink,
			OriginalTopic: l.OrigTopic, OriginalPartition: l.OrigPartition, OriginalOffset: l.OrigOffset, Action: action,
		})
	}
	if !p.header {
		p.header = true
		h := "AT\tEVENT ID\tPARKED AT\tCLASS\tSTATUS\tATTEMPTS\tREDRIVES\tERROR"
		if p.action {
			h = "ACTION\t" + h
		}
		fmt.Fprintln(p.tw, h)
	}
	if p.action {
		fmt.Fprintf(p.tw, "%s\t", action)
	}
	_, err := fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", l.At(), orDash(id), orDash(parked), orDash(l.Class),
		l.Status, l.Attempts, l.Redrives, orDash(dlq.Shorten(l.ErrText, 60)))
	return err
}

func (p *letterPrinter) flush() {
	if p.tw != nil {
		p.tw.Flush()
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
