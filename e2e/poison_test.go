package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// poison is one kind of record that can never decode, and what the DLQ's
// fanout-error must say about it.
type poisonKind struct {
	kind string
	make func(rng *rand.Rand, good []byte) []byte
	says string
}

var poisonKinds = []poisonKind{
	{"random bytes", func(rng *rand.Rand, _ []byte) []byte {
		b := make([]byte, 8+rng.IntN(64))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		b[0] = 0xab // never the magic byte by chance
		return b
	}, "bad magic byte 0xab"},
	{"wrong magic byte", func(_ *rand.Rand, good []byte) []byte {
		return append([]byte{0x01}, good[1:]...)
	}, "bad magic byte 0x01"},
	{"unknown schema id", func(_ *rand.Rand, good []byte) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint32(b[1:5], 999)
		return b
	}, "unknown schema id 999"},
	{"truncated avro", func(_ *rand.Rand, good []byte) []byte {
		return bytes.Clone(good[:5+(len(good)-5)/2])
	}, "truncated"},
	{"header only", func(_ *rand.Rand, good []byte) []byte {
		return bytes.Clone(good[:3])
	}, "truncated data: message of 3 bytes"},
}

// Good events and poison records interleaved on every partition: each good
// event reaches both APIs once, each poison record lands in both DLQs as
// undecodable with its own bytes and a reason, and the groups commit the end
// (no partition stalls behind a poison record).
func TestPoisonRecordsAreDeadLetteredAndNothingStalls(t *testing.T) {
	const n = 600
	s := newScenario(t, "poison", n)
	profile, analytics := newTarget(t, 0, nil), newTarget(t, 0, nil)
	s.writeConfig(
		sinkSpec{name: "profile", target: profile, extra: "ordering: partition"},
		sinkSpec{name: "analytics", target: analytics, extra: "ordering: key\nmax_in_flight: 16"},
	)
	s.fanout("topics", "ensure", "-c", s.cfg, "--partitions", "3")

	codec := builtinCodec(t)
	rng := rand.New(rand.NewPCG(7, 11))
	var recs []*kgo.Record
	kindOf := map[*kgo.Record]poisonKind{}
	for i, id := range s.ids {
		value, _, err := codec.EncodeJSON(context.Background(), "user.registered", s.docs[i])
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: s.topic, Key: []byte(id), Value: value,
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte(id)}}})
		if i%6 == 5 {
			p := poisonKinds[(i/6)%len(poisonKinds)]
			// Some poison has an event-id header, some nothing at all; keys spread it over partitions.
			r := &kgo.Record{Topic: s.topic, Key: []byte("poison-" + strconv.Itoa(i)), Value: p.make(rng, value)}
			if i%12 == 5 {
				r.Headers = []kgo.RecordHeader{{Key: "event-id", Value: []byte("poison-" + strconv.Itoa(i))}}
			}
			kindOf[r] = p
			recs = append(recs, r)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	where := map[string]*kgo.Record{} // "partition/offset" → the poison record produced there
	perPartition := map[int32]int{}
	for r := range kindOf {
		where[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = r
		perPartition[r.Partition]++
	}
	t.Logf("%d good events, %d poison records (per partition %v)", n, len(kindOf), perPartition)

	p := s.start()
	s.waitDone(2*time.Minute, map[string]*target{"profile": profile, "analytics": analytics},
		map[string][]string{"profile": s.ids, "analytics": s.ids})
	p.term(t)
	checkAccepted(t, "profile", profile, s.ids, 0)
	checkAccepted(t, "analytics", analytics, s.ids, 0)

	for _, sink := range []string{"profile", "analytics"} {
		seen := map[string]bool{}
		for _, d := range readTopic(t, s.topic+"."+sink+".dlq") {
			at := header(d, "fanout-original-partition") + "/" + header(d, "fanout-original-offset")
			orig := where[at]
			if orig == nil {
				t.Errorf("%s DLQ: record from %s is not a poison record (error %q)", sink, at, header(d, "fanout-error"))
				continue
			}
			if seen[at] {
				t.Errorf("%s DLQ: poison record %s parked twice", sink, at)
			}
			seen[at] = true
			kind := kindOf[orig]
			if c := header(d, "fanout-error-class"); c != "undecodable" {
				t.Errorf("%s DLQ: %s (%s) has class %q", sink, at, kind.kind, c)
			}
			if e := header(d, "fanout-error"); !strings.Contains(e, kind.says) {
				t.Errorf("%s DLQ: %s (%s): fanout-error %q does not say %q", sink, at, kind.kind, e, kind.says)
			}
			if !bytes.Equal(d.Value, orig.Value) || !bytes.Equal(d.Key, orig.Key) || header(d, "fanout-original-topic") != s.topic ||
				header(d, "fanout-sink") != sink || header(d, "fanout-http-status") != "0" || header(d, "event-id") != header(orig, "event-id") {
				t.Errorf("%s DLQ: %s (%s) is not the poison record's copy", sink, at, kind.kind)
			}
		}
		if len(seen) != len(kindOf) {
			t.Errorf("%s DLQ holds %d poison records, want %d", sink, len(seen), len(kindOf))
		}
	}
}
