package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestReplayMetaRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		pos  int64
		m    replayMeta
		want string
	}{
		{"nothing ahead", 100, replayMeta{from: 100, end: 300, mode: modeBypass}, "fanout-replay/1 from=100 end=300 dedupe=bypass"},
		{"runs and singles", 110, replayMeta{from: 100, end: 300, mode: modeRespect, done: []int64{112, 113, 114, 117, 120, 121}},
			"fanout-replay/1 from=100 end=300 dedupe=respect done=+2-4,+7,+10-11"},
		{"at the end", 300, replayMeta{from: 100, end: 300, mode: modeRespect}, "fanout-replay/1 from=100 end=300 dedupe=respect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, cut := tc.m.encode(tc.pos)
			if s != tc.want || cut != 0 {
				t.Fatalf("encode = %q (cut %d), want %q", s, cut, tc.want)
			}
			back, err := parseReplayMeta(s, tc.pos)
			if err != nil {
				t.Fatal(err)
			}
			if back.from != tc.m.from || back.end != tc.m.end || back.mode != tc.m.mode || !slices.Equal(back.done, tc.m.done) {
				t.Fatalf("parsed %+v, want %+v", back, tc.m)
			}
		})
	}
}

// Metadata past the budget is cut: what is cut is only sent again, never
// marked done by mistake.
func TestReplayMetaCut(t *testing.T) {
	m := replayMeta{from: 0, end: 1 << 20, mode: modeBypass}
	for o := int64(2); o < 4000; o += 2 { // every other offset: no runs
		m.done = append(m.done, o)
	}
	s, cut := m.encode(1)
	if cut == 0 || len(s) > maxDoneBytes+100 {
		t.Fatalf("%d bytes, cut %d", len(s), cut)
	}
	back, err := parseReplayMeta(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.done)+cut != len(m.done) || !slices.Equal(back.done, m.done[:len(back.done)]) {
		t.Fatalf("kept %d + cut %d of %d, or not a prefix", len(back.done), cut, len(m.done))
	}
}

func TestReplayMetaRejects(t *testing.T) {
	for _, tc := range []struct{ meta, want string }{
		{"", "not a fanout replay"},
		{"something else", "not a fanout replay"},
		{"fanout-replay/1 from=1 end=0 dedupe=bypass", "incomplete"},
		{"fanout-replay/1 from=0 end=10", "incomplete"},
		{"fanout-replay/1 from=0 end=10 dedupe=maybe", "bad dedupe"},
		{"fanout-replay/1 from=0 end=4 dedupe=bypass", "outside the stored range"}, // committed at 5
		{"fanout-replay/1 from=0 end=10 dedupe=bypass done=+3,+2", "out of order"},
		{"fanout-replay/1 from=0 end=10 dedupe=bypass done=+0", "out of order"},
		{"fanout-replay/1 from=0 end=10 dedupe=bypass done=+2-9", "past the stored end"},
		{"fanout-replay/1 from=0 end=10 dedupe=bypass done=3", "not +N"},
	} {
		_, err := parseReplayMeta(tc.meta, 5)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.meta, err, tc.want)
		}
	}
}

