package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/dlq"
	"github.com/fanout-dev/fanout/letter"
	"github.com/fanout-dev/fanout/schemas"
)

// Component tests of fanout dlq list, show and redrive: kfake for Kafka, real
// httptest servers for the APIs, the in-memory dedupe store (redis.addr "").

const dlqTopic = "events.profile.dlq"

// dlqWorld is a kfake cluster with the events topic and both sinks' DLQs, a
// config whose sinks call two test APIs, and a producer of dead letters.
type dlqWorld struct {
	t              *testing.T
	addrs          []string
	cfg            string
	profile, email *dlqAPI
	codec          *schemas.Codec
	cl             *kgo.Client
	names          map[string]string // event id → the test's short name for it
}

// uid is the event id (a UUID, as the schema wants) of the test's short name.
func dlqUID(name string) string {
	var h uint64 = 14695981039346656037
	for _, c := range []byte(name) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", h&0xffffffffffff)
}

// name returns the short name of event id, or id itself.
func (w *dlqWorld) name(id string) string {
	if n, ok := w.names[id]; ok {
		return n
	}
	return id
}

// accepted is the API's per-event acceptance count, by short name.
func (w *dlqWorld) accepted(a *dlqAPI) map[string]int {
	m := map[string]int{}
	for id, n := range a.snapshot() {
		m[w.name(id)] = n
	}
	return m
}

