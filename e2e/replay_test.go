package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/e2e/services"
)

// fanout replay against a real broker, redis-server and the built binary.

// replaySummary is `fanout replay --output json`.
type replaySummary struct {
	ID               string `json:"id"`
	Group            string `json:"group"`
	Dedupe           string `json:"dedupe"`
	Resumed          bool   `json:"resumed"`
	Interrupted      bool   `json:"interrupted"`
	InRange          int64  `json:"in_range"`
	DoneBefore       int64  `json:"done_before"`
	Sent             int64  `json:"sent"`
	Delivered        int64  `json:"delivered"`
	AlreadyDelivered int64  `json:"already_delivered"`
	FailedToDLQ      int64  `json:"failed_to_dlq"`
	SkippedByType    int64  `json:"skipped_by_type"`
	Remaining        int64  `json:"remaining"`
}

// replay runs `fanout replay --output json` with args to completion.
func (s *scenario) replay(args ...string) (int, replaySummary, string) {
	s.t.Helper()
	code, out, stderr := s.dlqCLI(append([]string{"replay", "-c", s.cfg, "--output", "json"}, args...)...)
	var sum replaySummary
	if strings.TrimSpace(out) != "" {
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			s.t.Fatalf("replay %v: stdout is not one JSON summary: %v\n%s\n%s", args, err, out, stderr)
		}
	}
	s.t.Logf("replay %v: exit %d, %+v", args, code, sum)
	return code, sum, stderr
}

// liveOffsets snapshots the committed offsets of the sinks' own groups (main
// and retry tiers) and of their redrive groups.
func (s *scenario) liveOffsets(sinks ...string) string {
	s.t.Helper()
	adm := admin(s.t)
	var lines []string
	for _, sk := range sinks {
		for _, g := range []string{sk, sk + ".retry.1", sk + ".retry.2", sk + ".retry.3", sk + ".redrive"} {
			offs, err := adm.FetchOffsets(context.Background(), s.prefix+g)
			if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
				s.t.Fatal(err)
			}
			offs.Each(func(o kadm.OffsetResponse) {
				lines = append(lines, fmt.Sprintf("%s %s/%d=%d", g, o.Topic, o.Partition, o.At))
			})
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "; ")
}

// partitionEvents returns the event ids of partition p at offsets [from, to).
func partitionEvents(t *testing.T, topic string, p int32, from, to int64) []string {
	t.Helper()
	var ids []string
	for _, r := range readTopic(t, topic) {
		if r.Partition == p && r.Offset >= from && r.Offset < to {
			ids = append(ids, header(r, "event-id"))
		}
	}
	if int64(len(ids)) != to-from {
		t.Fatalf("partition %d holds %d records in [%d, %d), want %d", p, len(ids), from, to, to-from)
	}
	return ids
}

// checkCounts asserts tg accepted each event of twice exactly twice and every
// other event of ids exactly once.
func checkCounts(t *testing.T, name string, tg *target, ids, twice []string) {
	t.Helper()
	want := map[string]int{}
	for _, id := range ids {
		want[id] = 1
	}
	for _, id := range twice {
		want[id] = 2
	}
	got := tg.snapshot()
	bad := 0
	for id, n := range want {
		if got[id] != n {
			bad++
			if bad <= 10 {
				t.Errorf("%s: event %s accepted %d times, want %d", name, id, got[id], n)
			}
		}
	}
	if bad > 10 {
		t.Errorf("%s: %d events in all with the wrong count", name, bad)
	}
	if len(got) != len(want) {
		t.Errorf("%s: accepted %d distinct events, want %d", name, len(got), len(want))
	}
}

