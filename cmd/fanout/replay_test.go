package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/dlq"
	"github.com/fanout-dev/fanout/replay"
)

// Component tests of fanout replay: kfake for Kafka, real httptest servers for
// the APIs, the in-memory dedupe store (so --bypass-dedupe; --respect-dedupe
// runs against Redis in e2e/replay_test.go).

// replayWorld is a dlqWorld whose profile sink gets extra YAML, and the events
// produced to the main topic, by partition in offset order.
type replayWorld struct {
	*dlqWorld
	events map[int32][]string // partition → short event names by offset ("" = undecodable)
}

func newReplayWorld(t *testing.T, profileExtra string, profileStatus func(key string) int) *replayWorld {
	t.Helper()
	w := &replayWorld{dlqWorld: newDLQWorld(t, profileStatus), events: map[int32][]string{}}
	w.cfg = writeFile(t, fmt.Sprintf(`kafka: {brokers: [%s], topic: events}
run: {drain_timeout: 5s}
sinks:
  - {name: profile, url: "%s", retry: {attempts: 1}%s}
  - {name: email, url: "%s"}
`, w.addrs[0], w.profile.srv.URL, profileExtra, w.email.srv.URL))
	return w
}

// emit produces events named <partition>-<offset> to partition p of the main
// topic, at ts(i) (zero: now); undecodable lists offsets (relative to this
// call) that get a body that is not Avro.
func (w *replayWorld) emit(p int32, n int, ts func(i int) time.Time, undecodable ...int) {
	w.t.Helper()
	var recs []*kgo.Record
	for i := range n {
		off := len(w.events[p])
		name := fmt.Sprintf("%d-%d", p, off)
		rec := &kgo.Record{Topic: "events", Partition: p}
		if ts != nil {
			rec.Timestamp = ts(i)
		}
		if slices.Contains(undecodable, i) {
			rec.Value = []byte("not avro")
			w.events[p] = append(w.events[p], "")
		} else {
			id := dlqUID(name)
			w.names[id] = name
			doc := fmt.Sprintf(`{"id":%q,"email":"a@example.com","name":"Ada","plan":"PRO","created_at":"2026-11-27T10:00:00.000Z","referrer":null,"metadata":{}}`, id)
			v, _, err := w.codec.EncodeJSON(context.Background(), "user.registered", []byte(doc))
			if err != nil {
				w.t.Fatal(err)
			}
			rec.Key, rec.Value = []byte(id), v
			rec.Headers = []kgo.RecordHeader{{Key: "event-id", Value: []byte(id)}}
			w.events[p] = append(w.events[p], name)
		}
		recs = append(recs, rec)
	}
	if err := w.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		w.t.Fatal(err)
	}
}

// names lists the events of partition p in [from, to).
func (w *replayWorld) between(p int32, from, to int) []string {
	var out []string
	for _, n := range w.events[p][from:to] {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

func (w *replayWorld) replay(ctx context.Context, args ...string) (int, replay.Summary, string) {
	w.t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"replay", "-c", w.cfg, "--output", "json"}, args...), &out, &errb)
	var sum replay.Summary
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
			w.t.Fatalf("replay %v: stdout is not one JSON summary: %v\n%s\n%s", args, err, out.String(), errb.String())
		}
	}
	return code, sum, errb.String()
}