func newDLQWorld(t *testing.T, profileStatus func(key string) int) *dlqWorld {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events", dlqTopic, "events.email.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	w := &dlqWorld{t: t, addrs: c.ListenAddrs(), profile: newDLQAPI(t, profileStatus), email: newDLQAPI(t, nil), names: map[string]string{}}
	w.cfg = writeFile(t, fmt.Sprintf(`kafka: {brokers: [%s], topic: events}
run: {drain_timeout: 5s}
sinks:
  - {name: profile, url: "%s", retry: {attempts: 1}}
  - {name: email, url: "%s"}
`, w.addrs[0], w.profile.srv.URL, w.email.srv.URL))
	reg, err := schemas.NewLocal(schemas.Builtin(), schemas.BuiltinSubjects)
	if err != nil {
		t.Fatal(err)
	}
	w.codec = schemas.NewCodec(reg)
	if w.cl, err = kgo.NewClient(kgo.SeedBrokers(w.addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.cl.Close)
	return w
}

// dlqAPI is a test API counting, per Idempotency-Key, the requests it accepted.
type dlqAPI struct {
	srv      *httptest.Server
	status   func(key string) int // nil: 200
	delay    time.Duration
	requests atomic.Int64
	mu       sync.Mutex
	accepted map[string]int
}

func newDLQAPI(t *testing.T, status func(string) int) *dlqAPI {
	a := &dlqAPI{status: status, accepted: map[string]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		a.requests.Add(1)
		key := r.Header.Get("Idempotency-Key")
		code := http.StatusOK
		if a.status != nil {
			code = a.status(key)
		}
		if code/100 == 2 {
			a.mu.Lock()
			a.accepted[key]++
			a.mu.Unlock()
		}
		time.Sleep(a.delay)
		w.WriteHeader(code)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *dlqAPI) snapshot() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := map[string]int{}
	for k, v := range a.accepted {
		m[k] = v
	}
	return m
}

// dl is a dead letter to produce.
type dlqLetter struct {
	partition int32
	id        string // event id; "" = an undecodable body
	origin    int64  // original offset in events
	class     string
	status    int
	parkedAgo time.Duration
	redrives  int
	sink      string // default profile
	headerID  string // the event-id header when it differs from the body's id
}

func (w *dlqWorld) park(letters ...dlqLetter) {
	w.t.Helper()
	var recs []*kgo.Record
	for _, l := range letters {
		value := []byte{0x17, 'n', 'o', 't', ' ', 'a', 'v', 'r', 'o'}
		var headers []kgo.RecordHeader
		var key []byte
		if l.id != "" {
			id := l.id
			if !strings.Contains(id, "-") {
				id = dlqUID(l.id)
				w.names[id] = l.id
			}
			key = []byte(id)
			doc := fmt.Sprintf(`{"id":%q,"email":"a@example.com","name":"Ada","plan":"PRO","created_at":"2026-11-27T10:00:00.000Z","referrer":null,"metadata":{}}`, id)
			v, _, err := w.codec.EncodeJSON(context.Background(), "user.registered", []byte(doc))
			if err != nil {
				w.t.Fatal(err)
			}
			value = v
			hid := key
			if l.headerID != "" {
				hid = []byte(l.headerID)
			}
			headers = append(headers, kgo.RecordHeader{Key: "event-id", Value: hid})
		}
		if l.redrives > 0 {
			headers = append(headers, kgo.RecordHeader{Key: letter.HeaderRedriveCount, Value: []byte(strconv.Itoa(l.redrives))})
		}
		if l.sink == "" {
			l.sink = "profile"
		}
		parked := time.Now().Add(-l.parkedAgo).UTC().Format("2006-01-02T15:04:05.000Z07:00")
		for k, v := range map[string]string{
			letter.HeaderTopic: "events", letter.HeaderPartition: "0", letter.HeaderOffset: strconv.FormatInt(l.origin, 10),
			letter.HeaderTimestamp: "2026-11-27T10:00:00.000Z", letter.HeaderSink: l.sink, letter.HeaderAttempts: "1",
			letter.HeaderError: fmt.Sprintf("http %d: %s", l.status, http.StatusText(l.status)), letter.HeaderErrorClass: l.class,
			letter.HeaderStatus: strconv.Itoa(l.status), letter.HeaderParkedAt: parked,
		} {
			headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		recs = append(recs, &kgo.Record{Topic: dlqTopic, Partition: l.partition, Key: key, Value: value, Headers: headers})
	}
	if err := w.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		w.t.Fatal(err)
	}
}

// dlqRead returns every record of the profile DLQ.
func (w *dlqWorld) dlqRead() []dlq.Letter {
	w.t.Helper()
	adm := kadm.NewClient(w.cl)
	r, err := dlq.TakeRange(context.Background(), adm, dlqTopic, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []dlq.Letter
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Read(ctx, []kgo.Opt{kgo.SeedBrokers(w.addrs...)}, func(rec *kgo.Record) error {
		out = append(out, dlq.Parse(rec))
		return nil
	}); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// committed returns the redrive group's offsets in the profile DLQ.
func (w *dlqWorld) committed() map[int32]int64 {
	w.t.Helper()
	offs, err := kadm.NewClient(w.cl).FetchOffsets(context.Background(), "fanout.profile.redrive")
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil
	}
	if err != nil {
		w.t.Fatal(err)
	}
	m := map[int32]int64{}
	for p, o := range offs[dlqTopic] {
		m[p] = o.At
	}
	return m
}

func (w *dlqWorld) fanout(args ...string) (int, string, string) {
	w.t.Helper()
	return runCLI(w.t, append(args, "-c", w.cfg)...)
}

func dlqSummary(t *testing.T, stdout string) dlq.Counts {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var c dlq.Counts
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &c); err != nil {
		t.Fatalf("last line of stdout is not the summary: %v\n%s", err, stdout)
	}
	return c
}

func TestDLQUsageErrors(t *testing.T) {
	cfg := writeFile(t, `kafka: {brokers: [127.0.0.1:1], topic: events}
sinks:
  - {name: profile, url: "http://127.0.0.1:8081/users"}
`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "list", "--sink", "profile"}, "-c FILE is required"},
		{[]string{"dlq", "list", "-c", cfg}, "--sink NAME is required"},
		{[]string{"dlq", "list", "-c", cfg, "--sink", "nope"}, `no sink named "nope" in the config (sinks: profile)`},
		{[]string{"dlq", "list", "-c", cfg, "--sink", "profile", "--output", "xml"}, "--output"},
		{[]string{"dlq", "list", "-c", cfg, "--sink", "profile", "--limit", "-1"}, "--limit"},
		{[]string{"dlq", "list", "-c", cfg, "--sink", "profile", "--status", "5xx"}, "--status"},
		{[]string{"dlq", "list", "-c", cfg, "--sink", "profile", "extra"}, "unexpected arguments"},
		{[]string{"dlq", "show", "-c", cfg, "--sink", "profile"}, "--at PARTITION:OFFSET is required"},
		{[]string{"dlq", "show", "-c", cfg, "--sink", "profile", "--at", "1"}, "is not partition:offset"},
		{[]string{"dlq", "show", "-c", cfg, "--sink", "nope", "--at", "1:2"}, `no sink named "nope"`},
		{[]string{"dlq", "redrive", "-c", cfg, "--sink", "nope"}, `no sink named "nope"`},
		{[]string{"dlq", "redrive", "-c", cfg, "--sink", "profile", "--max-redrives", "0"}, "--max-redrives"},
		{[]string{"dlq", "redrive", "-c", cfg, "--sink", "profile", "--rate", "lots"}, "--rate"},
		{[]string{"dlq", "redrive", "-c", cfg, "--sink", "profile", "--class", "nope"}, "--class"},
		{[]string{"dlq", "redrive", "-c", cfg, "--sink", "profile", "--since", "1h", "--until", "3h"}, "is not before --until"},
		{[]string{"dlq", "redrive", "-c", cfg, "--sink", "profile", "--progress", "0"}, "--progress"},
		// Without Redis, nothing remembers what an earlier redrive delivered.
		{[]string{"dlq", "redrive", "-c", cfg, "--sink", "profile", "--from-start"}, "--from-start needs the Redis dedupe store"},
		{[]string{"dlq"}, "want a subcommand: dlq list, dlq show, dlq redrive"},
	} {
		t.Run(strings.Join(tc.args[1:], " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want 2 with %q; stderr:\n%s", code, tc.want, stderr)
			}
		})
	}
}

