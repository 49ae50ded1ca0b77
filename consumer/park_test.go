package consumer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/letter"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// createTopic creates a one-partition topic with max.message.bytes limit
// (0: the broker's default).
func createTopic(t *testing.T, adm *kadm.Client, topic string, limit int) {
	t.Helper()
	var cfg map[string]*string
	if limit > 0 {
		v := strconv.Itoa(limit)
		cfg = map[string]*string{"max.message.bytes": &v}
	}
	if _, err := adm.CreateTopic(context.Background(), 1, 1, cfg, topic); err != nil {
		t.Fatal(err)
	}
}

// limitsOf asks the broker for the topics' max.message.bytes, as fanout run does.
func limitsOf(t *testing.T, adm *kadm.Client, topics ...string) map[string]int32 {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(context.Background(), topics...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int32{}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "max.message.bytes" {
				n, _ := strconv.Atoi(c.MaybeValue())
				out[rc.Name] = int32(n)
			}
		}
	}
	if len(out) != len(topics) {
		t.Fatalf("limits %v for %v", out, topics)
	}
	return out
}

// withSize returns a record with value padded so that RecordBytes is n.
func withSize(t *testing.T, r *kgo.Record, n int) *kgo.Record {
	t.Helper()
	r.Value = nil
	for range 3 { // the value's length varint grows with it
		r.Value = append(r.Value[:0], randomBytes(t, max(0, len(r.Value)+n-RecordBytes(r)))...)
	}
	if got := RecordBytes(r); got != n {
		t.Fatalf("record of %d bytes, want %d", got, n)
	}
	return r
}

// RecordBytes is exactly what the broker measures against max.message.bytes,
// and ProducerSizing lets franz-go send a record of exactly the limit.
func TestRecordBytesIsTheBrokersLimit(t *testing.T) {
	addrs := newCluster(t)
	adm := adminFor(t, addrs)
	const limit = 5000
	createTopic(t, adm, "t-size", limit)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerBatchCompression(kgo.NoCompression()),
		ProducerSizing(limitsOf(t, adm, "t-size")))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, tc := range []struct {
		size int
		want error
	}{{limit, nil}, {limit + 1, kerr.MessageTooLarge}} {
		r := withSize(t, &kgo.Record{Topic: "t-size", Key: []byte("k"), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}, tc.size)
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); !errors.Is(err, tc.want) {
			t.Errorf("record of %d bytes on a topic of max.message.bytes %d: err %v, want %v", tc.size, limit, err, tc.want)
		}
	}
	// The broker itself, past franz-go's check: a client sized above the
	// topic's limit sends the record and the broker refuses it.
	big, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	r := withSize(t, &kgo.Record{Topic: "t-size"}, limit+1)
	if err := big.ProduceSync(context.Background(), r).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Errorf("broker took a record of %d bytes: %v", limit+1, err)
	}
}

// ParkOverhead bounds what a parked copy adds to the original record.
func TestParkOverheadBoundsParkedRecord(t *testing.T) {
	const topic, sink = "events.main", "email"
	r := &kgo.Record{Topic: topic, Partition: 1234, Offset: 9876543210, Timestamp: time.Now(),
		Key: []byte("key"), Value: randomBytes(t, 1_001_000), Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("x")}}}
	// A record back from a tier, with every fanout header already set.
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: letter.HeaderTopic, Value: []byte(topic)}, kgo.RecordHeader{Key: letter.HeaderAttempts, Value: []byte("999999")},
		kgo.RecordHeader{Key: letter.HeaderRedriveCount, Value: []byte("12")})
	out := Outcome{Verdict: DeadLetter, Reason: "retries-exhausted", Err: errors.New(strings.Repeat("é", 1000)), Status: 503,
		Attempts: 5, Excerpt: strings.Repeat("y", 5000)}
	parked := ParkedRecord(topic+".email.retry.2", sink, r, out, time.Now(), &Tier{Number: 2, Delay: time.Hour})
	orig := &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers[:1]}
	added := RecordBytes(parked) - RecordBytes(orig) + batchOverhead // the original's own batch overhead counts once
	if over := ParkOverhead(topic, sink); added > over || over > 4096 {
		t.Fatalf("a parked copy adds %d bytes, ParkOverhead says %d", added, over)
	}
}

