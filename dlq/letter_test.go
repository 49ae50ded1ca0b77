package dlq

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/letter"
)

var dlqNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// dlqTestLetter is a DLQ record as the consumer parks it, at DLQ place 1:10.
func dlqTestLetter(parkedAt time.Time, class string, status, redrives int, extra ...kgo.RecordHeader) Letter {
	h := []kgo.RecordHeader{
		{Key: "event-id", Value: []byte("ev-1")},
		{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
	}
	if redrives > 0 {
		h = append(h, kgo.RecordHeader{Key: letter.HeaderRedriveCount, Value: []byte(strconv.Itoa(redrives))})
	}
	h = append(h,
		kgo.RecordHeader{Key: letter.HeaderTopic, Value: []byte("events")},
		kgo.RecordHeader{Key: letter.HeaderPartition, Value: []byte("2")},
		kgo.RecordHeader{Key: letter.HeaderOffset, Value: []byte("41")},
		kgo.RecordHeader{Key: letter.HeaderTimestamp, Value: []byte("2026-11-27T10:00:00.123Z")},
		kgo.RecordHeader{Key: letter.HeaderSink, Value: []byte("profile")},
		kgo.RecordHeader{Key: letter.HeaderAttempts, Value: []byte("3")},
		kgo.RecordHeader{Key: letter.HeaderError, Value: []byte("http " + strconv.Itoa(status))},
		kgo.RecordHeader{Key: letter.HeaderErrorClass, Value: []byte(class)},
		kgo.RecordHeader{Key: letter.HeaderStatus, Value: []byte(strconv.Itoa(status))},
	)
	if !parkedAt.IsZero() {
		h = append(h, kgo.RecordHeader{Key: letter.HeaderParkedAt, Value: []byte(parkedAt.Format("2006-01-02T15:04:05.000Z07:00"))})
	}
	h = append(h, extra...)
	return Parse(&kgo.Record{Topic: "events.profile.dlq", Partition: 1, Offset: 10, Key: []byte("k"), Value: []byte{0, 0, 0, 0, 1, 2},
		Timestamp: parkedAt, Headers: h})
}

func TestParseLetter(t *testing.T) {
	l := dlqTestLetter(dlqNow, "permanent", 422, 2)
	if l.Sink != "profile" || l.Class != "permanent" || l.Status != 422 || l.Attempts != 3 || l.Redrives != 2 ||
		!l.ParkedAt.Equal(dlqNow) || l.ErrText != "http 422" || !l.HasOrigin || l.Origin() != "events/2/41" || l.At() != "1:10" {
		t.Fatalf("parsed %+v", l)
	}
	o := l.Original()
	if o.Topic != "events" || o.Partition != 2 || o.Offset != 41 || !o.Timestamp.Equal(time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC)) {
		t.Errorf("original record at %s/%d/%d %v", o.Topic, o.Partition, o.Offset, o.Timestamp)
	}
	for _, h := range o.Headers {
		if strings.HasPrefix(h.Key, "fanout-") {
			t.Errorf("original record carries %s", h.Key)
		}
	}
	if len(o.Headers) != 2 || string(o.Key) != "k" || len(o.Value) != 6 {
		t.Errorf("original record headers %v key %q value %v", o.Headers, o.Key, o.Value)
	}

	// A record someone produced by hand: no fanout headers at all.
	bare := Parse(&kgo.Record{Topic: "events.profile.dlq", Partition: 0, Offset: 7})
	if bare.HasOrigin || bare.Origin() != "events.profile.dlq/0/7" || !bare.ParkedAt.IsZero() {
		t.Errorf("bare letter %+v origin %s", bare, bare.Origin())
	}
}

