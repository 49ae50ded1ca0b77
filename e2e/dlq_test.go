package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fanout dlq list / redrive against a real broker, redis-server and the
// built binary.

// dlqLine is one line of `fanout dlq list --output json`.
type dlqLine struct {
	Partition      int32  `json:"partition"`
	Offset         int64  `json:"offset"`
	EventID        string `json:"event_id"`
	Class          string `json:"class"`
	Status         int    `json:"status"`
	RedriveCount   int    `json:"redrive_count"`
	Sink           string `json:"sink"`
	OriginalTopic  string `json:"original_topic"`
	OriginalOffset int64  `json:"original_offset"`
}

// redriveSummary is `fanout dlq redrive --output json`.
type redriveSummary struct {
	Examined         int  `json:"examined"`
	Selected         int  `json:"selected"`
	Delivered        int  `json:"delivered"`
	AlreadyDelivered int  `json:"already_delivered"`
	FailedAgain      int  `json:"failed_again"`
	CapReached       int  `json:"cap_reached"`
	SkippedByFilter  int  `json:"skipped_by_filter"`
	Superseded       int  `json:"superseded"`
	Interrupted      bool `json:"interrupted"`
}

// dlqCLI runs a fanout command to completion; it returns the exit code and
// stdout and stderr apart (stdout is JSON with --output json).
func (s *scenario) dlqCLI(args ...string) (int, string, string) {
	s.t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(fanoutBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	s.t.Fatalf("fanout %s: %v", strings.Join(args, " "), err)
	return 0, "", ""
}

// dlqList returns the sink's dead letters as `fanout dlq list --output json` prints them.
func (s *scenario) dlqList(sink string) []dlqLine {
	s.t.Helper()
	code, out, stderr := s.dlqCLI("dlq", "list", "-c", s.cfg, "--sink", sink, "--output", "json")
	if code != 0 {
		s.t.Fatalf("dlq list: exit %d\n%s", code, stderr)
	}
	var lines []dlqLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var d dlqLine
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			s.t.Fatalf("dlq list: %q is not JSON: %v", l, err)
		}
		lines = append(lines, d)
	}
	return lines
}

// redrive runs `fanout dlq redrive --output json` with args; it must exit 0.
func (s *scenario) redrive(sink string, args ...string) redriveSummary {
	s.t.Helper()
	code, out, stderr := s.dlqCLI(append([]string{"dlq", "redrive", "-c", s.cfg, "--sink", sink, "--output", "json"}, args...)...)
	if code != 0 {
		s.t.Fatalf("dlq redrive %v: exit %d\n%s%s", args, code, out, stderr)
	}
	var sum redriveSummary
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		s.t.Fatalf("dlq redrive %v: no JSON summary: %v\n%s", args, err, out)
	}
	s.t.Logf("dlq redrive %v: %+v", args, sum)
	return sum
}

// redriveCommittedAtEnd reports whether the sink's redrive group has
// committed the end offsets of its DLQ topic.
func (s *scenario) redriveCommittedAtEnd(sink string) (bool, string) {
	topic, group := s.topic+"."+sink+".dlq", s.prefix+sink+".redrive"
	adm := admin(s.t)
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		return false, err.Error()
	}
	com, err := adm.FetchOffsets(context.Background(), group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return false, err.Error()
	}
	var diff []string
	for _, o := range ends[topic] {
		if c, ok := com.Lookup(topic, o.Partition); o.Offset > 0 && (!ok || c.At != o.Offset) {
			diff = append(diff, fmt.Sprintf("p%d committed %d end %d", o.Partition, c.At, o.Offset))
		}
	}
	return len(diff) == 0, strings.Join(diff, ", ")
}