func TestReplayFlagParsing(t *testing.T) {
	for _, tc := range []struct {
		name                                       string
		fromOffset, fromTime, toOffset, toTime, ps string
		want                                       string // "" = ok
	}{
		{name: "offsets", fromOffset: "0:100,2:5", toOffset: "0:300"},
		{name: "times", fromTime: "2h", toTime: "2026-11-27T11:00:00Z"},
		{name: "no start", want: "give where the replay starts"},
		{name: "two starts", fromOffset: "0:1", fromTime: "1h", want: "not both"},
		{name: "two ends", fromOffset: "0:1", toOffset: "0:5", toTime: "1h", want: "not both"},
		{name: "bad pair", fromOffset: "0-100", want: `"0-100" is not partition:offset`},
		{name: "negative", fromOffset: "0:-1", want: "not partition:offset"},
		{name: "twice", fromOffset: "0:1,0:2", want: "partition 0 given twice"},
		{name: "end before start", fromOffset: "0:300", toOffset: "0:100", want: "--to-offset 100 is before --from-offset 300"},
		{name: "bad time", fromTime: "yesterday", want: "--from-time"},
		{name: "times reversed", fromTime: "1h", toTime: "2h", want: "is not before --to-time"},
		{name: "partition without start", fromOffset: "0:1", ps: "0,1", want: "--partition 1 has no start"},
		{name: "start outside partitions", fromOffset: "0:1,1:1", ps: "0", want: "--partition leaves out"},
		{name: "bad partition", fromTime: "1h", ps: "x", want: "not a partition number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newReplaySpec(tc.fromOffset, tc.fromTime, tc.toOffset, tc.toTime, tc.ps, dlqNow)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			case err != nil:
				if _, ok := err.(usageError); !ok {
					t.Fatalf("%T is not a usage error", err)
				}
			}
		})
	}
}

// On a terminal the bar is redrawn in place and log lines clear it first and
// redraw it after; without one, a plain line every N records.
func TestReplayDisplay(t *testing.T) {
	var tty bytes.Buffer
	d := &replayDisplay{w: &tty, tty: true, id: "0a1b2c3d", sink: "email", every: 1000}
	now := time.Now()
	d.update(replayProgress{total: 200, done: 50, sent: 50, delivered: 48, failed: 2}, now)
	d.update(replayProgress{total: 200, done: 100, sent: 100, delivered: 97, failed: 3}, now.Add(time.Second))
	barWriter{d}.Write([]byte("level=WARN msg=x\n"))
	got := tty.String()
	for _, want := range []string{
		"\r0a1b2c3d ███░░░░░░░░░  25% 50/200 · 0/s · ETA ? · delivered 48 · dlq 2\x1b[K",
		"\r0a1b2c3d ██████░░░░░░  50% 100/200 · 50/s · ETA 2s · delivered 97 · dlq 3\x1b[K",
		"\r\x1b[Klevel=WARN msg=x\n0a1b2c3d ██████",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, got)
		}
	}
	if strings.Count(got, "\n") != 1 {
		t.Errorf("the bar wrote newlines: %q", got)
	}
	if n := utf8.RuneCountInString(renderBar("0a1b2c3d", replayProgress{total: 1 << 40, done: 1 << 39, sent: 1 << 39, delivered: 1 << 39}, 1e6)); n > 79 {
		t.Errorf("the bar is %d columns wide", n)
	}

	var plain bytes.Buffer
	d = &replayDisplay{w: &plain, id: "0a1b2c3d", sink: "email", every: 10, at: now}
	for i := range 25 {
		d.update(replayProgress{total: 25, done: int64(i + 1), sent: int64(i + 1), delivered: int64(i + 1)}, now.Add(time.Duration(i)*time.Millisecond))
	}
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "replay 0a1b2c3d to email: 20/25 offsets done (80%), 20 sent: 20 delivered") {
		t.Errorf("plain lines:\n%s", plain.String())
	}
	d.update(replayProgress{total: 25, done: 21, sent: 21}, now.Add(11*time.Second)) // 10s passed: a line though not 10 records
	if n := strings.Count(plain.String(), "\n"); n != 3 {
		t.Errorf("%d plain lines after 10s, want 3", n)
	}
}

func TestReplayETA(t *testing.T) {
	for _, tc := range []struct {
		p    replayProgress
		rate float64
		want string
	}{
		{replayProgress{total: 100, done: 40}, 20, "3s"},
		{replayProgress{total: 100, done: 40}, 0, "?"},
		{replayProgress{total: 100, done: 100}, 0, "0s"},
		{replayProgress{total: 100000, done: 0}, 10, "2h46m40s"},
	} {
		if got := eta(tc.p, tc.rate); got != tc.want {
			t.Errorf("eta(%+v, %v) = %s, want %s", tc.p, tc.rate, got, tc.want)
		}
	}
}