// groupOffsets returns group's committed offsets (and metadata) in events.
func (w *replayWorld) groupOffsets(group string) map[int32]kadm.OffsetResponse {
	w.t.Helper()
	offs, err := kadm.NewClient(w.cl).FetchOffsets(context.Background(), group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return offs["events"]
}

func topicEnd(t *testing.T, cl *kgo.Client, topic string) int64 {
	t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func TestReplayUsageErrors(t *testing.T) {
	w := newReplayWorld(t, "", nil)
	w.emit(0, 5, nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--from-offset", "0:0", "--bypass-dedupe"}, "--sink NAME is required"},
		{[]string{"--sink", "nope", "--from-offset", "0:0", "--bypass-dedupe"}, `no sink named "nope"`},
		{[]string{"--sink", "profile", "--bypass-dedupe"}, "give where the replay starts"},
		{[]string{"--sink", "profile", "--from-offset", "0:0", "--bypass-dedupe", "--respect-dedupe"}, "not both"},
		{[]string{"--sink", "profile", "--from-offset", "0:0"}, "--respect-dedupe needs the Redis dedupe store"},
		{[]string{"--sink", "profile", "--from-offset", "7:0", "--bypass-dedupe"}, "partition 7: events has partitions 0 to 2"},
		{[]string{"--sink", "profile", "--from-offset", "0:6", "--bypass-dedupe"}, "--from-offset 6 is past the end of events (5)"},
		{[]string{"--sink", "profile", "--from-offset", "0:0", "--to-offset", "1:3", "--bypass-dedupe"}, "--to-offset names partition 1, which is not in the range"},
		{[]string{"--sink", "profile", "--resume", "0badc0de"}, "no replay 0badc0de of sink profile"},
		{[]string{"--sink", "profile", "--resume", "xyz"}, "is not a replay ID"},
		{[]string{"--sink", "profile", "--resume", "0badc0de", "--from-offset", "0:0"}, "--resume uses the stored range"},
		{[]string{"--sink", "profile", "--from-time", "1h", "--rate", "fast", "--bypass-dedupe"}, "--rate"},
		{[]string{"--sink", "profile", "--from-time", "1h", "--output", "yaml", "--bypass-dedupe"}, "--output"},
	} {
		code, _, stderr := runCLI(t, append([]string{"replay", "-c", w.cfg}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want 2 with %q\n%s", tc.args, code, tc.want, stderr)
		}
	}
	if n := w.profile.requests.Load(); n != 0 {
		t.Errorf("profile got %d requests from usage errors", n)
	}
}

// --dry-run resolves ranges: offsets, partitions, times, clamps.
func TestReplayRangeResolution(t *testing.T) {
	w := newReplayWorld(t, "", nil)
	base := time.Now().Add(-time.Hour)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	w.emit(0, 10, at) // partition 0: offset i at base+i s
	w.emit(1, 6, func(i int) time.Time { return at(2 * i) })
	w.emit(2, 3, at)
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: "events", Partition: 2, At: 1, LeaderEpoch: -1})
	if res, err := kadm.NewClient(w.cl).DeleteRecords(context.Background(), del); err != nil || res.Error() != nil {
		t.Fatal(err, res.Error())
	}
	rfc := func(i int) string { return at(i).UTC().Format(time.RFC3339) }
	type part struct{ p, from, end int64 }
	for _, tc := range []struct {
		name string
		args []string
		want []part
		note string
	}{
		{"one partition by offsets", []string{"--from-offset", "0:2", "--to-offset", "0:5"}, []part{{0, 2, 5}}, ""},
		{"to the end", []string{"--from-offset", "0:2,1:1"}, []part{{0, 2, 10}, {1, 1, 6}}, ""},
		{"end clamped", []string{"--from-offset", "1:0", "--to-offset", "1:50"}, []part{{1, 0, 6}}, "--to-offset 50 is past the end (6)"},
		{"start past retention", []string{"--from-offset", "2:0"}, []part{{2, 1, 3}}, "offsets 0 to 0 are gone"},
		{"from time, all partitions", []string{"--from-time", rfc(4)}, []part{{0, 4, 10}, {1, 2, 6}, {2, 3, 3}}, ""},
		{"time window", []string{"--from-time", rfc(3), "--to-time", rfc(7)}, []part{{0, 3, 7}, {1, 2, 4}, {2, 3, 3}}, ""},
		{"time window, some partitions", []string{"--from-time", rfc(3), "--to-time", rfc(7), "--partition", "1,0"}, []part{{0, 3, 7}, {1, 2, 4}}, ""},
		{"to time past the end", []string{"--from-offset", "0:8", "--to-time", "2099-01-01T00:00:00Z"}, []part{{0, 8, 10}}, ""},
		{"from time as a duration", []string{"--from-time", "59m54.5s", "--partition", "0"}, []part{{0, 6, 10}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, sum, stderr := w.replay(context.Background(), append([]string{"--sink", "profile", "--bypass-dedupe", "--dry-run"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			var got []part
			var n int64
			for _, p := range sum.Partitions {
				got = append(got, part{int64(p.Partition), p.From, p.End})
				n += p.End - p.From
			}
			if !slices.Equal(got, tc.want) || !sum.DryRun || sum.InRange != n || sum.Remaining != n {
				t.Errorf("partitions %v (in range %d, remaining %d), want %v", got, sum.InRange, sum.Remaining, tc.want)
			}
			if !strings.Contains(stderr, tc.note) {
				t.Errorf("stderr lacks %q:\n%s", tc.note, stderr)
			}
		})
	}
	if n := w.profile.requests.Load(); n != 0 {
		t.Errorf("a dry run sent %d requests", n)
	}
	if offs := w.groupOffsets("fanout.profile.replay." + "x"); len(offs) != 0 {
		t.Errorf("committed %v", offs)
	}
}

// The range, and only the range, goes to the one sink; failures are parked on
// its DLQ with the consumer's headers; the topic and the live groups are left
// alone; progress ends at the range's end, with the range in the metadata.
func TestReplayDeliversTheRangeThroughOneSink(t *testing.T) {
	w := newReplayWorld(t, ", ordering: key, max_in_flight: 4", func(key string) int {
		if key == dlqUID("0-4") {
			return http.StatusUnprocessableEntity
		}
		return http.StatusOK
	})
	w.emit(0, 12, nil, 6)
	w.emit(1, 5, nil)
	topicBefore := topicEnd(t, w.cl, "events")

	code, sum, stderr := w.replay(context.Background(), "--sink", "profile", "--from-offset", "0:2", "--to-offset", "0:9", "--bypass-dedupe", "--progress", "2")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	want := replay.Summary{ID: sum.ID, Sink: "profile", Topic: "events", Group: "fanout.profile.replay." + sum.ID, Dedupe: replay.ModeBypass,
		InRange: 7, Sent: 7, Delivered: 5, FailedToDLQ: 2, FailedByClass: map[string]int64{"permanent": 1, "undecodable": 1}}
	got := sum
	got.Partitions = nil
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("summary %+v\nwant    %+v", got, want)
	}
	acc := w.accepted(w.profile)
	for _, n := range w.events[0] {
		wantN := 0
		if slices.Contains(w.between(0, 2, 9), n) && n != "0-4" {
			wantN = 1
		}
		if acc[n] != wantN {
			t.Errorf("event %s accepted %d times, want %d", n, acc[n], wantN)
		}
	}
	if len(acc) != 5 {
		t.Errorf("profile accepted %v", acc)
	}
	if n := w.email.requests.Load(); n != 0 {
		t.Errorf("email got %d requests", n)
	}
	if !strings.Contains(stderr, "replay "+sum.ID+" starts: sink profile, 7 offsets of events to go in partition 0") ||
		!strings.Contains(stderr, "offsets done") || !strings.Contains(stderr, "parked on the dead-letter topic") {
		t.Errorf("stderr:\n%s", stderr)
	}

	// The DLQ holds both failures, as the consumer parks them.
	letters := w.dlqRead()
	if len(letters) != 2 {
		t.Fatalf("DLQ holds %d letters, want 2", len(letters))
	}
	byOffset := map[int64]dlq.Letter{}
	for _, l := range letters {
		byOffset[l.OrigOffset] = l
		if l.Sink != "profile" || l.OrigTopic != "events" || l.OrigPartition != 0 || l.ParkedAt.IsZero() || l.Redrives != 0 {
			t.Errorf("letter %+v", l)
		}
	}
	if l := byOffset[4]; l.Class != "permanent" || l.Status != 422 || l.Attempts != 1 || headerValue(l.Rec, "event-id") != dlqUID("0-4") {
		t.Errorf("the refused event's letter: %+v", l)
	}
	if l := byOffset[6]; l.Class != "undecodable" || string(l.Rec.Value) != "not avro" {
		t.Errorf("the undecodable record's letter: %+v", l)
	}
	if n := topicEnd(t, w.cl, "events"); n != topicBefore {
		t.Errorf("the replay produced %d records to the main topic", n-topicBefore)
	}
	if offs := w.groupOffsets("fanout.profile"); len(offs) != 0 {
		t.Errorf("the live group has offsets %v", offs)
	}
	offs := w.groupOffsets(want.Group)
	if o := offs[0]; len(offs) != 1 || o.At != 9 || o.Metadata != "fanout-replay/1 from=2 end=9 dedupe=bypass" {
		t.Errorf("progress %+v", offs)
	}

	// The same command again: the same ID, refused; --restart sends it again.
	code, _, stderr = w.replay(context.Background(), "--sink", "profile", "--from-offset", "0:2", "--to-offset", "0:9", "--bypass-dedupe")
	if code != 2 || !strings.Contains(stderr, "replay "+sum.ID+" (this sink, range and dedupe mode) ran before and has finished") {
		t.Errorf("second run: exit %d\n%s", code, stderr)
	}
	code, again, stderr := w.replay(context.Background(), "--sink", "profile", "--from-offset", "0:2", "--to-offset", "0:9", "--bypass-dedupe", "--restart")
	if code != 0 || again.ID != sum.ID || again.Delivered != 5 {
		t.Errorf("--restart: exit %d, %+v\n%s", code, again, stderr)
	}
	if acc := w.accepted(w.profile); acc["0-2"] != 2 || acc["0-1"] != 0 {
		t.Errorf("after --restart: %v", acc)
	}
}

// SIGINT mid-replay, unordered, several in flight: what is done is committed
// (with the records done past a gap in the metadata), --resume finishes the
// stored range — not the records produced since — and no record is sent twice.
func TestReplayInterruptedThenResumed(t *testing.T) {
	var slow atomic.Bool
	slow.Store(true)
	w := newReplayWorld(t, ", ordering: unordered, max_in_flight: 3", func(string) int {
		if slow.Load() {
			time.Sleep(20 * time.Millisecond)
		}
		return http.StatusOK
	})
	w.emit(0, 60, nil)
	w.emit(1, 30, nil)
	w.emit(2, 10, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for w.profile.requests.Load() < 20 {
			time.Sleep(2 * time.Millisecond)
		}
		cancel()
	}()
	code, first, stderr := w.replay(ctx, "--sink", "profile", "--from-offset", "0:0,1:0", "--bypass-dedupe")
	if code != 1 || !first.Interrupted || first.Remaining == 0 || first.Remaining == 90 || first.Abandoned != 0 ||
		!strings.Contains(stderr, "continue with: fanout replay -c "+w.cfg+" --sink profile --resume "+first.ID) {
		t.Fatalf("first run: exit %d, %+v\n%s", code, first, stderr)
	}
	offs := w.groupOffsets(first.Group)
	var committed int64
	for _, p := range first.Partitions {
		o := offs[p.Partition]
		meta, err := replay.ParseMeta(o.Metadata, o.At)
		if err != nil || o.At != p.Pos || meta.From != 0 || meta.End != p.End {
			t.Errorf("partition %d: committed %+v (%v), summary %+v", p.Partition, o, err, p)
		}
		committed += o.At + int64(len(meta.Done))
	}
	if done := first.InRange - first.Remaining; committed != done {
		t.Errorf("committed %d offsets as done, the summary says %d", committed, done)
	}

	// Records produced since are not part of the replay.
	w.emit(0, 5, nil)
	slow.Store(false)
	code, second, stderr := w.replay(context.Background(), "--sink", "profile", "--resume", first.ID)
	if code != 0 || !second.Resumed || second.ID != first.ID || second.Remaining != 0 || second.InRange != 90 ||
		second.DoneBefore != first.InRange-first.Remaining || second.Sent != first.Remaining {
		t.Fatalf("resumed: exit %d, %+v\n%s", code, second, stderr)
	}
	acc := w.accepted(w.profile)
	for _, n := range append(w.between(0, 0, 60), w.between(1, 0, 30)...) {
		if acc[n] != 1 {
			t.Errorf("event %s accepted %d times, want once", n, acc[n])
		}
	}
	if len(acc) != 90 {
		t.Errorf("profile accepted %d events, want the 90 of the range", len(acc))
	}
	// The replay is finished: resuming it again sends nothing.
	requests := w.profile.requests.Load()
	if code, third, stderr := w.replay(context.Background(), "--sink", "profile", "--resume", first.ID); code != 0 || third.Remaining != 0 || third.Sent != 0 {
		t.Errorf("third run: exit %d, %+v\n%s", code, third, stderr)
	}
	if n := w.profile.requests.Load(); n != requests {
		t.Errorf("resuming a finished replay sent %d requests", n-requests)
	}
}

// --rate spaces records over all lanes.
func TestReplayRate(t *testing.T) {
	w := newReplayWorld(t, ", ordering: unordered", nil)
	w.emit(0, 6, nil)
	start := time.Now()
	code, sum, stderr := w.replay(context.Background(), "--sink", "profile", "--from-offset", "0:0", "--bypass-dedupe", "--rate", "20/s")
	if code != 0 || sum.Delivered != 6 {
		t.Fatalf("exit %d, %+v\n%s", code, sum, stderr)
	}
	if d := time.Since(start); d < 5*50*time.Millisecond {
		t.Errorf("6 records at 20/s took %s, want at least 250ms", d)
	}
}

// replay's park log names the event as delivery does (the body's id field,
// not an event-id header that differs) and where the record is.
func TestReplayParkLogNamesTheDeliveredID(t *testing.T) {
	avroID, headerID := dlqUID("avro"), "header-says-otherwise"
	w := newReplayWorld(t, "", func(key string) int {
		if key == avroID {
			return http.StatusUnprocessableEntity
		}
		return http.StatusOK
	})
	doc := fmt.Sprintf(`{"id":%q,"email":"a@example.com","name":"Ada","plan":"PRO","created_at":"2026-11-27T10:00:00.000Z","referrer":null,"metadata":{}}`, avroID)
	v, _, err := w.codec.EncodeJSON(context.Background(), "user.registered", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	rec := &kgo.Record{Topic: "events", Partition: 2, Key: []byte(avroID), Value: v, Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte(headerID)}}}
	if err := w.cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	code, sum, stderr := w.replay(context.Background(), "--sink", "profile", "--from-offset", "2:0", "--to-offset", "2:1", "--bypass-dedupe")
	if code != 0 || sum.FailedToDLQ != 1 {
		t.Fatalf("exit %d, %+v\n%s", code, sum, stderr)
	}
	var line string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "parked on the dead-letter topic") {
			line = l
		}
	}
	if want := "topic=events partition=2 offset=0 event_id=" + avroID + " "; !strings.Contains(line, want) {
		t.Errorf("park log %q lacks %q", line, want)
	}
}
