package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fanout-dev/fanout/replay"
)

// On a terminal the bar is redrawn in place and log lines clear it first and
// redraw it after; without one, a plain line every N records.
func TestReplayDisplay(t *testing.T) {
	var tty bytes.Buffer
	d := &replayDisplay{w: &tty, tty: true, id: "0a1b2c3d", sink: "email", every: 1000}
	now := time.Now()
	d.update(replay.Progress{Total: 200, Done: 50, Sent: 50, Delivered: 48, Failed: 2}, now)
	d.update(replay.Progress{Total: 200, Done: 100, Sent: 100, Delivered: 97, Failed: 3}, now.Add(time.Second))
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
	if n := utf8.RuneCountInString(renderBar("0a1b2c3d", replay.Progress{Total: 1 << 40, Done: 1 << 39, Sent: 1 << 39, Delivered: 1 << 39}, 1e6)); n > 79 {
		t.Errorf("the bar is %d columns wide", n)
	}

	var plain bytes.Buffer
	d = &replayDisplay{w: &plain, id: "0a1b2c3d", sink: "email", every: 10, at: now}
	for i := range 25 {
		d.update(replay.Progress{Total: 25, Done: int64(i + 1), Sent: int64(i + 1), Delivered: int64(i + 1)}, now.Add(time.Duration(i)*time.Millisecond))
	}
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "replay 0a1b2c3d to email: 20/25 offsets done (80%), 20 sent: 20 delivered") {
		t.Errorf("plain lines:\n%s", plain.String())
	}
	d.update(replay.Progress{Total: 25, Done: 21, Sent: 21}, now.Add(11*time.Second)) // 10s passed: a line though not 10 records
	if n := strings.Count(plain.String(), "\n"); n != 3 {
		t.Errorf("%d plain lines after 10s, want 3", n)
	}
}
