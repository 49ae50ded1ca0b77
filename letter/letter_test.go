package letter

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// full is a letter with every field set (a bare stub letter of a tier
// record, redriven twice), so a round trip shows each header written and read.
func full() Letter {
	at := time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC)
	return Letter{
		Topic: "events", Partition: 2, Offset: 41, Timestamp: at,
		Sink: "profile", Attempts: 7, Error: "http 503: Service Unavailable", Reason: ReasonRetriesExhausted,
		Status: 503, ParkedAt: at.Add(time.Hour),
		Tier: 2, NotBefore: at.Add(2 * time.Hour), Excerpt: "upstream down",
		RedriveCount: 2,
		Stub:         &Stub{ValueBytes: 2_000_000, ValueSHA256: strings.Repeat("ab", 32), KeyBytes: 300, Bare: true, HeadersDropped: 3},
	}
}

// TestRoundTrip encodes letters for a record with its own headers (and the
// fanout-* headers of an earlier parking) and parses them back: every field
// must come back equal, the record's own headers, key and value unchanged and
// the earlier fanout-* headers replaced. It fails if Headers drops a header,
// Parse ignores one, or a header name is misspelt on one side.
func TestRoundTrip(t *testing.T) {
	stubOnly := full()
	stubOnly.Stub = &Stub{ValueBytes: 0, ValueSHA256: strings.Repeat("cd", 32)} // an empty value, not bare, key kept
	dlq := full()
	dlq.Tier, dlq.NotBefore, dlq.Excerpt, dlq.RedriveCount, dlq.Stub, dlq.Status = 0, time.Time{}, "", 0, nil, 0
	bareNoneDropped := full()
	bareNoneDropped.Stub = &Stub{ValueBytes: 5, ValueSHA256: "x", Bare: true}
	for name, want := range map[string]Letter{"every field": full(), "stub letter": stubOnly, "first DLQ park": dlq, "bare stub of none": bareNoneDropped} {
		t.Run(name, func(t *testing.T) {
			own := []kgo.RecordHeader{{Key: "event-id", Value: []byte("ev-1")}, {Key: "traceparent", Value: []byte("00-aa-bb-01")}}
			r := &kgo.Record{Topic: "events.profile.retry.1", Partition: 0, Offset: 9, Key: []byte("k"), Value: []byte("v"),
				Headers: append(append([]kgo.RecordHeader{}, own...),
					kgo.RecordHeader{Key: HeaderTopic, Value: []byte("elsewhere")}, kgo.RecordHeader{Key: HeaderError, Value: []byte("earlier")})}
			parked := want.Encode("events.profile.dlq", r)
			if parked.Topic != "events.profile.dlq" || string(parked.Key) != "k" || string(parked.Value) != "v" || !parked.Timestamp.Equal(want.ParkedAt) {
				t.Errorf("parked record %s key %q value %q at %s", parked.Topic, parked.Key, parked.Value, parked.Timestamp)
			}
			if got := parked.Headers[:len(own)]; !reflect.DeepEqual(got, own) {
				t.Errorf("own headers %v, want %v first", got, own)
			}
			seen := map[string]int{}
			for _, h := range parked.Headers {
				seen[h.Key]++
			}
			for k, n := range seen {
				if n > 1 {
					t.Errorf("header %s written %d times", k, n)
				}
			}
			got, err := Parse(parked)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("parsed back\n%+v (stub %+v)\nwant\n%+v (stub %+v)", got, got.Stub, want, want.Stub)
			}
			if topic, part, off := got.Original(); topic != want.Topic || part != want.Partition || off != want.Offset {
				t.Errorf("Original() = %s/%d/%d", topic, part, off)
			}
		})
	}
}

// TestHeaderNames pins the header names: they are read by tools outside
// fanout (README lists them), so one changes only on purpose.
func TestHeaderNames(t *testing.T) {
	var got []string
	for _, h := range full().Headers() {
		got = append(got, h.Key)
	}
	want := "fanout-original-topic fanout-original-partition fanout-original-offset fanout-original-timestamp " +
		"fanout-sink fanout-attempts fanout-error fanout-error-class fanout-http-status fanout-parked-at " +
		"fanout-response-excerpt fanout-tier fanout-not-before fanout-redrive-count " +
		"fanout-value-dropped fanout-value-sha256 fanout-key-dropped fanout-headers-dropped"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("headers\n%s\nwant\n%s", g, want)
	}
}

// TestParseNotALetter: a record without fanout-* headers is not a letter;
// Parse says so and stands the record for itself, as a park of it starts.
func TestParseNotALetter(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	r := &kgo.Record{Topic: "events", Partition: 3, Offset: 17, Timestamp: at,
		Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("e")}}}
	l, err := Parse(r)
	if !errors.Is(err, ErrNotLetter) {
		t.Errorf("Parse of a plain record: err %v, want ErrNotLetter", err)
	}
	if want := (Letter{Topic: "events", Partition: 3, Offset: 17, Timestamp: at}); !reflect.DeepEqual(l, want) {
		t.Errorf("Parse of a plain record = %+v, want %+v", l, want)
	}
}

// TestParseLenient: malformed or partial headers leave their fields zero
// and the original coordinates fall back to the record's own unless all
// three are valid; the last of a repeated header counts.
func TestParseLenient(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	h := func(kv ...string) []kgo.RecordHeader {
		var out []kgo.RecordHeader
		for i := 0; i < len(kv); i += 2 {
			out = append(out, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		headers []kgo.RecordHeader
		want    Letter
	}{
		{"sink only", h(HeaderSink, "profile"), Letter{Topic: "dlq", Partition: 1, Offset: 5, Timestamp: at, Sink: "profile"}},
		{"bad partition", h(HeaderTopic, "events", HeaderPartition, "x", HeaderOffset, "7"), Letter{Topic: "dlq", Partition: 1, Offset: 5, Timestamp: at}},
		{"no topic", h(HeaderPartition, "2", HeaderOffset, "7"), Letter{Topic: "dlq", Partition: 1, Offset: 5, Timestamp: at}},
		{"bad times and numbers", h(HeaderTimestamp, "yesterday", HeaderParkedAt, "now", HeaderAttempts, "many", HeaderTier, "one"),
			Letter{Topic: "dlq", Partition: 1, Offset: 5, Timestamp: at}},
		{"stub marks without value-dropped", h(HeaderValueSHA256, "ab"), Letter{Topic: "dlq", Partition: 1, Offset: 5, Timestamp: at}},
		{"repeated", h(HeaderSink, "first", HeaderSink, "second"), Letter{Topic: "dlq", Partition: 1, Offset: 5, Timestamp: at, Sink: "second"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Parse(&kgo.Record{Topic: "dlq", Partition: 1, Offset: 5, Timestamp: at, Headers: tc.headers})
			if err != nil || !reflect.DeepEqual(l, tc.want) {
				t.Errorf("Parse = %+v, %v; want %+v", l, err, tc.want)
			}
		})
	}
}