func TestStub(t *testing.T) {
	value := randomBytes(t, 50_000)
	sum := sha256.Sum256(value)
	bigKey := bytes.Repeat([]byte("k"), 300)
	full := func(key []byte) *kgo.Record {
		r := &kgo.Record{Topic: "t", Partition: 2, Offset: 41, Key: key, Value: value, Timestamp: time.Now(),
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("e-1")}, {Key: "traceparent", Value: []byte("00-x")}}}
		return ParkedRecord("t.s.dlq", "s", r, Outcome{Verdict: DeadLetter, Reason: "permanent", Status: 400, Attempts: 1,
			Err: errors.New(strings.Repeat("e", 1000)), Excerpt: "bad"}, time.Now(), nil)
	}
	for _, tc := range []struct {
		name          string
		level         Level
		key, wantKey  []byte
		wantOwn       bool
		wantErrorLen  int
		wantExcerpt   string
		wantKeyHeader string
	}{
		{"stub keeps key and headers", StubLetter, []byte("user-1"), []byte("user-1"), true, 1000, "bad", ""},
		{"stub keeps even a big key", StubLetter, bigKey, bigKey, true, 1000, "bad", ""},
		{"bare keeps a small key", BareStub, []byte("user-1"), []byte("user-1"), false, 256, "", ""},
		{"bare replaces a big key", BareStub, bigKey, []byte(hex.EncodeToString(func() []byte { s := sha256.Sum256(bigKey); return s[:] }())), false, 256, "", "300"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := full(tc.key)
			s := Stub(f, "full record refused: MESSAGE_TOO_LARGE", tc.level)
			if !bytes.Equal(s.Key, tc.wantKey) || s.Topic != "t.s.dlq" {
				t.Errorf("key %q topic %s", s.Key, s.Topic)
			}
			var v StubValue
			if err := json.Unmarshal(s.Value, &v); err != nil {
				t.Fatalf("stub value %q: %v", s.Value, err)
			}
			if v.Stub != "value dropped" || v.OriginalBytes != len(value) || v.SHA256 != hex.EncodeToString(sum[:]) ||
				!strings.Contains(v.Reason, "MESSAGE_TOO_LARGE") || len(s.Value) > 512 {
				t.Errorf("stub value %s", s.Value)
			}
			h := headersOf(s)
			if h[letter.HeaderValueDropped] != strconv.Itoa(len(value)) || h[letter.HeaderValueSHA256] != v.SHA256 || !IsStub(s) {
				t.Errorf("stub marks %v", h)
			}
			// The original coordinates and the failure stay.
			if h[letter.HeaderTopic] != "t" || h[letter.HeaderPartition] != "2" || h[letter.HeaderOffset] != "41" || h[letter.HeaderSink] != "s" ||
				h[letter.HeaderErrorClass] != "permanent" || h[letter.HeaderStatus] != "400" || len(h[letter.HeaderError]) != tc.wantErrorLen ||
				h[letter.HeaderExcerpt] != tc.wantExcerpt || h[letter.HeaderKeyDropped] != tc.wantKeyHeader {
				t.Errorf("headers %v", h)
			}
			if own := h["event-id"] == "e-1" && h["traceparent"] == "00-x"; own != tc.wantOwn {
				t.Errorf("own headers kept %v, want %v: %v", own, tc.wantOwn, h)
			}
			if !tc.wantOwn && h[letter.HeaderHeadersDropped] != "2" {
				t.Errorf("bare stub says %q own headers dropped, want 2", h[letter.HeaderHeadersDropped])
			}
			// Stubbing a stub (a stub letter parked again) keeps the
			// original's size and hash, not the stub's.
			again := Stub(ParkedRecord("t.s.dlq", "s", s, Outcome{Verdict: DeadLetter, Reason: "undecodable"}, time.Now(), nil), "again", BareStub)
			if ha := headersOf(again); ha[letter.HeaderValueDropped] != strconv.Itoa(len(value)) || ha[letter.HeaderValueSHA256] != v.SHA256 || !bytes.Equal(again.Value, s.Value) {
				t.Errorf("stub of a stub: %v %s", ha, again.Value)
			}
		})
	}
}

// A record near 1 MB that must be parked — one of 1,001,000 bytes, above
// franz-go's default batch limit, and one of exactly the main topic's
// max.message.bytes, whose parked copy cannot fit the DLQ — ends parked (in
// full, or as a stub letter), and the partition goes on: later records are
// handled and the group commits to the end.
func TestParkNearMegabyteRecords(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addrs := c.ListenAddrs()
	adm := adminFor(t, addrs)
	topic := "t-large"
	createTopic(t, adm, topic, 0)
	createTopic(t, adm, topic+".s.dlq", 0)
	limits := limitsOf(t, adm, topic, topic+".s.dlq")
	mainLimit := int(limits[topic])

	prod, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()), ProducerSizing(limits))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	hdr := []kgo.RecordHeader{{Key: "event-id", Value: []byte("e")}}
	big := &kgo.Record{Key: []byte("a"), Value: randomBytes(t, 1_001_000), Headers: hdr}
	exact := withSize(t, &kgo.Record{Key: []byte("b"), Headers: hdr}, mainLimit)
	recs := []*kgo.Record{big, exact}
	for i := range 5 {
		recs = append(recs, &kgo.Record{Key: []byte("c"), Value: []byte("small-" + strconv.Itoa(i))})
	}
	for _, r := range recs {
		if err := prod.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatalf("produce a record of %d bytes: %v", RecordBytes(r), err)
		}
	}

	var handled []string
	h := HandlerFunc(func(_ context.Context, r *kgo.Record) Outcome {
		handled = append(handled, string(r.Key))
		if len(r.Value) > 1000 {
			return Outcome{Verdict: DeadLetter, Reason: "permanent", Status: 400, Attempts: 1, Err: errors.New("http 400")}
		}
		return Outcome{Verdict: Done}
	})
	cfg := cfgFor(topic, ByPartition)
	cons, err := New(cfg, h, testLogger(), kgo.SeedBrokers(addrs...), ProducerSizing(limits))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	waitCommitted(t, addrs, cfg.Group, topic)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(handled, ""); got != "abccccc" {
		t.Fatalf("handled %q, want abccccc", got)
	}
	dlq := readAll(t, addrs, topic+".s.dlq", 2)
	for _, r := range dlq {
		hs := headersOf(r)
		if hs["event-id"] != "e" || hs[letter.HeaderTopic] != topic || hs[letter.HeaderErrorClass] != "permanent" {
			t.Errorf("letter %s: headers %v", r.Key, hs)
		}
		switch string(r.Key) {
		case "a": // fits the DLQ in full
			if !bytes.Equal(r.Value, big.Value) || IsStub(r) {
				t.Errorf("the 1,001,000-byte record was not parked in full: %d bytes, headers %v", len(r.Value), hs)
			}
		case "b": // exactly the main topic's limit: its copy does not fit
			sum := sha256.Sum256(exact.Value)
			if !IsStub(r) || hs[letter.HeaderValueDropped] != strconv.Itoa(len(exact.Value)) || hs[letter.HeaderValueSHA256] != hex.EncodeToString(sum[:]) {
				t.Errorf("the record of %d bytes was not parked as a stub: %d bytes, headers %v", mainLimit, len(r.Value), hs)
			}
		}
	}
}

