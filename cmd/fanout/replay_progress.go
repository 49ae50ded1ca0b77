package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// replayTracker is one partition's progress in a replay. Like the consumer's
// commit watermark, pos is one past the longest done prefix of the range: the
// committed offset of the replay's group. Records are added in offset order
// and finished in any order; offsets the reader never sees (compaction,
// retention) are passed over, never assumed done.
//
// Unlike the consumer, a replay also remembers which records past pos are
// done (doneAhead, written into the commit metadata), so an interrupted
// replay resumed later does not send them a second time.
type replayTracker struct {
	from, end int64   // the range: [from, end)
	pos       int64   // every offset in [from, pos) is done or does not exist
	pending   []rslot // offsets added and not yet below pos, ascending
	head      int     // index of the first slot at or past pos
	prior     []int64 // done past pos by an earlier run (resume), ascending; read, never changed
	closed    bool    // the reader has added every record of the range it will add
}

type rslot struct {
	offset int64
	done   bool
}

func newReplayTracker(from, end, pos int64, prior []int64) *replayTracker {
	t := &replayTracker{from: from, end: end, pos: pos, prior: prior}
	if pos >= end {
		t.pos, t.closed = end, true
	}
	return t
}

// add registers a record taken from the topic. It refuses an offset below pos
// or at or below one already added.
func (t *replayTracker) add(offset int64) bool {
	if t.closed || offset < t.pos || offset >= t.end {
		return false
	}
	if n := len(t.pending); n > t.head && t.pending[n-1].offset >= offset {
		return false
	}
	t.pending = append(t.pending, rslot{offset: offset})
	return true
}

// priorDone reports whether an earlier run of this replay finished offset.
func (t *replayTracker) priorDone(offset int64) bool {
	_, ok := slices.BinarySearch(t.prior, offset)
	return ok
}