func TestDLQListEmpty(t *testing.T) {
	w := newDLQWorld(t, nil)
	code, out, stderr := w.fanout("dlq", "list", "--sink", "profile")
	if code != 0 || out != "no dead letters in events.profile.dlq\n" {
		t.Errorf("exit %d, stdout %q, stderr %s", code, out, stderr)
	}
	// JSON lines stay JSON: the note goes to stderr.
	code, out, stderr = w.fanout("dlq", "list", "--sink", "profile", "--output", "json")
	if code != 0 || out != "" || !strings.Contains(stderr, "no dead letters in events.profile.dlq") {
		t.Errorf("json: exit %d, stdout %q, stderr %s", code, out, stderr)
	}
	// A DLQ topic that does not exist is an error, with the fix.
	cfg := writeFile(t, fmt.Sprintf("kafka: {brokers: [%s], topic: events}\nsinks:\n  - {name: profile, url: \"http://127.0.0.1:1/\", dlq_topic: missing.dlq}\n", w.addrs[0]))
	code, _, stderr = runCLI(t, "dlq", "list", "-c", cfg, "--sink", "profile")
	if code != 1 || !strings.Contains(stderr, "dead-letter topic missing.dlq does not exist (fanout topics ensure creates it)") {
		t.Errorf("missing topic: exit %d, stderr %s", code, stderr)
	}
}