// Two sinks deliver everything; replaying partition 0's offsets 100-300 to
// one of them sends exactly those 200 events to it again with
// --bypass-dedupe, nothing with --respect-dedupe, nothing to the other sink,
// and leaves the topic and the sinks' groups as they were.
func TestReplayOneSinkBypassAndRespect(t *testing.T) {
	const n = 1500 // ~500 a partition
	s := newScenario(t, "replay", n)
	a, b := newTarget(t, 0, nil), newTarget(t, 0, nil)
	s.writeConfig(
		sinkSpec{name: "a", target: a, extra: "ordering: unordered\nmax_in_flight: 16"},
		sinkSpec{name: "b", target: b, extra: "ordering: key"},
	)
	s.emitAll()
	p := s.start()
	s.waitDone(3*time.Minute, map[string]*target{"a": a, "b": b}, map[string][]string{"a": s.ids, "b": s.ids})
	p.term(t)
	checkAccepted(t, "a", a, s.ids, 0)
	checkAccepted(t, "b", b, s.ids, 0)

	live := s.liveOffsets("a", "b")
	topicEnd := len(readTopic(t, s.topic))
	inRange := partitionEvents(t, s.topic, 0, 100, 300)
	aRequests, bRequests := a.requests.Load(), b.requests.Load()

	code, sum, stderr := s.replay("--sink", "a", "--from-offset", "0:100", "--to-offset", "0:300", "--bypass-dedupe")
	if code != 0 || sum.InRange != 200 || sum.Sent != 200 || sum.Delivered != 200 || sum.AlreadyDelivered != 0 ||
		sum.FailedToDLQ != 0 || sum.Remaining != 0 || sum.Dedupe != "bypass" {
		t.Fatalf("bypass: exit %d, %+v\n%s", code, sum, stderr)
	}
	checkCounts(t, "a", a, s.ids, inRange)
	if got := a.requests.Load() - aRequests; got != 200 {
		t.Errorf("a got %d requests, want 200", got)
	}
	// What arrived again is the event as emitted, with its Idempotency-Key.
	a.mu.Lock()
	for _, id := range inRange {
		if !bytes.Equal(a.bodies[id], s.bodies[id]) {
			t.Errorf("replayed %s arrived with body %s", id, a.bodies[id])
		}
	}
	a.mu.Unlock()

	code, sum, stderr = s.replay("--sink", "a", "--from-offset", "0:100", "--to-offset", "0:300", "--respect-dedupe")
	if code != 0 || sum.InRange != 200 || sum.Sent != 200 || sum.Delivered != 0 || sum.AlreadyDelivered != 200 || sum.Remaining != 0 {
		t.Fatalf("respect: exit %d, %+v\n%s", code, sum, stderr)
	}
	if got := a.requests.Load() - aRequests; got != 200 {
		t.Errorf("a got %d requests after --respect-dedupe, want still 200", got)
	}
	checkCounts(t, "a", a, s.ids, inRange)
	checkAccepted(t, "b", b, s.ids, 0)
	if got := b.requests.Load(); got != bRequests {
		t.Errorf("b got %d requests from replays to a", got-bRequests)
	}
	if now := s.liveOffsets("a", "b"); now != live {
		t.Errorf("the sinks' groups moved:\nbefore %s\nafter  %s", live, now)
	}
	if now := len(readTopic(t, s.topic)); now != topicEnd {
		t.Errorf("the topic grew from %d to %d records", topicEnd, now)
	}
	if recs := readTopic(t, s.topic+".a.dlq"); len(recs) != 0 {
		t.Errorf("a's DLQ holds %d records", len(recs))
	}
}

// A time window: exactly the events produced in [from-time, to-time) are
// delivered (never delivered before, so --respect-dedupe sends them), on
// every partition, to the one sink.
func TestReplayTimeWindow(t *testing.T) {
	const n = 600
	s := newScenario(t, "replaytime", n)
	a, b := newTarget(t, 0, nil), newTarget(t, 0, nil)
	s.writeConfig(
		sinkSpec{name: "a", target: a, extra: "ordering: key\nmax_in_flight: 16"},
		sinkSpec{name: "b", target: b},
	)
	s.fanout("topics", "ensure", "-c", s.cfg, "--partitions", "3")
	// Event i is produced with the timestamp base + i seconds.
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	codec := builtinCodec(t)
	var recs []*kgo.Record
	for i, doc := range s.docs {
		v, _, err := codec.EncodeJSON(context.Background(), "user.registered", doc)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: s.topic, Key: []byte(s.ids[i]), Value: v,
			Timestamp: base.Add(time.Duration(i) * time.Second),
			Headers:   []kgo.RecordHeader{{Key: "event-id", Value: []byte(s.ids[i])}}})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	from, to := base.Add(200*time.Second), base.Add(400*time.Second)
	code, sum, stderr := s.replay("--sink", "a", "--from-time", from.Format(time.RFC3339Nano), "--to-time", to.Format(time.RFC3339Nano))
	if code != 0 || sum.InRange != 200 || sum.Delivered != 200 || sum.Remaining != 0 || sum.Dedupe != "respect" {
		t.Fatalf("exit %d, %+v\n%s", code, sum, stderr)
	}
	checkAccepted(t, "a", a, s.ids[200:400], 0)
	if got := b.requests.Load(); got != 0 {
		t.Errorf("b got %d requests", got)
	}
}

