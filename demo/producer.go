package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/emit"
	"github.com/fanout-dev/fanout/schemas"
	"github.com/fanout-dev/fanout/tracing"
)

// Producer plays the sign-up service: it publishes user.registered events to
// Topic at Rate events per second until its context ends.
type Producer struct {
	Codec *schemas.Codec
	Addrs []string // the brokers
	Rate  int

	produced, repeated atomic.Int64
	finished           atomic.Bool
}

// Produced is how many records it has handed to the client so far, repeats
// included.
func (p *Producer) Produced() int64 { return p.produced.Load() }

// Repeated is how many of them were an event published again.
func (p *Producer) Repeated() int64 { return p.repeated.Load() }

// Finished reports whether Run has returned.
func (p *Producer) Finished() bool { return p.finished.Load() }

var plans = []string{"FREE", "FREE", "FREE", "PRO", "ENTERPRISE"}

// ExampleUser returns one user.registered event as plain JSON: a fresh
// UUIDv4 id, user<n>@example.com (1 in 100 without the @, which the profile
// API rejects), a plan, and every third a referrer.
func ExampleUser(n int) []byte {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	id := h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	email := fmt.Sprintf("user%d@example.com", n)
	if mrand.IntN(100) == 0 {
		email = fmt.Sprintf("user%d.example.com", n) // the profile API rejects it
	}
	ev := map[string]any{
		"id": id, "email": email, "name": fmt.Sprintf("User %d", n), "plan": plans[mrand.IntN(len(plans))],
		"created_at": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), "metadata": map[string]string{"source": "demo"},
	}
	if n%3 == 0 {
		ev["referrer"] = "newsletter"
	}
	doc, _ := json.Marshal(ev)
	return doc
}

// Run publishes until ctx ends, then flushes; it returns the first produce
// error. About 1 event in 50 is published a second time, as an upstream
// retry would.
func (p *Producer) Run(ctx context.Context) error {
	defer p.finished.Store(true)
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addrs...), kgo.DefaultProduceTopic(Topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	var prodErr atomic.Value
	tick := time.NewTicker(time.Second / time.Duration(min(p.Rate, 1000)))
	defer tick.Stop()
	perTick := max(p.Rate/1000, 1)
	var last *kgo.Record
	for n := 0; ; {
		select {
		case <-ctx.Done():
			if err := cl.Flush(context.Background()); err != nil {
				return err
			}
			if e, ok := prodErr.Load().(error); ok {
				return e
			}
			return nil
		case <-tick.C:
		}
		for range perTick {
			n++
			value, rec, err := p.Codec.EncodeJSON(ctx, "user.registered", ExampleUser(n))
			if err != nil {
				return err
			}
			id, _ := rec.Field("id")
			r := &kgo.Record{Key: []byte(id), Value: value, Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte(id)}}}
			tracing.InjectRecord(emit.NewTrace(ctx), r)
			p.produce(ctx, cl, r, &prodErr)
			if last != nil && mrand.IntN(50) == 0 {
				// An upstream retry: the same event published again.
				again := &kgo.Record{Key: last.Key, Value: last.Value, Headers: last.Headers}
				p.repeated.Add(1)
				p.produce(ctx, cl, again, &prodErr)
			}
			last = r
		}
	}
}

func (p *Producer) produce(ctx context.Context, cl *kgo.Client, r *kgo.Record, errOut *atomic.Value) {
	p.produced.Add(1)
	cl.Produce(context.WithoutCancel(ctx), r, func(_ *kgo.Record, err error) {
		if err != nil {
			errOut.Store(err)
		}
	})
}