func TestDLQListFilters(t *testing.T) {
	w := newDLQWorld(t, nil)
	w.park(
		dlqLetter{partition: 0, id: "a", origin: 1, class: "permanent", status: 400, parkedAgo: 3 * time.Hour},
		dlqLetter{partition: 0, id: "b", origin: 2, class: "permanent", status: 422, parkedAgo: time.Hour},
		dlqLetter{partition: 1, id: "c", origin: 3, class: "retries-exhausted", status: 503, parkedAgo: 30 * time.Minute, redrives: 2},
		dlqLetter{partition: 2, id: "", origin: 4, class: "undecodable", status: 0, parkedAgo: 10 * time.Minute},
		dlqLetter{partition: 2, id: "d", origin: 5, class: "permanent", status: 400, parkedAgo: time.Minute},
	)
	ids := func(args ...string) string {
		t.Helper()
		code, out, stderr := w.fanout(append([]string{"dlq", "list", "--sink", "profile", "--output", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("list %v: exit %d\n%s", args, code, stderr)
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			var l letterJSON
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("list %v: line %q: %v", args, line, err)
			}
			if l.Sink != "profile" || l.OriginalTopic != "events" || l.ParkedAt == "" {
				t.Errorf("list %v: incomplete line %s", args, line)
			}
			got = append(got, w.name(l.EventID))
		}
		return strings.Join(got, ",")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "a,b,c,events/0/4,d"}, // partitions in order here: one produce, read partition by partition
		{[]string{"--status", "400"}, "a,d"},
		{[]string{"--status", "503,0"}, "c,events/0/4"},
		{[]string{"--class", "permanent"}, "a,b,d"},
		{[]string{"--class", "undecodable"}, "events/0/4"}, // no event-id header, no body: the original place
		{[]string{"--since", "2h"}, "b,c,events/0/4,d"},
		{[]string{"--since", "45m", "--until", "5m"}, "c,events/0/4"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got := ids(tc.args...)
			// Partitions interleave in a read; compare as sets where order is not the point.
			if dlqSortedCSV(got) != dlqSortedCSV(tc.want) {
				t.Errorf("selected %s, want %s", got, tc.want)
			}
		})
	}

	// --limit: the first two of a, b, d to arrive (partitions interleave).
	if got := strings.Split(ids("--class", "permanent", "--limit", "2"), ","); len(got) != 2 || got[0] == got[1] ||
		!strings.Contains("a,b,d", got[0]) || !strings.Contains("a,b,d", got[1]) {
		t.Errorf("--limit 2 selected %v", got)
	}

	code, out, _ := w.fanout("dlq", "list", "--sink", "profile")
	for _, want := range []string{"AT", "EVENT ID", "REDRIVES", "1:0", "retries-exhausted", "http 503: Service Unavailable", "5 dead letters shown"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = w.fanout("dlq", "list", "--sink", "profile", "--status", "418")
	if code != 0 || !strings.Contains(out, "no dead letters match the filters (5 in events.profile.dlq)") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func dlqSortedCSV(s string) string {
	parts := strings.Split(s, ",")
	for i := range parts {
		for j := i + 1; j < len(parts); j++ {
			if parts[j] < parts[i] {
				parts[i], parts[j] = parts[j], parts[i]
			}
		}
	}
	return strings.Join(parts, ",")
}

func TestDLQShow(t *testing.T) {
	w := newDLQWorld(t, nil)
	w.park(
		dlqLetter{partition: 1, id: "6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a", origin: 7, class: "permanent", status: 422},
		dlqLetter{partition: 1, origin: 8, class: "undecodable"},
	)
	code, out, stderr := w.fanout("dlq", "show", "--sink", "profile", "--at", "1:0")
	for _, want := range []string{
		"dead letter events.profile.dlq 1:0",
		"key: 6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a",
		"  event-id: 6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a",
		"  fanout-original-offset: 7",
		"  fanout-http-status: 422",
		"body: user.registered (schema id 1, ",
		"{\n  \"id\": \"6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a\",\n  \"email\": \"a@example.com\",",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("show 1:0 (exit %d) lacks %q:\n%s%s", code, want, out, stderr)
		}
	}
	code, out, stderr = w.fanout("dlq", "show", "--sink", "profile", "--at", "1:1")
	for _, want := range []string{"key: (none)", "body: undecodable: schemas: bad magic byte 0x17 (want 0x00)", "body as base64 (9 bytes):\n  F25vdCBhdnJv\n"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("show 1:1 (exit %d) lacks %q:\n%s%s", code, want, out, stderr)
		}
	}
	for at, want := range map[string]string{
		"1:2": "partition 1 of events.profile.dlq holds offsets 0 to 1",
		"0:0": "partition 0 of events.profile.dlq is empty",
		"9:0": "partition 9 of events.profile.dlq is empty or does not exist",
	} {
		if code, _, stderr := w.fanout("dlq", "show", "--sink", "profile", "--at", at); code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("show %s: exit %d, stderr %s", at, code, stderr)
		}
	}
}