// An interrupted replay against a slow API, resumed with --resume ID, covers
// the range with each record sent once by the replay overall.
func TestReplayInterruptedAndResumed(t *testing.T) {
	const n = 900 // ~300 in partition 0
	s := newScenario(t, "replayresume", n)
	var slow atomic.Bool
	a := newTarget(t, 0, func(string, int) int {
		if slow.Load() {
			time.Sleep(100 * time.Millisecond)
		}
		return http.StatusOK
	})
	b := newTarget(t, 0, nil)
	s.writeConfig(
		sinkSpec{name: "a", target: a, extra: "ordering: unordered\nmax_in_flight: 4"},
		sinkSpec{name: "b", target: b},
	)
	s.emitAll()
	p := s.start()
	s.waitDone(3*time.Minute, map[string]*target{"a": a, "b": b}, map[string][]string{"a": s.ids, "b": s.ids})
	p.term(t)
	live := s.liveOffsets("a", "b")
	end := int64(0)
	for _, r := range readTopic(t, s.topic) {
		if r.Partition == 0 {
			end = max(end, r.Offset+1)
		}
	}
	inRange := partitionEvents(t, s.topic, 0, 0, end)
	aRequests := a.requests.Load()

	slow.Store(true)
	var out, errb syncBuffer
	cmd := exec.Command(fanoutBin, "replay", "-c", s.cfg, "--sink", "a", "--from-offset", "0:0", "--bypass-dedupe", "--output", "json")
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = services.ChildProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	waitFor(t, time.Minute, "the replay made some progress", func() (bool, string) {
		got := a.requests.Load() - aRequests
		return got >= 40, fmt.Sprintf("%d requests", got)
	})
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("replay did not stop within 30s of SIGINT\n%s", errb.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("interrupted replay: exit %d, want 1\n%s", code, errb.String())
	}
	var first replaySummary
	if err := json.Unmarshal([]byte(out.String()), &first); err != nil {
		t.Fatalf("interrupted replay: no JSON summary: %v\n%s\n%s", err, out.String(), errb.String())
	}
	t.Logf("interrupted: %+v", first)
	id := regexp.MustCompile(`replay ([0-9a-f]{8}) starts`).FindStringSubmatch(errb.String())
	if len(id) != 2 || id[1] != first.ID || !first.Interrupted || first.Remaining == 0 || first.InRange != end ||
		!strings.Contains(errb.String(), "--resume "+first.ID) {
		t.Fatalf("interrupted replay: %+v\n%s", first, errb.String())
	}

	slow.Store(false)
	code, second, stderr := s.replay("--sink", "a", "--resume", first.ID)
	if code != 0 || !second.Resumed || second.Remaining != 0 || second.InRange != end || second.Dedupe != "bypass" ||
		second.DoneBefore != first.InRange-first.Remaining {
		t.Fatalf("resumed: exit %d, %+v\n%s", code, second, stderr)
	}
	// Each record of the range was sent once by the two runs together.
	if got := a.requests.Load() - aRequests; got != end {
		t.Errorf("the replay sent %d requests for %d records", got, end)
	}
	checkCounts(t, "a", a, s.ids, inRange)
	checkAccepted(t, "b", b, s.ids, 0)
	if now := s.liveOffsets("a", "b"); now != live {
		t.Errorf("the sinks' groups moved:\nbefore %s\nafter  %s", live, now)
	}
	offs, err := admin(t).FetchOffsets(context.Background(), first.Group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(s.topic, 0); !ok || o.At != end {
		t.Errorf("replay group %s: partition 0 at %+v, want %d", first.Group, o, end)
	}
}
