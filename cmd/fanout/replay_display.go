package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/replay"
)

// replayDisplay shows a replay's progress on stderr: on a terminal one line
// redrawn in place (\r) with a bar, counts, rate and ETA; otherwise a plain
// line every `every` records and at least every 10s while something moves.
type replayDisplay struct {
	w        io.Writer
	tty      bool
	id, sink string
	every    int64

	mu      sync.Mutex // serialises writes: the bar and log lines
	line    string     // the bar as drawn, "" if none
	printed int64      // sent at the last plain line
	at      time.Time  // when the last plain line was printed
	rate    replay.Rate
}

func newReplayDisplay(w io.Writer, id, sink string, every int) *replayDisplay {
	return &replayDisplay{w: w, tty: isTerminal(w), id: id, sink: sink, every: int64(every), at: time.Now()}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	if u, ok := w.(interface{ Unwrap() io.Writer }); ok { // the secrets filter on stdout
		w = u.Unwrap()
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// logger returns a logger whose lines clear the bar and redraw it after them,
// so logs and the bar share the terminal without garbling each other.
func (d *replayDisplay) logger() *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("FANOUT_LOG_LEVEL") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(barWriter{d}, &slog.HandlerOptions{Level: level}))
}

type barWriter struct{ d *replayDisplay }

func (b barWriter) Write(p []byte) (int, error) {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if b.d.line != "" {
		io.WriteString(b.d.w, "\r\033[K")
	}
	n, err := b.d.w.Write(p)
	if b.d.line != "" {
		io.WriteString(b.d.w, b.d.line)
	}
	return n, err
}

// Watch updates the display until ctx ends (replay.Watcher).
func (d *replayDisplay) Watch(ctx context.Context, snap func() replay.Progress) {
	app.Every(ctx, 250*time.Millisecond, func() { d.update(snap(), time.Now()) })
}

func (d *replayDisplay) update(p replay.Progress, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rate := d.rate.Add(p.Sent, now)
	if d.tty {
		d.line = renderBar(d.id, p, rate)
		fmt.Fprintf(d.w, "\r%s\033[K", d.line)
		return
	}
	if p.Sent >= d.printed+d.every || (p.Sent != d.printed && now.Sub(d.at) >= 10*time.Second) {
		d.printed, d.at = p.Sent, now
		fmt.Fprintln(d.w, renderLine(d.id, d.sink, p, rate))
	}
}

// Finish shows the last state (a plain line only if one is due) and leaves
// the terminal's line to what follows (replay.Watcher).
func (d *replayDisplay) Finish(p replay.Progress) {
	d.update(p, time.Now())
	if !d.tty {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintln(d.w)
	d.line = ""
}

// renderBar is the terminal line: the ID, the bar, the share done, rate and
// ETA, then the counts (those still zero left out), cut to 79 columns so that
// it never wraps (a wrapped line cannot be redrawn with \r).
func renderBar(id string, p replay.Progress, rate float64) string {
	const width = 12
	filled := int(p.Percent() / 100 * width)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s%s %3.0f%% %d/%d · %.0f/s · ETA %s · delivered %d", id, strings.Repeat("█", filled),
		strings.Repeat("░", width-filled), p.Percent(), p.Done, p.Total, rate, p.ETA(rate), p.Delivered)
	for _, c := range []struct {
		n    int64
		name string
	}{{p.Already, "already"}, {p.Failed, "dlq"}, {p.ByType, "skipped"}} {
		if c.n > 0 {
			fmt.Fprintf(&b, " · %s %d", c.name, c.n)
		}
	}
	line := b.String()
	if r := []rune(line); len(r) > 79 {
		line = string(r[:78]) + "…"
	}
	return line
}

// renderLine is the plain progress line.
func renderLine(id, sink string, p replay.Progress, rate float64) string {
	return fmt.Sprintf("replay %s to %s: %d/%d offsets done (%.0f%%), %d sent: %d delivered, %d already delivered, %d failed→DLQ, %d skipped by type; %.0f/s, ETA %s",
		id, sink, p.Done, p.Total, p.Percent(), p.Sent, p.Delivered, p.Already, p.Failed, p.ByType, rate, p.ETA(rate))
}