func TestDLQRedriveDeliversOnceThroughOneSink(t *testing.T) {
	w := newDLQWorld(t, nil)
	w.park(
		dlqLetter{partition: 0, id: "e1", origin: 1, class: "permanent", status: 400},
		dlqLetter{partition: 0, id: "e2", origin: 2, class: "permanent", status: 400},
		dlqLetter{partition: 1, id: "e3", origin: 3, class: "retries-exhausted", status: 503},
		// e2 again: a second copy of the same original record (parked again
		// later): only the newest copy is redriven.
		dlqLetter{partition: 2, id: "e2", origin: 2, class: "permanent", status: 400, redrives: 1},
		// e1 again, from another original record (published twice): the
		// dedupe store knows it is delivered once the first is.
		dlqLetter{partition: 2, id: "e1", origin: 9, class: "permanent", status: 400},
		// Redriven five times already: the default cap.
		dlqLetter{partition: 1, id: "e4", origin: 4, class: "permanent", status: 400, redrives: 5},
		dlqLetter{partition: 2, id: "", origin: 5, class: "undecodable"},
	)
	// A dry run sends nothing and commits nothing.
	code, out, stderr := w.fanout("dlq", "redrive", "--sink", "profile", "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run (nothing sent) profile: 6 selected") || !strings.Contains(out, "cap reached") ||
		!strings.Contains(out, "1 superseded") || w.profile.requests.Load() != 0 || len(w.committed()) != 0 {
		t.Fatalf("dry run: exit %d, %d requests, committed %v\n%s%s", code, w.profile.requests.Load(), w.committed(), out, stderr)
	}

	start := time.Now()
	code, out, stderr = w.fanout("dlq", "redrive", "--sink", "profile", "--output", "json", "--rate", "20/s")
	if code != 0 {
		t.Fatalf("redrive: exit %d\n%s%s", code, out, stderr)
	}
	// 5 letters sent at 20/s: at least 4 intervals of 50ms.
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("5 letters at 20/s took %v", took)
	}
	got := dlqSummary(t, out)
	want := dlq.Counts{Topic: dlqTopic, Group: "fanout.profile.redrive", Examined: 7, Selected: 6, Delivered: 3,
		AlreadyDelivered: 1, FailedAgain: 1, CapReached: 1, Superseded: 1}
	if got != want {
		t.Errorf("summary %+v\nwant    %+v\n%s", got, want, stderr)
	}
	if acc := w.accepted(w.profile); len(acc) != 3 || acc["e1"] != 1 || acc["e2"] != 1 || acc["e3"] != 1 {
		t.Errorf("profile API accepted %v, want e1, e2, e3 once each", acc)
	}
	if n := w.email.requests.Load(); n != 0 {
		t.Errorf("the email sink's API got %d requests from a profile redrive", n)
	}
	// The undecodable letter failed again: parked again with one more redrive.
	letters := w.dlqRead()
	if len(letters) != 8 {
		t.Fatalf("DLQ has %d letters, want 8", len(letters))
	}
	again := letters[len(letters)-1]
	for _, l := range letters {
		if l.Redrives == 1 && l.Class == "undecodable" {
			again = l
		}
	}
	if again.Redrives != 1 || again.Class != "undecodable" || again.Origin() != "events/0/5" || again.Sink != "profile" ||
		!strings.Contains(again.ErrText, "bad magic byte") || time.Since(again.ParkedAt) > time.Minute {
		t.Errorf("parked again: %+v", again)
	}
	// Committed: everything examined, so the next run has nothing but the letter parked again.
	com := w.committed()
	if com[0] != 2 || com[1] != 2 {
		t.Errorf("committed %v", com)
	}
	// The next run sees only the letter parked again; filtered out, it is examined all the same.
	code, out, _ = w.fanout("dlq", "redrive", "--sink", "profile", "--output", "json", "--class", "permanent")
	if got := dlqSummary(t, out); code != 0 || got.Examined != 1 || got.SkippedByFilter != 1 || got.Selected != 0 {
		t.Errorf("second run: exit %d, %+v", code, got)
	}
	code, out, _ = w.fanout("dlq", "redrive", "--sink", "profile")
	if code != 0 || !strings.Contains(out, "no dead letters parked since the last redrive (group fanout.profile.redrive) in events.profile.dlq") {
		t.Errorf("third run: exit %d\n%s", code, out)
	}
	if acc := w.accepted(w.profile); len(acc) != 3 || acc["e1"] != 1 || acc["e2"] != 1 || acc["e3"] != 1 {
		t.Errorf("after more runs the profile API accepted %v", acc)
	}
}

func TestDLQRedriveFailsAgainThenCap(t *testing.T) {
	w := newDLQWorld(t, func(string) int { return http.StatusBadRequest })
	w.park(
		dlqLetter{partition: 0, id: "x1", origin: 1, class: "permanent", status: 400},
		dlqLetter{partition: 1, id: "x2", origin: 2, class: "permanent", status: 400},
	)
	code, out, stderr := w.fanout("dlq", "redrive", "--sink", "profile", "--output", "json")
	if got := dlqSummary(t, out); code != 0 || got.Selected != 2 || got.FailedAgain != 2 {
		t.Fatalf("exit %d, %+v\n%s", code, got, stderr)
	}
	var copies []dlq.Letter
	for _, l := range w.dlqRead() {
		if l.Redrives == 1 {
			copies = append(copies, l)
		}
	}
	if len(copies) != 2 {
		t.Fatalf("%d letters parked again, want 2", len(copies))
	}
	for _, l := range copies {
		if l.Class != "permanent" || l.Status != 400 || l.Attempts != 2 || l.OrigTopic != "events" || // 1 first + 1 on redrive
			headerValue(l.Rec, "event-id") == "" || l.ErrText == "" {
			t.Errorf("parked again: %+v", l)
		}
	}
	requests := w.profile.requests.Load()
	code, out, stderr = w.fanout("dlq", "redrive", "--sink", "profile", "--max-redrives", "1", "--output", "json")
	if got := dlqSummary(t, out); code != 0 || got.Selected != 2 || got.CapReached != 2 || got.FailedAgain != 0 {
		t.Errorf("capped run: exit %d, %+v\n%s", code, got, stderr)
	}
	if n := w.profile.requests.Load(); n != requests {
		t.Errorf("capped letters were sent: %d requests", n-requests)
	}
	if n := len(w.dlqRead()); n != 4 {
		t.Errorf("DLQ has %d letters after the capped run, want 4", n)
	}
}