// finish marks offset done and moves pos over the done prefix. It returns how
// many added records passed below pos (the caller's window tokens to release).
func (t *replayTracker) finish(offset int64) int {
	lo, hi := t.head, len(t.pending)
	for lo < hi {
		m := (lo + hi) / 2
		if t.pending[m].offset < offset {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(t.pending) || t.pending[lo].offset != offset || t.pending[lo].done {
		return 0
	}
	t.pending[lo].done = true
	n := 0
	for t.head < len(t.pending) && t.pending[t.head].done {
		t.pos = t.pending[t.head].offset + 1
		t.head++
		n++
	}
	t.settle()
	if t.head > 64 && t.head*2 > len(t.pending) {
		k := copy(t.pending, t.pending[t.head:])
		t.pending = t.pending[:k]
		t.head = 0
	}
	return n
}

// close says the reader has added every record it will: offsets between the
// last one added and end do not exist (a gap at the end of the range), so pos
// may reach end once the added ones are done.
func (t *replayTracker) close() {
	t.closed = true
	t.settle()
}

func (t *replayTracker) settle() {
	if t.closed && t.head == len(t.pending) {
		t.pos = t.end
	}
}

// complete reports whether the whole range is done.
func (t *replayTracker) complete() bool { return t.pos >= t.end }

// doneAhead lists the offsets at or past pos that are done: finished records
// past a gap in the prefix, and those an earlier run finished that this run
// has not reached yet.
func (t *replayTracker) doneAhead() []int64 {
	var out []int64
	last := t.pos - 1
	for _, s := range t.pending[t.head:] {
		if s.done || t.priorDone(s.offset) {
			out = append(out, s.offset)
		}
		last = s.offset
	}
	if t.pos >= t.end {
		return nil
	}
	for _, o := range t.prior {
		if o > last && o >= t.pos {
			out = append(out, o)
		}
	}
	return out
}

// remaining is the number of offsets of the range not done yet.
func (t *replayTracker) remaining() int64 {
	if t.pos >= t.end {
		return 0
	}
	return t.end - t.pos - int64(len(t.doneAhead()))
}

// Commit metadata. Each partition of a replay's group carries, next to its
// committed offset (pos), the range and the done records past pos:
//
//	fanout-replay/1 from=100 end=300 dedupe=bypass done=+2-9,+12
//
// done lists offsets relative to pos, as single offsets or inclusive runs.
// Kafka keeps at most offset.metadata.max.bytes (default 4096) per partition,
// so done is cut at maxDoneBytes; the offsets cut are sent again on resume.
const (
	replayMetaVersion = "fanout-replay/1"
	maxDoneBytes      = 3000
)

// replayMeta is what a replay stores per partition besides the offset.
type replayMeta struct {
	from, end int64
	mode      string  // respect or bypass
	done      []int64 // absolute offsets past pos, ascending
}

// encode renders m for a commit at pos. cut reports how many done offsets did
// not fit.
func (m replayMeta) encode(pos int64) (s string, cut int) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s from=%d end=%d dedupe=%s", replayMetaVersion, m.from, m.end, m.mode)
	if len(m.done) == 0 {
		return b.String(), 0
	}
	b.WriteString(" done=")
	start := b.Len()
	for i := 0; i < len(m.done); {
		j := i
		for j+1 < len(m.done) && m.done[j+1] == m.done[j]+1 {
			j++
		}
		tok := "+" + strconv.FormatInt(m.done[i]-pos, 10)
		if j > i {
			tok += "-" + strconv.FormatInt(m.done[j]-pos, 10)
		}
		if b.Len()-start+len(tok)+1 > maxDoneBytes {
			return b.String(), len(m.done) - i
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(tok)
		i = j + 1
	}
	return b.String(), 0
}

// parseReplayMeta reads metadata committed at pos.
func parseReplayMeta(s string, pos int64) (replayMeta, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 || fields[0] != replayMetaVersion {
		return replayMeta{}, fmt.Errorf("not a fanout replay's progress (metadata %q)", shorten(s, 40))
	}
	m := replayMeta{from: -1, end: -1}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "from":
			m.from, err = strconv.ParseInt(v, 10, 64)
		case "end":
			m.end, err = strconv.ParseInt(v, 10, 64)
		case "dedupe":
			if v != modeRespect && v != modeBypass {
				err = fmt.Errorf("unknown mode")
			}
			m.mode = v
		case "done":
			m.done, err = parseDone(v, pos)
		}
		if err != nil {
			return replayMeta{}, fmt.Errorf("bad %s in replay metadata %q: %v", k, shorten(s, 60), err)
		}
	}
	switch {
	case m.from < 0 || m.end < m.from || m.mode == "":
		return replayMeta{}, fmt.Errorf("incomplete replay metadata %q", shorten(s, 60))
	case pos < m.from || pos > m.end:
		return replayMeta{}, fmt.Errorf("committed offset %d outside the stored range [%d, %d)", pos, m.from, m.end)
	}
	for _, o := range m.done {
		if o >= m.end {
			return replayMeta{}, fmt.Errorf("done offset %d past the stored end %d", o, m.end)
		}
	}
	return m, nil
}

func parseDone(v string, pos int64) ([]int64, error) {
	var out []int64
	for _, tok := range strings.Split(v, ",") {
		a, b, isRun := strings.Cut(strings.TrimPrefix(tok, "+"), "-")
		lo, err := strconv.ParseInt(a, 10, 64)
		if err != nil || !strings.HasPrefix(tok, "+") {
			return nil, fmt.Errorf("%q is not +N or +N-M", tok)
		}
		hi := lo
		if isRun {
			if hi, err = strconv.ParseInt(b, 10, 64); err != nil || hi < lo {
				return nil, fmt.Errorf("%q is not +N-M with N <= M", tok)
			}
		}
		if lo < 1 || hi-lo > 1<<20 || (len(out) > 0 && pos+lo <= out[len(out)-1]) {
			return nil, fmt.Errorf("%q is out of order", tok)
		}
		for o := lo; o <= hi; o++ {
			out = append(out, pos+o)
		}
	}
	return out, nil
}