func TestFilterMatch(t *testing.T) {
	at := dlqNow.Add(-time.Hour)
	l := dlqTestLetter(at, "permanent", 400, 0)
	unparked := dlqTestLetter(time.Time{}, "undecodable", 0, 0)
	otherSink := dlqTestLetter(at, "permanent", 400, 0, kgo.RecordHeader{Key: letter.HeaderSink, Value: []byte("email")})
	for _, tc := range []struct {
		name string
		f    Filter
		l    Letter
		want bool
	}{
		{"zero filter", Filter{}, l, true},
		{"own sink", Filter{Sink: "profile"}, l, true},
		{"other sink's letter", Filter{Sink: "profile"}, otherSink, false}, // the last fanout-sink header wins
		{"since before", Filter{Since: at.Add(-time.Minute)}, l, true},
		{"since equal is inclusive", Filter{Since: at}, l, true},
		{"since after", Filter{Since: at.Add(time.Millisecond)}, l, false},
		{"until after", Filter{Until: at.Add(time.Millisecond)}, l, true},
		{"until equal is exclusive", Filter{Until: at}, l, false},
		{"no parked-at, no time bound", Filter{}, unparked, true},
		{"no parked-at never matches since", Filter{Since: at}, unparked, false},
		{"no parked-at never matches until", Filter{Until: dlqNow}, unparked, false},
		{"status in set", Filter{Statuses: []int{503, 400}}, l, true},
		{"status not in set", Filter{Statuses: []int{503}}, l, false},
		{"status 0 selects no HTTP answer", Filter{Statuses: []int{0}}, unparked, true},
		{"class in set", Filter{Classes: []string{"permanent"}}, l, true},
		{"class not in set", Filter{Classes: []string{"retries-exhausted"}}, l, false},
		{"all together", Filter{Sink: "profile", Since: at.Add(-time.Hour), Until: dlqNow, Statuses: []int{400}, Classes: []string{"permanent"}}, l, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f.Match(tc.l); got != tc.want {
				t.Errorf("match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"", 0, false}, {"0", 0, false}, {"10", 100 * time.Millisecond, false}, {"10/s", 100 * time.Millisecond, false},
		{"0.5/s", 2 * time.Second, false}, {"120/m", 500 * time.Millisecond, false},
		{"10/h", 0, true}, {"fast", 0, true}, {"-1/s", 0, true}, {"0/s", 0, true},
	} {
		got, err := ParseRate(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseAt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		p    int32
		o    int64
		fail bool
	}{
		{"0:0", 0, 0, false}, {"2:117", 2, 117, false},
		{"2", 0, 0, true}, {"a:1", 0, 0, true}, {"1:-3", 0, 0, true}, {"-1:3", 0, 0, true}, {"1:2:3", 0, 0, true}, {"", 0, 0, true},
	} {
		p, o, err := ParseAt(tc.in)
		if (err != nil) != tc.fail || p != tc.p || o != tc.o {
			t.Errorf("ParseAt(%q) = %d, %d, %v", tc.in, p, o, err)
		}
	}
}

func TestParkingNewest(t *testing.T) {
	base := parking{partition: 1, offset: 10, redrives: 0, parkedAt: dlqNow}
	for _, tc := range []struct {
		name string
		c    parking
		want bool
	}{
		{"more redrives wins even if parked earlier on a lower offset", parking{partition: 0, offset: 1, redrives: 1, parkedAt: dlqNow.Add(-time.Hour)}, true},
		{"fewer redrives loses", parking{partition: 2, offset: 99, redrives: 0, parkedAt: dlqNow.Add(-time.Hour)}, false},
		{"same redrives, parked later", parking{partition: 0, offset: 1, parkedAt: dlqNow.Add(time.Millisecond)}, true},
		{"same redrives and time, later offset", parking{partition: 1, offset: 11, parkedAt: dlqNow}, true},
		{"itself is not newer", base, false},
	} {
		if got := tc.c.newer(base); got != tc.want {
			t.Errorf("%s: newer = %v", tc.name, got)
		}
	}
}

func TestReparked(t *testing.T) {
	l := dlqTestLetter(dlqNow.Add(-time.Hour), "permanent", 400, 1, kgo.RecordHeader{Key: "tenant", Value: []byte("acme")})
	long := strings.Repeat("é", 600) // 1200 bytes: cut on a rune boundary
	rec := reparked(l, "profile", consumer.Outcome{Verdict: consumer.DeadLetter, Reason: "retries-exhausted",
		Err: errors.New(long), Status: 503, Attempts: 5, Excerpt: "upstream down"}, dlqNow)
	if rec.Topic != "events.profile.dlq" || string(rec.Key) != "k" || string(rec.Value) != string(l.Rec.Value) || !rec.Timestamp.Equal(dlqNow) {
		t.Errorf("reparked %s key %q value %v at %v", rec.Topic, rec.Key, rec.Value, rec.Timestamp)
	}
	want := map[string]string{
		"event-id": "ev-1", "tenant": "acme", letter.HeaderRedriveCount: "2",
		letter.HeaderTopic: "events", letter.HeaderPartition: "2", letter.HeaderOffset: "41",
		letter.HeaderTimestamp: "2026-11-27T10:00:00.123Z", letter.HeaderSink: "profile",
		letter.HeaderAttempts: "8", letter.HeaderErrorClass: "retries-exhausted", letter.HeaderStatus: "503", // 3 before + 5 now
		letter.HeaderParkedAt: "2026-11-27T12:00:00.000Z", letter.HeaderExcerpt: "upstream down",
	}
	seen := map[string]int{}
	for _, h := range rec.Headers {
		seen[h.Key]++
		if w, ok := want[h.Key]; ok && string(h.Value) != w {
			t.Errorf("header %s = %q, want %q", h.Key, h.Value, w)
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("header %s appears %d times", k, n)
		}
	}
	for k := range want {
		if seen[k] == 0 {
			t.Errorf("header %s missing", k)
		}
	}
	if e := headerValue(rec, letter.HeaderError); len(e) > 1024 || len(e) < 1022 || !strings.HasPrefix(e, "é") || strings.ContainsRune(e, '\uFFFD') {
		t.Errorf("fanout-error of %d bytes, not cut cleanly at 1024", len(e))
	}
	again := Parse(rec)
	if again.Origin() != l.Origin() || again.Redrives != 2 || !again.parking().newer(l.parking()) {
		t.Errorf("the new copy is not recognised as a newer copy of the same record: %+v", again)
	}

	// A letter without fanout-original-* headers: its copies share its DLQ place as origin.
	bare := Parse(&kgo.Record{Topic: "events.profile.dlq", Partition: 0, Offset: 7, Timestamp: dlqNow, Value: []byte("x")})
	if c := Parse(reparked(bare, "profile", consumer.Outcome{Reason: "undecodable"}, dlqNow)); c.Origin() != bare.Origin() || c.Redrives != 1 {
		t.Errorf("copy of a bare letter: origin %s (want %s), redrives %d", c.Origin(), bare.Origin(), c.Redrives)
	}
}

// headerValue returns the first value of header key, "" if absent.
func headerValue(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// reparked is l parked again after out, as the redrive's consumer parks it:
// built as the consumer parks records (consumer.ParkedRecord: key, value and
// own headers kept, the original place kept, attempts added up, fresh failure
// headers), then redriven.
func reparked(l Letter, sink string, out consumer.Outcome, now time.Time) *kgo.Record {
	return redriven(consumer.ParkedRecord(l.Rec.Topic, sink, l.Rec, out, now, nil))
}
