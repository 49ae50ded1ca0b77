package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/letter"
)

// largeEvent encodes a user.registered event whose metadata is padded so
// that the record value is exactly size bytes.
func largeEvent(t *testing.T, id string, size int) []byte {
	t.Helper()
	codec := builtinCodec(t)
	pad := size
	for range 5 {
		doc := fmt.Appendf(nil, `{"id":%q,"email":"big@example.com","name":"Big","plan":"PRO","created_at":"2026-11-27T12:00:00.000Z","referrer":null,"metadata":{"pad":%q}}`,
			id, strings.Repeat("x", max(pad, 0)))
		value, _, err := codec.EncodeJSON(context.Background(), "user.registered", doc)
		if err != nil {
			t.Fatal(err)
		}
		if len(value) == size {
			return value
		}
		pad += size - len(value)
	}
	t.Fatalf("could not make an event of %d bytes", size)
	return nil
}

// Records near 1 MB that must be parked do not stall their partition, on the
// real broker with its default limits (max.message.bytes 1048588 on every
// topic): one of 1,001,000 bytes (above franz-go's default batch limit of
// 1,000,012, which used to loop on MESSAGE_TOO_LARGE), one of exactly the
// main topic's limit (too large for fanout's headers on any park topic), one
// whose value fits max_event_bytes but whose own headers make the parked
// copy too large. A sink whose API answers 400 parks them on its DLQ; one
// whose API answers 503 parks them in its retry tier, then its DLQ. Each
// ends parked — in full where it fits, as a stub letter where it does not —,
// the partition's later records are delivered, and every group commits to
// the end. A redrive then delivers the full letter and sends no stub.
func TestNearMegabyteRecordsAreParkedNotStalled(t *testing.T) {
	s := newScenario(t, "large", 5)
	// UUIDs, as the schema wants: b(ig), e(xact), a (headers).
	bigID, exactID, headerID := "00000000-0000-4000-8000-b00000000001", "00000000-0000-4000-8000-e00000000002", "00000000-0000-4000-8000-a00000000003"
	large := map[string]bool{bigID: true, exactID: true, headerID: true}
	var healed atomic.Bool
	bad := newTarget(t, 0, func(key string, _ int) int {
		if large[key] && !healed.Load() {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	busy := newTarget(t, 0, func(key string, _ int) int {
		if large[key] {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s.writeConfig(
		sinkSpec{name: "bad", target: bad, extra: "ordering: partition"},
		sinkSpec{name: "busy", target: busy, extra: "ordering: partition\nretry: {attempts: 2, backoff_base: 5ms, backoff_cap: 10ms, tiers: [1s]}"},
	)
	s.fanout("topics", "ensure", "-c", s.cfg, "--partitions", "3")

	// The main topic's limit, as the broker reports it.
	rcs, err := admin(t).DescribeTopicConfigs(context.Background(), s.topic)
	if err != nil {
		t.Fatal(err)
	}
	limit := 0
	for _, c := range rcs[0].Configs {
		if c.Key == "max.message.bytes" {
			limit, _ = strconv.Atoi(c.MaybeValue())
		}
	}
	if limit < 1_010_000 {
		t.Fatalf("main topic max.message.bytes %d", limit)
	}

	// All on one partition (one key), the large ones first: the small ones
	// are delivered only if the large ones do not stall it.
	key := []byte("one-partition")
	hdr := func(id string) []kgo.RecordHeader { return []kgo.RecordHeader{{Key: "event-id", Value: []byte(id)}} }
	big := &kgo.Record{Topic: s.topic, Key: key, Value: largeEvent(t, bigID, 1_001_000), Headers: hdr(bigID)}
	exact := &kgo.Record{Topic: s.topic, Key: key, Headers: hdr(exactID)}
	for size := limit - consumer.RecordBytes(exact); consumer.RecordBytes(exact) != limit && size > 0; size += limit - consumer.RecordBytes(exact) {
		exact.Value = largeEvent(t, exactID, size)
	}
	if n := consumer.RecordBytes(exact); n != limit {
		t.Fatalf("exact record of %d bytes, want %d", n, limit)
	}
	// Its value is below max_event_bytes, its own headers bring it to 100
	// bytes below the main topic's limit: the fanout-* headers of a park
	// take it over.
	withHeaders := &kgo.Record{Topic: s.topic, Key: key, Value: largeEvent(t, headerID, 1_030_000),
		Headers: append(hdr(headerID), kgo.RecordHeader{Key: "x-padding"})}
	withHeaders.Headers[1].Value = bytes.Repeat([]byte("p"), limit-100-consumer.RecordBytes(withHeaders)-2)
	if n := consumer.RecordBytes(withHeaders); n != limit-100 {
		t.Fatalf("record with headers of %d bytes, want %d", n, limit-100)
	}
	recs := []*kgo.Record{big, exact, withHeaders}
	codec := builtinCodec(t)
	for i, id := range s.ids {
		value, _, err := codec.EncodeJSON(context.Background(), "user.registered", s.docs[i])
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: s.topic, Key: key, Value: value, Headers: hdr(id)})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr), kgo.ProducerBatchCompression(kgo.NoCompression()),
		consumer.ProducerSizing(map[string]int32{s.topic: int32(limit)}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, r := range recs {
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatalf("produce %s (%d bytes): %v", header(r, "event-id"), consumer.RecordBytes(r), err)
		}
	}

	p := s.start()
	waitFor(t, 3*time.Minute, "every group committed to the end", func() (bool, string) {
		var why []string
		for _, g := range [][2]string{{s.topic, "bad"}, {s.topic, "busy"}, {s.topic + ".busy.retry.1", "busy.retry.1"}} {
			if ok, d := s.committedTopicAtEnd(g[0], g[1]); !ok {
				why = append(why, g[1]+": "+d)
			}
		}
		return len(why) == 0, strings.Join(why, "; ")
	})
	checkAccepted(t, "bad", bad, s.ids, 0)
	checkAccepted(t, "busy", busy, s.ids, 0)
	if out := p.out.String(); !strings.Contains(out, "max_event_bytes lowered") {
		t.Errorf("fanout run did not say it lowered max_event_bytes:\n%s", tail(out, 30))
	}

	// What each sink parked: full where it fits, a stub where it does not.
	type want struct {
		stub  bool
		class string
	}
	for sink, wants := range map[string]map[string]want{
		"bad":  {bigID: {false, "permanent"}, exactID: {true, "too-large"}, headerID: {true, "permanent"}},
		"busy": {bigID: {false, "retries-exhausted"}, exactID: {true, "too-large"}, headerID: {true, "undecodable"}},
	} {
		var letters []*kgo.Record
		waitFor(t, time.Minute, sink+"'s DLQ holds 3 letters", func() (bool, string) {
			letters = readTopic(t, s.topic+"."+sink+".dlq")
			return len(letters) == 3, fmt.Sprintf("%d letters", len(letters))
		})
		for _, l := range letters {
			id := header(l, "event-id")
			w, ok := wants[id]
			if !ok {
				t.Errorf("%s: unexpected letter %q", sink, id)
				continue
			}
			orig := map[string]*kgo.Record{bigID: big, exactID: exact, headerID: withHeaders}[id]
			if got := header(l, letter.HeaderErrorClass); got != w.class {
				t.Errorf("%s %s: class %q, want %q", sink, id, got, w.class)
			}
			if header(l, letter.HeaderTopic) != s.topic || header(l, letter.HeaderOffset) == "" || header(l, letter.HeaderSink) != sink {
				t.Errorf("%s %s: lost its coordinates: topic %q offset %q", sink, id, header(l, letter.HeaderTopic), header(l, letter.HeaderOffset))
			}
			if !w.stub {
				if consumer.IsStub(l) || !bytes.Equal(l.Value, orig.Value) {
					t.Errorf("%s %s: not parked in full (%d bytes, stub %v)", sink, id, len(l.Value), consumer.IsStub(l))
				}
				continue
			}
			sum := sha256.Sum256(orig.Value)
			var sv consumer.StubValue
			if err := json.Unmarshal(l.Value, &sv); err != nil || !consumer.IsStub(l) || sv.OriginalBytes != len(orig.Value) ||
				sv.SHA256 != hex.EncodeToString(sum[:]) || header(l, letter.HeaderValueSHA256) != sv.SHA256 {
				t.Errorf("%s %s: not a stub letter of the original: %d bytes, %s %q", sink, id, len(l.Value), letter.HeaderValueDropped, header(l, letter.HeaderValueDropped))
			}
			if id == headerID && header(l, "x-padding") == "" {
				t.Errorf("%s %s: the stub lost the record's own headers", sink, id)
			}
			if !bytes.Equal(l.Key, key) {
				t.Errorf("%s %s: the stub lost the key", sink, id)
			}
		}
	}
	p.term(t)

	// A redrive sends the full letter and no stub: a stub is not the event.
	// While the API still refuses it, the 1,001,000-byte letter is parked
	// again (it used to fail the redrive with MESSAGE_TOO_LARGE, every run).
	type redriveSum struct {
		Selected     int `json:"selected"`
		Delivered    int `json:"delivered"`
		FailedAgain  int `json:"failed_again"`
		ValueDropped int `json:"value_dropped"`
	}
	redrive := func() (redriveSum, string) {
		t.Helper()
		code, out, stderr := s.dlqCLI("dlq", "redrive", "-c", s.cfg, "--sink", "bad", "--output", "json")
		var sum redriveSum
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); code != 0 || err != nil {
			t.Fatalf("dlq redrive: exit %d, %v\n%s%s", code, err, out, tail(stderr, 20))
		}
		return sum, stderr
	}
	sum, stderr := redrive()
	if want := (redriveSum{Selected: 3, FailedAgain: 1, ValueDropped: 2}); sum != want {
		t.Errorf("redrive while the API refuses: %+v, want %+v (the full letter parked again, 2 stub letters not sent)", sum, want)
	}
	if !strings.Contains(stderr, "stub letter not redriven") {
		t.Errorf("redrive did not say why it did not send the stub letters:\n%s", tail(stderr, 20))
	}
	healed.Store(true)
	if sum, _ := redrive(); sum != (redriveSum{Selected: 1, Delivered: 1}) {
		t.Errorf("redrive once the API takes it: %+v, want the letter parked again delivered", sum)
	}
	if got := bad.snapshot(); got[bigID] != 1 || got[exactID] != 0 || got[headerID] != 0 {
		t.Errorf("after the redrive the API accepted %d/%d/%d of big/exact/headers, want 1/0/0", got[bigID], got[exactID], got[headerID])
	}
	_, out, _ := s.dlqCLI("dlq", "redrive", "-c", s.cfg, "--sink", "bad", "--from-start")
	if !strings.Contains(out, "2 stub letters not sent (value dropped at parking)") {
		t.Errorf("redrive --from-start does not report the stub letters: %s", out)
	}

	// A replay parks the same way: its API still answers 503 for the large
	// records, and each ends on the DLQ, in full or as a stub letter.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, fanoutBin, "replay", "-c", s.cfg, "--sink", "busy", "--from-offset", "0:0,1:0,2:0", "--bypass-dedupe", "--output", "json")
	rout, err := cmd.Output()
	if ctx.Err() != nil {
		t.Fatalf("replay did not finish within 3m (a park looping?)")
	}
	var rsum struct {
		FailedToDLQ int64 `json:"failed_to_dlq"`
	}
	if err != nil || json.Unmarshal(rout, &rsum) != nil || rsum.FailedToDLQ != 3 {
		t.Fatalf("replay: %v, %+v\n%s", err, rsum, rout)
	}
	full, stubs := 0, 0
	for _, l := range readTopic(t, s.topic+".busy.dlq") {
		switch id := header(l, "event-id"); {
		case consumer.IsStub(l):
			stubs++
		case id == bigID && bytes.Equal(l.Value, big.Value):
			full++
		default:
			t.Errorf("busy DLQ letter %s: neither a stub nor the full record (%d bytes)", id, len(l.Value))
		}
	}
	if full != 2 || stubs != 4 {
		t.Errorf("busy DLQ after the replay: %d full letters and %d stubs, want 2 and 4", full, stubs)
	}
}