// SIGINT (ctx cancelled) mid-run: the letter in hand finishes, what was
// examined is committed, and the next run does the rest; each event once.
func TestDLQRedriveInterrupted(t *testing.T) {
	w := newDLQWorld(t, nil)
	w.profile.delay = 300 * time.Millisecond
	var letters []dlqLetter
	for i := range 6 {
		letters = append(letters, dlqLetter{partition: 0, id: "i" + strconv.Itoa(i), origin: int64(i), class: "permanent", status: 400})
	}
	w.park(letters...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for w.profile.requests.Load() < 2 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"dlq", "redrive", "-c", w.cfg, "--sink", "profile", "--output", "json"}, &out, &errb)
	got := dlqSummary(t, out.String())
	if code != 1 || !got.Interrupted || got.Delivered != 2 || !strings.Contains(errb.String(), "interrupted after 2 letters") {
		t.Fatalf("exit %d, %+v\n%s", code, got, errb.String())
	}
	if com := w.committed(); com[0] != 2 {
		t.Errorf("committed %v, want partition 0 at 2", com)
	}
	code, outs, stderr := w.fanout("dlq", "redrive", "--sink", "profile", "--output", "json")
	if got := dlqSummary(t, outs); code != 0 || got.Examined != 4 || got.Delivered != 4 {
		t.Errorf("second run: exit %d, %+v\n%s", code, got, stderr)
	}
	acc := w.accepted(w.profile)
	for _, l := range letters {
		if acc[l.id] != 1 {
			t.Errorf("event %s accepted %d times", l.id, acc[l.id])
		}
	}
}

// The dlq commands name an event as delivery does: the body's id field
// first, the event-id header only when the body has none (or does not decode).
func TestDLQEventIDAsDelivered(t *testing.T) {
	w := newDLQWorld(t, nil)
	w.park(
		dlqLetter{partition: 0, id: "a", headerID: "header-of-a", origin: 1, class: "permanent", status: 400},
		dlqLetter{partition: 1, id: "", origin: 2, class: "undecodable"},
	)
	if err := w.cl.ProduceSync(context.Background(), &kgo.Record{Topic: dlqTopic, Partition: 2, Value: []byte{0x17},
		Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("header-only")}, {Key: letter.HeaderSink, Value: []byte("profile")}}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"dlq", "list"}, {"dlq", "redrive", "--dry-run"}} {
		code, out, stderr := w.fanout(append(args, "--sink", "profile", "--output", "json")...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
		got := map[int32]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var l letterJSON
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("%v: line %q: %v", args, line, err)
			}
			if l.EventID != "" { // not redrive's summary line
				got[l.Partition] = l.EventID
			}
		}
		want := map[int32]string{0: dlqUID("a"), 1: "events/0/2", 2: "header-only"}
		for p, id := range want {
			if got[p] != id {
				t.Errorf("%v: partition %d event id %q, want %q (all: %v)", args, p, got[p], id, got)
			}
		}
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

// Redrive's progress lines (every --progress selected letters, on stderr)
// come from dlq.Redriver's progress func; the summary stays on stdout.
func TestDLQRedriveProgressLines(t *testing.T) {
	w := newDLQWorld(t, nil)
	w.park(
		dlqLetter{partition: 0, id: "p1", origin: 1, class: "permanent", status: 400},
		dlqLetter{partition: 0, id: "p2", origin: 2, class: "permanent", status: 400},
		dlqLetter{partition: 0, id: "p3", origin: 3, class: "permanent", status: 400, redrives: 5},
	)
	code, out, stderr := w.fanout("dlq", "redrive", "--sink", "profile", "--progress", "2")
	if code != 0 || !strings.Contains(out, "redrive profile: 3 selected, 2 delivered") {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "redrive profile: ") {
			lines = append(lines, l)
		}
	}
	if want := "redrive profile: 2 selected: 2 delivered, 0 already delivered, 0 failed again, 0 cap reached"; len(lines) != 1 || lines[0] != want {
		t.Errorf("progress lines %q, want [%q]", lines, want)
	}
}
