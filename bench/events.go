package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// batch is the events of one topic: n user.registered events whose ids carry
// their index (the last 12 hex digits of the uuid), so a target knows which
// event arrived without a lookup and the record timestamp is one array read.
type batch struct {
	topic  string
	n      int
	keys   int    // distinct record keys, event i has key i % keys
	prefix string // every id of the batch starts with it
	ts     []atomic.Int64

	tmpl      [][]byte // Confluent-framed Avro templates; the id is patched in
	jsonBytes int      // mean size of the JSON body fanout sends
	avroBytes int      // mean size of the Avro value
	sample    []byte   // one event's JSON, the body of raw HTTP requests
}

// idOffset is where the id's 36 bytes start in a user.registered value: magic
// byte, 4-byte schema id, then the id string's length (36, zigzag varint 0x48),
// since id is the schema's first field.
const idOffset = 6

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Leslie", "Margaret", "Dennis"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Lamport", "Hamilton", "Ritchie"}
	plans      = []string{"FREE", "FREE", "FREE", "PRO", "ENTERPRISE"}
	locales    = []string{"en-GB", "en-US", "de-DE", "fr-FR", "ja-JP", "pt-BR"}
	agents     = []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
	}
)

// eventDoc is a realistic user.registered event as plain JSON (~330 bytes of
// Avro, ~500 of JSON).
func eventDoc(id string, i int) []byte {
	first, last := firstNames[i%len(firstNames)], lastNames[(i/len(firstNames))%len(lastNames)]
	ref := "null"
	if i%3 != 0 {
		ref = fmt.Sprintf("%q", fmt.Sprintf("https://news.example.org/2026/11/launch-week?utm_campaign=c%d", i%17))
	}
	created := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	return fmt.Appendf(nil, `{"id":%q,"email":"%s.%s%d@example.com","name":"%s %s","plan":%q,"created_at":%q,"referrer":%s,`+
		`"metadata":{"source":"signup-web","locale":%q,"ip":"203.0.113.%d","user_agent":%q,"campaign":"launch-week-%d","experiment":"onboarding-v%d"}}`,
		id, first, last, i, first, last, plans[i%len(plans)], created.Format("2006-01-02T15:04:05.000Z"), ref,
		locales[i%len(locales)], i%250+1, agents[i%len(agents)], i%17, i%4)
}

// templates is how many distinct event bodies a batch has. Each event is one
// of them with its own id patched in. 4,096 events (~1.4 MB) span many 64 KiB
// snappy blocks (the producer's default compression), so no body repeats
// within a block and the batches compress like real traffic, not like copies.
const templates = 4096

// newBatch prepares n events for topic: up to 4,096 distinct event bodies
// encoded with fanout's own codec, into which each event's unique id is patched.
func (e *env) newBatch(ctx context.Context, topic string, n, keys int) (*batch, error) {
	b := &batch{topic: topic, n: n, keys: max(keys, 1), ts: make([]atomic.Int64, n),
		prefix: fmt.Sprintf("%08x-%04x-4000-8000-", e.nonce, e.seq.Add(1)&0xffff)}
	var total, avro int
	for i := range min(n, templates) {
		value, rec, err := e.codec.EncodeJSON(ctx, "user.registered", eventDoc(b.id(i), i))
		if err != nil {
			return nil, fmt.Errorf("encode event: %w", err)
		}
		if value[idOffset-1] != 2*36 || string(value[idOffset:idOffset+36]) != b.id(i) {
			return nil, fmt.Errorf("encoded user.registered does not start with its id: the schema changed?")
		}
		b.tmpl = append(b.tmpl, value)
		total += len(rec.JSON)
		avro += len(value)
		if i == 0 {
			b.sample = rec.JSON
		}
	}
	b.jsonBytes = total / len(b.tmpl)
	b.avroBytes = avro / len(b.tmpl)
	if e.sizes.Avro == 0 {
		e.sizes = eventSizes{Avro: b.avroBytes, JSON: b.jsonBytes, Compression: e.opts.compression}
	}
	// The patched value must decode to the patched id, or the bench measures
	// something else than it says.
	v := b.value(n - 1)
	rec, err := e.codec.Decode(ctx, v)
	if err != nil {
		return nil, fmt.Errorf("patched event does not decode: %w", err)
	}
	if id, _ := rec.Field("id"); id != b.id(n-1) {
		return nil, fmt.Errorf("patched event decodes to id %q, want %q", id, b.id(n-1))
	}
	return b, nil
}

func (b *batch) id(i int) string { return b.prefix + fmt.Sprintf("%012x", i) }

