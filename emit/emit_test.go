package emit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/schemas"
)

func user(id string) string {
	return fmt.Sprintf(`{"id":%q,"email":"a@example.com","name":"A","plan":"PRO","created_at":"2026-12-04T10:00:00.000Z"}`, id)
}

const (
	id1 = "11111111-1111-4111-8111-111111111111"
	id2 = "22222222-2222-4222-8222-222222222222"
	id3 = "33333333-3333-4333-8333-333333333333"
)

// newEmitter is an Emitter of user.registered to topic "events" of a kfake
// cluster, and a func that reads back every record on it.
func newEmitter(t *testing.T) (*Emitter, func() []*kgo.Record) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	reg, err := schemas.NewLocal(schemas.Builtin(), schemas.BuiltinSubjects)
	if err != nil {
		t.Fatal(err)
	}
	em := New(Config{Topic: "events", Type: "user.registered", KeyField: "id", IDField: "id"}, schemas.NewCodec(reg), cl)
	read := func() []*kgo.Record {
		rd, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("events"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var recs []*kgo.Record
		for ctx.Err() == nil {
			recs = append(recs, rd.PollFetches(ctx).Records()...)
		}
		return recs
	}
	return em, read
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Every line is produced, keyed and headed by its id, each with a trace of
// its own; blank lines are skipped.
func TestLinesProducesEachDocument(t *testing.T) {
	em, read := newEmitter(t)
	acked, err := em.Lines(context.Background(), strings.NewReader(user(id1)+"\n\n  "+user(id2)+"  \n"+user(id3)+"\n"))
	if err != nil || acked != 3 {
		t.Fatalf("Lines: acked %d, err %v; want 3, nil", acked, err)
	}
	recs := read()
	if len(recs) != 3 {
		t.Fatalf("%d records on the topic, want 3", len(recs))
	}
	traces := map[string]bool{}
	for i, want := range []string{id1, id2, id3} {
		r := recs[i]
		if string(r.Key) != want || header(r, "event-id") != want {
			t.Errorf("record %d: key %q event-id %q, want %q", i, r.Key, header(r, "event-id"), want)
		}
		tp := header(r, "traceparent")
		if tp == "" {
			t.Errorf("record %d has no traceparent", i)
		}
		traces[tp] = true
	}
	if len(traces) != 3 {
		t.Errorf("%d distinct traceparents for 3 events, want one each", len(traces))
	}
}

// A bad line is a DocError naming its line number; nothing after it is sent.
func TestLinesStopsAtTheBadLine(t *testing.T) {
	em, read := newEmitter(t)
	in := user(id1) + "\n\n" + `{"id":"x"}` + "\n" + user(id2) + "\n"
	acked, err := em.Lines(context.Background(), strings.NewReader(in))
	var de *DocError
	if !errors.As(err, &de) || de.Line != 3 || !strings.HasPrefix(err.Error(), "line 3: ") {
		t.Fatalf("Lines: err %v, want a DocError at line 3", err)
	}
	if acked != 1 {
		t.Errorf("acked %d, want 1 (the line before the bad one)", acked)
	}
	if recs := read(); len(recs) != 1 || string(recs[0].Key) != id1 {
		t.Errorf("%d records on the topic, want only the first", len(recs))
	}
}

// One bad document: a DocError without a line number.
func TestOneBadDocument(t *testing.T) {
	em, _ := newEmitter(t)
	acked, err := em.One(context.Background(), []byte(`{"id":"x"}`))
	var de *DocError
	if !errors.As(err, &de) || de.Line != 0 || strings.HasPrefix(err.Error(), "line") || acked != 0 {
		t.Fatalf("One: acked %d, err %v; want 0 and a DocError without a line", acked, err)
	}
	if acked, err := em.One(context.Background(), []byte(user(id1))); err != nil || acked != 1 {
		t.Fatalf("One: acked %d, err %v; want 1, nil", acked, err)
	}
}