// A topic smaller than the producer was sized for refuses the record; the
// park goes on to a stub, then a bare stub, never an endless retry.
func TestProduceParkedStubsWhatTheBrokerRefuses(t *testing.T) {
	addrs := newCluster(t)
	adm := adminFor(t, addrs)
	createTopic(t, adm, "t-small", 20_000)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerBatchCompression(kgo.NoCompression())) // franz-go's default sizing: 1,000,012
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cases := []struct {
		name   string
		rec    *kgo.Record
		want   Level
		wantOK func(r *kgo.Record) bool
	}{
		{"fits", &kgo.Record{Value: randomBytes(t, 10_000)}, FullCopy, func(r *kgo.Record) bool { return len(r.Value) == 10_000 }},
		{"value too large", &kgo.Record{Key: []byte("k"), Value: randomBytes(t, 30_000), Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("e")}}},
			StubLetter, func(r *kgo.Record) bool { return headersOf(r)["event-id"] == "e" && string(r.Key) == "k" }},
		{"own headers too large", &kgo.Record{Key: []byte("k"), Value: randomBytes(t, 30_000), Headers: []kgo.RecordHeader{{Key: "big", Value: randomBytes(t, 25_000)}}},
			BareStub, func(r *kgo.Record) bool {
				return headersOf(r)["big"] == "" && headersOf(r)[letter.HeaderHeadersDropped] == "1"
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.rec.Topic = "t-small"
			build := func() *kgo.Record {
				return ParkedRecord("t-small", "s", tc.rec, Outcome{Verdict: DeadLetter, Reason: "too-large", Err: errors.New("x")}, time.Now(), nil)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			level, err := ProduceParked(ctx, cl, build, testLogger())
			if err != nil || level != tc.want {
				t.Fatalf("parked %s, err %v; want %s", level, err, tc.want)
			}
		})
	}
	for i, r := range readAll(t, addrs, "t-small", len(cases)) {
		if tc := cases[i]; IsStub(r) != (tc.want > FullCopy) || !tc.wantOK(r) {
			t.Errorf("%s: parked record stub %v, headers %v", tc.name, IsStub(r), headersOf(r))
		}
	}
}

// Which produce errors make a stub (the record's content is refused) and
// which are retried: an ACL refusal or a missing topic is not the record's
// fault, and a stub would lose the value for a cause an operator can fix.
func TestParkErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		err              error
		refused, retried bool
	}{
		{kerr.MessageTooLarge, true, false},
		{fmt.Errorf("%w (uncompressed_bytes=1001100)", kerr.MessageTooLarge), true, false}, // franz-go's own check
		{kerr.RecordListTooLarge, true, false},
		{kerr.InvalidRecord, true, false},
		{kerr.InvalidTimestamp, true, false},
		{kerr.TopicAuthorizationFailed, false, false},
		{kerr.UnknownTopicOrPartition, false, true},
		{kerr.NotLeaderForPartition, false, true},
		{kgo.ErrRecordTimeout, false, true},
		{kgo.ErrRecordRetries, false, true},
		{errors.New("dial tcp: connection refused"), false, true},
	} {
		if got := refusesRecord(tc.err); got != tc.refused {
			t.Errorf("%v: refuses the record %v, want %v", tc.err, got, tc.refused)
		}
		if got := retriable(tc.err); !tc.refused && got != tc.retried {
			t.Errorf("%v: retriable %v, want %v", tc.err, got, tc.retried)
		}
	}
}
