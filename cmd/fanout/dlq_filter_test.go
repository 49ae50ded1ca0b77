package main

import (
	"errors"
	"flag"
	"io"
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
func dlqTestLetter(parkedAt time.Time, class string, status, redrives int, extra ...kgo.RecordHeader) deadLetter {
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
	return parseLetter(&kgo.Record{Topic: "events.profile.dlq", Partition: 1, Offset: 10, Key: []byte("k"), Value: []byte{0, 0, 0, 0, 1, 2},
		Timestamp: parkedAt, Headers: h})
}

func TestParseLetter(t *testing.T) {
	l := dlqTestLetter(dlqNow, "permanent", 422, 2)
	if l.sink != "profile" || l.class != "permanent" || l.status != 422 || l.attempts != 3 || l.redrives != 2 ||
		!l.parkedAt.Equal(dlqNow) || l.errText != "http 422" || !l.hasOrigin || l.origin() != "events/2/41" || l.at() != "1:10" {
		t.Fatalf("parsed %+v", l)
	}
	o := l.original()
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
	bare := parseLetter(&kgo.Record{Topic: "events.profile.dlq", Partition: 0, Offset: 7})
	if bare.hasOrigin || bare.origin() != "events.profile.dlq/0/7" || !bare.parkedAt.IsZero() {
		t.Errorf("bare letter %+v origin %s", bare, bare.origin())
	}
}

func TestFilterMatch(t *testing.T) {
	at := dlqNow.Add(-time.Hour)
	l := dlqTestLetter(at, "permanent", 400, 0)
	unparked := dlqTestLetter(time.Time{}, "undecodable", 0, 0)
	otherSink := dlqTestLetter(at, "permanent", 400, 0, kgo.RecordHeader{Key: letter.HeaderSink, Value: []byte("email")})
	for _, tc := range []struct {
		name string
		f    filter
		l    deadLetter
		want bool
	}{
		{"zero filter", filter{}, l, true},
		{"own sink", filter{sink: "profile"}, l, true},
		{"other sink's letter", filter{sink: "profile"}, otherSink, false}, // the last fanout-sink header wins
		{"since before", filter{since: at.Add(-time.Minute)}, l, true},
		{"since equal is inclusive", filter{since: at}, l, true},
		{"since after", filter{since: at.Add(time.Millisecond)}, l, false},
		{"until after", filter{until: at.Add(time.Millisecond)}, l, true},
		{"until equal is exclusive", filter{until: at}, l, false},
		{"no parked-at, no time bound", filter{}, unparked, true},
		{"no parked-at never matches since", filter{since: at}, unparked, false},
		{"no parked-at never matches until", filter{until: dlqNow}, unparked, false},
		{"status in set", filter{statuses: []int{503, 400}}, l, true},
		{"status not in set", filter{statuses: []int{503}}, l, false},
		{"status 0 selects no HTTP answer", filter{statuses: []int{0}}, unparked, true},
		{"class in set", filter{classes: []string{"permanent"}}, l, true},
		{"class not in set", filter{classes: []string{"retries-exhausted"}}, l, false},
		{"all together", filter{sink: "profile", since: at.Add(-time.Hour), until: dlqNow, statuses: []int{400}, classes: []string{"permanent"}}, l, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f.match(tc.l); got != tc.want {
				t.Errorf("match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFilterFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    filter
		wantErr string
	}{
		{args: nil, want: filter{sink: "profile"}},
		{args: []string{"--since", "2h"}, want: filter{sink: "profile", since: dlqNow.Add(-2 * time.Hour)}},
		{args: []string{"--since", "7d", "--until", "2026-11-27T11:00:00Z"},
			want: filter{sink: "profile", since: dlqNow.Add(-7 * 24 * time.Hour), until: dlqNow.Add(-time.Hour)}},
		{args: []string{"--status", "503, 0,429", "--class", "permanent,too-large"},
			want: filter{sink: "profile", statuses: []int{503, 0, 429}, classes: []string{"permanent", "too-large"}}},
		{args: []string{"--since", "yesterday"}, wantErr: `--since: "yesterday" is neither`},
		{args: []string{"--until", "-2h"}, wantErr: "must be positive"},
		{args: []string{"--since", "1h", "--until", "2h"}, wantErr: "is not before --until"},
		{args: []string{"--status", "abc"}, wantErr: `--status: "abc" is not an HTTP status`},
		{args: []string{"--status", "42"}, wantErr: `--status: "42" is not an HTTP status`},
		{args: []string{"--class", "permanant"}, wantErr: `--class: "permanant" is not one of permanent, retries-exhausted`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			sel := filterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := sel("profile", dlqNow)
			if tc.wantErr != "" {
				var ue usageError
				if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a usage error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.sink != tc.want.sink || !got.since.Equal(tc.want.since) || !got.until.Equal(tc.want.until) ||
				dlqInts(got.statuses) != dlqInts(tc.want.statuses) ||
				strings.Join(got.classes, ",") != strings.Join(tc.want.classes, ",") {
				t.Errorf("filter %+v, want %+v", got, tc.want)
			}
		})
	}
}

// --class accepts every reason the pipeline parks a record with (its exported
// list, which a pipeline test checks against the code), and nothing else.
func TestFilterClassAcceptsEveryParkedReason(t *testing.T) {
	var reasons []string
	for _, r := range letter.Reasons {
		reasons = append(reasons, string(r))
	}
	for _, class := range append([]string{strings.Join(reasons, ",")}, reasons...) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		sel := filterFlags(fs)
		if err := fs.Parse([]string{"--class", class}); err != nil {
			t.Fatal(err)
		}
		if f, err := sel("profile", dlqNow); err != nil || strings.Join(f.classes, ",") != class {
			t.Errorf("--class %s: %v (classes %v)", class, err, f.classes)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	sel := filterFlags(fs)
	if err := fs.Parse([]string{"--class", "template"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sel("profile", dlqNow); err == nil {
		t.Error("--class template accepted: nothing parks that class")
	}
}

func dlqInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
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
		got, err := parseRate(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseRate(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
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
		p, o, err := parseAt(tc.in)
		if (err != nil) != tc.fail || p != tc.p || o != tc.o {
			t.Errorf("parseAt(%q) = %d, %d, %v", tc.in, p, o, err)
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
	if rec.Topic != "events.profile.dlq" || string(rec.Key) != "k" || string(rec.Value) != string(l.rec.Value) || !rec.Timestamp.Equal(dlqNow) {
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
	again := parseLetter(rec)
	if again.origin() != l.origin() || again.redrives != 2 || !again.parking().newer(l.parking()) {
		t.Errorf("the new copy is not recognised as a newer copy of the same record: %+v", again)
	}

	// A letter without fanout-original-* headers: its copies share its DLQ place as origin.
	bare := parseLetter(&kgo.Record{Topic: "events.profile.dlq", Partition: 0, Offset: 7, Timestamp: dlqNow, Value: []byte("x")})
	if c := parseLetter(reparked(bare, "profile", consumer.Outcome{Reason: "undecodable"}, dlqNow)); c.origin() != bare.origin() || c.redrives != 1 {
		t.Errorf("copy of a bare letter: origin %s (want %s), redrives %d", c.origin(), bare.origin(), c.redrives)
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
