package consumer

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
)

// tracker is one partition's commit watermark. Records are added in offset order
// (the order franz-go returns them within a partition) and finished in any
// order; the committable offset is one past the longest finished prefix.
//
// Offsets may have gaps (compaction, transaction markers): the watermark moves
// over the offsets actually seen, never over an offset it has not been given.
//
// A range tracker (newRangeTracker, Config.Range) also has an end: it refuses
// offsets at or past it, and once closed (the reader has seen the end) the
// watermark reaches the end when every added record is done. It remembers
// the records done past the watermark (doneAhead), including those an
// earlier run finished (prior), so a resumed range sends none of them again.
type tracker struct {
	pending []slot // offsets added and not yet below the watermark, ascending
	head    int    // index of the first live slot in pending
	commit  kgo.EpochOffset
	dirty   bool // commit (or, in a range, a done record past it) moved since the last take

	bounded bool    // a range tracker
	end     int64   // a range's exclusive end
	prior   []int64 // done past the start by an earlier run, ascending; read, never changed
	closed  bool    // a range's reader has added every record it will add
}

type slot struct {
	offset int64
	epoch  int32
	done   bool
}

func newTracker() *tracker { return &tracker{commit: kgo.EpochOffset{Epoch: -1, Offset: -1}} }

// newRangeTracker tracks the offsets [pos, end) of a range of which an earlier
// run finished everything below pos and the offsets prior.
func newRangeTracker(pos, end int64, prior []int64) *tracker {
	t := &tracker{commit: kgo.EpochOffset{Epoch: -1, Offset: pos}, bounded: true, end: end, prior: prior}
	if pos >= end {
		t.commit.Offset, t.closed = end, true
	}
	return t
}

// add registers a fetched record. It reports false for an offset at or below one
// already added: a stale record from before a rebalance must not be processed.
// A range tracker also refuses offsets at or past its end, and all once closed.
func (t *tracker) add(offset int64, epoch int32) bool {
	if t.bounded && (t.closed || offset >= t.end) {
		return false
	}
	if n := len(t.pending); n > t.head && t.pending[n-1].offset >= offset {
		return false
	}
	if t.commit.Offset >= 0 && offset < t.commit.Offset {
		return false
	}
	t.pending = append(t.pending, slot{offset: offset, epoch: epoch})
	return true
}

// finish marks offset done and advances the watermark over the done prefix.
// It returns how many added records passed below the watermark.
func (t *tracker) finish(offset int64) int {
	// Binary search: pending is ascending.
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
	if t.bounded {
		t.dirty = true // the records done past the watermark changed
	}
	n := 0
	for t.head < len(t.pending) && t.pending[t.head].done {
		s := t.pending[t.head]
		t.commit = kgo.EpochOffset{Epoch: s.epoch, Offset: s.offset + 1}
		t.dirty = true
		t.head++
		n++
	}
	t.settle()
	// Compact once the dead prefix dominates, so memory follows what is live.
	if t.head > 64 && t.head*2 > len(t.pending) {
		k := copy(t.pending, t.pending[t.head:])
		t.pending = t.pending[:k]
		t.head = 0
	}
	return n
}

// close says a range's reader has added every record it will: offsets between
// the last one added and the end do not exist (a gap at the end of the
// range), so the watermark may reach the end once the added ones are done.
func (t *tracker) close() {
	t.closed = true
	t.settle()
}

func (t *tracker) settle() {
	if t.bounded && t.closed && t.head == len(t.pending) && t.commit.Offset < t.end {
		t.commit.Offset = t.end
		t.dirty = true
	}
}

// complete reports whether a range tracker's whole range is done.
func (t *tracker) complete() bool { return t.bounded && t.commit.Offset >= t.end }

// priorDone reports whether an earlier run of a range finished offset.
func (t *tracker) priorDone(offset int64) bool {
	_, ok := slices.BinarySearch(t.prior, offset)
	return ok
}

// doneAhead lists a range's offsets at or past the watermark that are done:
// finished records past a gap in the prefix, and those an earlier run
// finished that this run has not reached yet.
func (t *tracker) doneAhead() []int64 {
	pos := t.commit.Offset
	if t.complete() {
		return nil
	}
	var out []int64
	last := pos - 1
	for _, s := range t.pending[t.head:] {
		if s.done || t.priorDone(s.offset) {
			out = append(out, s.offset)
		}
		last = s.offset
	}
	for _, o := range t.prior {
		if o > last && o >= pos {
			out = append(out, o)
		}
	}
	return out
}

// remaining is the number of a range's offsets not done yet.
func (t *tracker) remaining() int64 {
	if t.complete() {
		return 0
	}
	return t.end - t.commit.Offset - int64(len(t.doneAhead()))
}

// inflight is the number of records added and not yet below the watermark.
func (t *tracker) inflight() int { return len(t.pending) - t.head }

// take returns the commit offset if it moved since the last take.
func (t *tracker) take() (kgo.EpochOffset, bool) {
	if !t.dirty {
		return kgo.EpochOffset{}, false
	}
	t.dirty = false
	return t.commit, true
}