// index returns the event index of an id of this batch.
func (b *batch) index(id string) (int, bool) {
	if len(id) != 36 || id[:len(b.prefix)] != b.prefix {
		return 0, false
	}
	i, err := strconv.ParseUint(id[len(b.prefix):], 16, 48)
	if err != nil || int(i) >= b.n {
		return 0, false
	}
	return int(i), true
}

// value is event i in Confluent wire format.
func (b *batch) value(i int) []byte {
	t := b.tmpl[i%len(b.tmpl)]
	v := make([]byte, len(t))
	copy(v, t)
	copy(v[idOffset:], b.id(i))
	return v
}

// record is event i as a Kafka record, stamped now: its timestamp is the
// start of the end-to-end latency.
func (b *batch) record(i int) *kgo.Record {
	id := b.id(i)
	var tp [25]byte
	rand.Read(tp[:])
	h := hex.EncodeToString(tp[:])
	now := time.Now()
	b.ts[i].Store(now.UnixNano())
	return &kgo.Record{
		Topic:     b.topic,
		Key:       []byte("tenant-" + strconv.Itoa(i%b.keys)),
		Value:     b.value(i),
		Timestamp: now,
		Headers: []kgo.RecordHeader{
			{Key: "event-id", Value: []byte(id)},
			{Key: "traceparent", Value: []byte("00-" + h[:32] + "-" + h[32:48] + "-01")},
		},
	}
}

// compressions are the producer's batch codecs by -compression name.
var compressions = map[string]kgo.CompressionCodec{
	"none": kgo.NoCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(),
	"zstd": kgo.ZstdCompression(), "gzip": kgo.GzipCompression(),
}

// producer writes batches; errors of asynchronous produces are kept.
type producer struct {
	cl  *kgo.Client
	err atomic.Pointer[error]
}

// newProducer returns a client with the given linger (0: send at once, for
// latency; a few ms: bigger batches, for backlogs).
func (e *env) newProducer(linger time.Duration) (*producer, error) {
	codec, ok := compressions[e.opts.compression]
	if !ok {
		return nil, fmt.Errorf("-compression %q: want one of none, snappy, lz4, zstd, gzip", e.opts.compression)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ProducerLinger(linger),
		kgo.MaxBufferedRecords(20000), kgo.ProducerBatchCompression(codec))
	if err != nil {
		return nil, err
	}
	return &producer{cl: cl}, nil
}

func (p *producer) close() { p.cl.Close() }

func (p *producer) produce(ctx context.Context, r *kgo.Record) {
	p.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
		if err != nil {
			p.err.CompareAndSwap(nil, &err)
		}
	})
}

// flush waits for every produce and returns the first error.
func (p *producer) flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return err
	}
	if e := p.err.Load(); e != nil {
		return fmt.Errorf("produce: %w", *e)
	}
	return nil
}

// produceAll writes events [from, to) of b as fast as Kafka takes them.
func (e *env) produceAll(ctx context.Context, b *batch, from, to int) error {
	p, err := e.newProducer(5 * time.Millisecond)
	if err != nil {
		return err
	}
	defer p.close()
	start := time.Now()
	for i := from; i < to && ctx.Err() == nil; i++ {
		p.produce(ctx, b.record(i))
	}
	if err := p.flush(ctx); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	el := time.Since(start)
	fmt.Fprintf(e.log, "  produced %d events to %s in %.1fs (%.0f/s)\n", to-from, b.topic, el.Seconds(), float64(to-from)/el.Seconds())
	return nil
}

// eventSizes describes the events of a run, for the report.
type eventSizes struct {
	Avro        int    `json:"avro_bytes"` // mean Confluent-framed value
	JSON        int    `json:"json_bytes"` // mean body fanout sends
	Compression string `json:"compression"`
	// Per record in fetched batches, as the raw consumer read them: the
	// records' bytes (key, value, headers, framing) before and after the
	// producer's compression. 0 when no raw consume ran.
	BatchBytes      float64 `json:"batch_bytes_per_event"`
	CompressedBytes float64 `json:"compressed_bytes_per_event"`
}

// produceAt writes events [from, to) of b at rate events/s, each stamped when
// it is handed to the client (linger 0: sent at once).
func (e *env) produceAt(ctx context.Context, b *batch, from, to int, rate float64) error {
	p, err := e.newProducer(0)
	if err != nil {
		return err
	}
	defer p.close()
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := from; i < to && ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i-from) * interval)); d > 0 {
			time.Sleep(d)
		}
		p.produce(ctx, b.record(i))
	}
	if err := p.flush(ctx); err != nil {
		return err
	}
	return ctx.Err()
}