// dlqScenario runs two sinks until every event is delivered or, for profile,
// dead-lettered: profile's API answers 400 to the events of bad while
// broken is set; analytics' API takes everything.
func dlqScenario(t *testing.T, name string, n, every int) (s *scenario, bad map[string]bool, profile, analytics *target, broken *atomic.Bool) {
	s = newScenario(t, name, n)
	bad = map[string]bool{}
	for i, id := range s.ids {
		if i%every == every/3 {
			bad[id] = true
		}
	}
	broken = &atomic.Bool{}
	broken.Store(true)
	profile = newTarget(t, 0, func(key string, _ int) int {
		if bad[key] && broken.Load() {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	analytics = newTarget(t, 0, nil)
	s.writeConfig(
		sinkSpec{name: "profile", target: profile, extra: "ordering: unordered"},
		sinkSpec{name: "analytics", target: analytics, extra: "ordering: key"},
	)
	s.emitAll()
	p := s.start()
	var good []string
	for _, id := range s.ids {
		if !bad[id] {
			good = append(good, id)
		}
	}
	s.waitDone(3*time.Minute, map[string]*target{"profile": profile, "analytics": analytics},
		map[string][]string{"profile": good, "analytics": s.ids})
	p.term(t)
	checkAccepted(t, "analytics", analytics, s.ids, 0)
	return s, bad, profile, analytics, broken
}

func TestDLQRedriveAfterTheAPIIsFixed(t *testing.T) {
	s, bad, profile, analytics, broken := dlqScenario(t, "redrive", 2000, 40)

	// The DLQ holds exactly the events the API refused.
	listed := map[string]bool{}
	for _, d := range s.dlqList("profile") {
		if listed[d.EventID] {
			t.Errorf("event %s listed twice", d.EventID)
		}
		listed[d.EventID] = true
		if !bad[d.EventID] || d.Class != "permanent" || d.Status != 400 || d.RedriveCount != 0 || d.Sink != "profile" || d.OriginalTopic != s.topic {
			t.Errorf("listed %+v", d)
		}
	}
	if len(listed) != len(bad) {
		t.Errorf("dlq list shows %d events, want the %d refused ones", len(listed), len(bad))
	}
	if code, out, _ := s.dlqCLI("dlq", "list", "-c", s.cfg, "--sink", "analytics"); code != 0 || !strings.Contains(out, "no dead letters in") {
		t.Errorf("analytics DLQ: exit %d\n%s", code, out)
	}

	// fanout status: both groups caught up (and, with fanout stopped, empty),
	// nothing owed in a tier, the refused events parked in profile's DLQ.
	code, out, stderr := s.dlqCLI("status", "-c", s.cfg, "--output", "json")
	var st struct {
		Rows []struct {
			Sink, Role, Group string
			State             string `json:"group_state"`
			Members           int
			Lag               int64
			Missing           bool `json:"topic_missing"`
		}
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("status: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	if len(st.Rows) != 2*5 { // main, 3 tiers, dlq per sink
		t.Errorf("status has %d rows, want 10: %+v", len(st.Rows), st.Rows)
	}
	for _, r := range st.Rows {
		want := int64(0)
		if r.Sink == "profile" && r.Role == "dlq" {
			want = int64(len(bad))
		}
		if r.Lag != want || r.Missing || (r.Role != "dlq" && (r.State != "Empty" || r.Members != 0 || r.Group == "")) {
			t.Errorf("status row %+v: want lag %d, an existing topic and, for a group, Empty with no members", r, want)
		}
	}
	if code, out, _ := s.dlqCLI("status", "-c", s.cfg, "--sinks", "profile"); code != 0 || !strings.Contains(out, fmt.Sprintf("%d parked", len(bad))) || strings.Contains(out, "analytics") {
		t.Errorf("status --sinks profile: exit %d\n%s", code, out)
	}

	// The API is fixed: a redrive delivers every dead letter, once, to profile only.
	broken.Store(false)
	analyticsRequests := analytics.requests.Load()
	sum := s.redrive("profile")
	if want := (redriveSummary{Examined: len(bad), Selected: len(bad), Delivered: len(bad)}); sum != want {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	checkAccepted(t, "profile", profile, s.ids, 0)
	if n := analytics.requests.Load(); n != analyticsRequests {
		t.Errorf("analytics got %d requests from a profile redrive", n-analyticsRequests)
	}
	if ok, why := s.redriveCommittedAtEnd("profile"); !ok {
		t.Errorf("redrive group not at the DLQ's end: %s", why)
	}
	// What arrived is the event as emitted: golden body, the producer's trace.
	traceOf := map[string]string{}
	for _, r := range readTopic(t, s.topic) {
		traceOf[header(r, "event-id")] = traceID(header(r, "traceparent"))
	}
	profile.mu.Lock()
	for id := range bad {
		if !bytes.Equal(profile.bodies[id], s.bodies[id]) {
			t.Errorf("redriven %s arrived with body %s, want %s", id, profile.bodies[id], s.bodies[id])
		}
		if tr := traceID(profile.traces[id]); tr == "" || tr != traceOf[id] {
			t.Errorf("redriven %s arrived with trace %q, emitted with %q", id, tr, traceOf[id])
		}
	}
	profile.mu.Unlock()

	// Again: nothing parked since. From the start: dedupe knows them all.
	requests := profile.requests.Load()
	code, out, stderr = s.dlqCLI("dlq", "redrive", "-c", s.cfg, "--sink", "profile")
	if code != 0 || !strings.Contains(out, "no dead letters parked since the last redrive") {
		t.Errorf("second redrive: exit %d\n%s%s", code, out, stderr)
	}
	sum = s.redrive("profile", "--from-start")
	if want := (redriveSummary{Examined: len(bad), Selected: len(bad), AlreadyDelivered: len(bad)}); sum != want {
		t.Errorf("--from-start summary %+v, want %+v", sum, want)
	}
	if n := profile.requests.Load(); n != requests {
		t.Errorf("profile got %d more requests after the first redrive", n-requests)
	}
	checkAccepted(t, "profile", profile, s.ids, 0)
	checkAccepted(t, "analytics", analytics, s.ids, 0)
}

func TestDLQRedriveWhileStillBrokenParksAgainUpToTheCap(t *testing.T) {
	s, bad, profile, analytics, _ := dlqScenario(t, "reparked", 300, 30)
	dlq := s.topic + ".profile.dlq"
	first := map[string]*kgo.Record{}
	for _, r := range readTopic(t, dlq) {
		first[header(r, "event-id")] = r
	}
	if len(first) != len(bad) {
		t.Fatalf("DLQ holds %d events, want %d", len(first), len(bad))
	}
	requests, analyticsRequests := profile.requests.Load(), analytics.requests.Load()

	sum := s.redrive("profile")
	if want := (redriveSummary{Examined: len(bad), Selected: len(bad), FailedAgain: len(bad)}); sum != want {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	if n := profile.requests.Load() - requests; n != int64(len(bad)) {
		t.Errorf("profile got %d requests, want one per dead letter (%d)", n, len(bad))
	}
	recs := readTopic(t, dlq)
	if len(recs) != 2*len(bad) {
		t.Fatalf("DLQ holds %d records after the redrive, want %d", len(recs), 2*len(bad))
	}
	again := 0
	for _, r := range recs {
		if header(r, "fanout-redrive-count") == "" {
			continue
		}
		again++
		id := header(r, "event-id")
		orig := first[id]
		if orig == nil {
			t.Errorf("parked again: unknown event %q", id)
			continue
		}
		for k, want := range map[string]string{
			"fanout-redrive-count": "1", "fanout-error-class": "permanent", "fanout-http-status": "400",
			"fanout-sink": "profile", "fanout-attempts": "2", // 1 at first + 1 on redrive: attempts add up
			"fanout-original-topic":     header(orig, "fanout-original-topic"),
			"fanout-original-partition": header(orig, "fanout-original-partition"),
			"fanout-original-offset":    header(orig, "fanout-original-offset"),
			"fanout-original-timestamp": header(orig, "fanout-original-timestamp"),
			"traceparent":               header(orig, "traceparent"),
		} {
			if got := header(r, k); got != want {
				t.Errorf("parked again %s: %s = %q, want %q", id, k, got, want)
			}
		}
		if !strings.Contains(header(r, "fanout-error"), "400") || header(r, "fanout-parked-at") <= header(orig, "fanout-parked-at") {
			t.Errorf("parked again %s: error %q, parked at %s (first %s)", id, header(r, "fanout-error"),
				header(r, "fanout-parked-at"), header(orig, "fanout-parked-at"))
		}
		if !bytes.Equal(r.Value, orig.Value) || !bytes.Equal(r.Key, orig.Key) {
			t.Errorf("parked again %s: key or value differ from the dead letter's", id)
		}
	}
	if again != len(bad) {
		t.Errorf("%d records parked again, want %d", again, len(bad))
	}
	counts := map[int]int{}
	for _, d := range s.dlqList("profile") {
		counts[d.RedriveCount]++
	}
	if counts[0] != len(bad) || counts[1] != len(bad) {
		t.Errorf("dlq list redrive counts %v", counts)
	}

	// Once redriven is the cap: the next run sends nothing and parks nothing.
	requests = profile.requests.Load()
	sum = s.redrive("profile", "--max-redrives", "1")
	if want := (redriveSummary{Examined: len(bad), Selected: len(bad), CapReached: len(bad)}); sum != want {
		t.Errorf("capped summary %+v, want %+v", sum, want)
	}
	if n := profile.requests.Load(); n != requests {
		t.Errorf("capped letters were sent: %d requests", n-requests)
	}
	if n := len(readTopic(t, dlq)); n != 2*len(bad) {
		t.Errorf("DLQ holds %d records after the capped run, want %d", n, 2*len(bad))
	}
	// From the start: each first copy is superseded by its copy parked
	// again, which is at the cap.
	sum = s.redrive("profile", "--from-start", "--max-redrives", "1")
	if want := (redriveSummary{Examined: 2 * len(bad), Selected: len(bad), CapReached: len(bad), Superseded: len(bad)}); sum != want {
		t.Errorf("--from-start summary %+v, want %+v", sum, want)
	}
	if n := profile.requests.Load(); n != requests {
		t.Errorf("capped or superseded letters were sent: %d requests", n-requests)
	}
	if n := analytics.requests.Load(); n != analyticsRequests {
		t.Errorf("analytics got %d requests from profile redrives", n-analyticsRequests)
	}
}
