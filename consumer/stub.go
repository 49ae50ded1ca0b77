package consumer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/letter"
)

// Level is how much of a record a park kept: all of it, or a stub when the
// park topic refused the whole record.
type Level int

const (
	// FullCopy: the parked record as ParkedRecord built it (key and value the
	// original bytes).
	FullCopy Level = iota
	// StubLetter: every header and the original coordinates; the value is a
	// stub naming the original's size and SHA-256 (see Stub).
	StubLetter
	// BareStub: a StubLetter without the record's own headers, with
	// fanout-error cut to 256 bytes, no response excerpt, and a key over 256
	// bytes replaced by its SHA-256: for a park topic that refuses even the
	// stub.
	BareStub
)

func (l Level) String() string {
	return [...]string{"full", "stub", "bare-stub"}[l]
}

const (
	bareErrorBytes = 256
	bareKeyBytes   = 256
)

// StubValue is the value of a stub letter (JSON): the original value is not
// in it, only what identifies it.
type StubValue struct {
	Stub          string `json:"fanout_stub"` // always "value dropped"
	Reason        string `json:"reason"`      // why the park topic refused the record
	OriginalBytes int    `json:"original_bytes"`
	SHA256        string `json:"sha256"` // hex, of the original value
}

// Stub returns full (a parked record built by ParkedRecord) with its value
// replaced by a StubValue and marked with letter.HeaderValueDropped and
// letter.HeaderValueSHA256; every header and the original coordinates stay. At
// BareStub it also leaves off the record's own (non fanout-*) headers, cuts
// fanout-error to 256 bytes, drops the response excerpt, and replaces a key
// over 256 bytes by its hex SHA-256 (letter.HeaderKeyDropped gives its size). A
// record that is a stub already keeps its stub value and marks. reason names
// the refusal; it holds no payload.
func Stub(full *kgo.Record, reason string, level Level) *kgo.Record {
	l, _ := letter.Parse(full)
	stub := &kgo.Record{Topic: full.Topic, Key: full.Key, Value: full.Value, Timestamp: full.Timestamp}
	if l.Stub == nil {
		sum := sha256.Sum256(full.Value)
		hexSum := hex.EncodeToString(sum[:])
		stub.Value, _ = json.Marshal(StubValue{Stub: "value dropped", Reason: truncate(reason, bareErrorBytes),
			OriginalBytes: len(full.Value), SHA256: hexSum})
		l.Stub = &letter.Stub{ValueBytes: len(full.Value), ValueSHA256: hexSum}
	}
	if level < BareStub {
		stub.Headers = append(letter.OwnHeaders(full, 18), l.Headers()...)
		return stub
	}
	s := *l.Stub
	l.Stub = &s
	s.Bare, s.HeadersDropped = true, len(letter.OwnHeaders(full, 0))
	l.Error, l.Excerpt = truncate(l.Error, bareErrorBytes), ""
	if len(full.Key) > bareKeyBytes {
		sum := sha256.Sum256(full.Key)
		stub.Key = []byte(hex.EncodeToString(sum[:]))
		s.KeyBytes = len(full.Key)
	}
	stub.Headers = l.Headers()
	return stub
}

// IsStub reports whether r is a stub letter (its value was dropped at a park).
func IsStub(r *kgo.Record) bool {
	l, err := letter.Parse(r)
	return err == nil && l.Stub != nil
}

// batchOverhead is the size of a record batch with no records, as the broker
// counts it against max.message.bytes (base offset, length and the v2 batch
// header).
const batchOverhead = 61

// RecordBytes is the size of r alone in a record batch, uncompressed, as the
// broker measures it against a topic's max.message.bytes.
func RecordBytes(r *kgo.Record) int {
	l := 1 + // attributes
		1 + // timestamp delta 0
		1 + // offset delta 0
		kbin.VarintLen(int32(len(r.Key))) + len(r.Key) +
		kbin.VarintLen(int32(len(r.Value))) + len(r.Value) +
		kbin.VarintLen(int32(len(r.Headers)))
	for _, h := range r.Headers {
		l += kbin.VarintLen(int32(len(h.Key))) + len(h.Key) + kbin.VarintLen(int32(len(h.Value))) + len(h.Value)
	}
	return batchOverhead + kbin.VarintLen(int32(l)) + l
}

// ParkOverhead is the most a parked record of sink, read from topic, can be
// larger than the original record's key, value and own headers: the record
// batch framing plus every fanout-* header at its largest (fanout-error and
// the response excerpt at 1024 bytes each, the tier headers, the redrive
// count). A park topic whose max.message.bytes is at least a record's size
// plus this takes its full copy.
func ParkOverhead(topic, sink string) int {
	r := &kgo.Record{Topic: topic, Partition: math.MaxInt32, Offset: math.MaxInt64,
		Timestamp: time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC),
		Headers: []kgo.RecordHeader{
			{Key: letter.HeaderTopic, Value: []byte(topic)},
			{Key: letter.HeaderPartition, Value: []byte(strconv.Itoa(math.MaxInt32))},
			{Key: letter.HeaderOffset, Value: []byte(strconv.FormatInt(math.MaxInt64, 10))},
			{Key: letter.HeaderAttempts, Value: []byte(strconv.Itoa(math.MaxInt32))},
			{Key: letter.HeaderRedriveCount, Value: []byte(strconv.Itoa(math.MaxInt32))},
		}}
	// The original timestamp at 30 characters (a 10-digit year), longer than
	// any real one; without a valid fanout-original-timestamp header a park
	// writes the record's own.
	r.Timestamp = time.Date(9_999_999_999, 12, 31, 23, 59, 59, 999e6, time.UTC)
	out := Outcome{Verdict: DeadLetter, Reason: letter.Reason(strings.Repeat("r", 64)), Err: errString(strings.Repeat("e", 2*maxErrorBytes)),
		Status: math.MaxInt32, Excerpt: strings.Repeat("x", 2*maxErrorBytes)}
	tier := &Tier{Number: math.MaxInt32, Topic: topic}
	parked := ParkedRecord(topic, sink, r, out, time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC), tier)
	// Only the fanout-* headers count; the key, value and the record's own
	// headers are the original's. A value (and the record around it) makes
	// the two length varints up to 4 bytes longer each.
	return RecordBytes(parked) + 8
}

type errString string

func (e errString) Error() string { return string(e) }
