package consumer

import "github.com/twmb/franz-go/pkg/kgo"

// tracker is one partition's commit watermark. Records are added in offset order
// (the order franz-go returns them within a partition) and finished in any
// order; the committable offset is one past the longest finished prefix.
//
// Offsets may have gaps (compaction, transaction markers): the watermark moves
// over the offsets actually seen, never over an offset it has not been given.
type tracker struct {
	pending []slot // offsets added and not yet below the watermark, ascending
	head    int    // index of the first live slot in pending
	commit  kgo.EpochOffset
	dirty   bool // commit moved since the last take
}

type slot struct {
	offset int64
	epoch  int32
	done   bool
}

func newTracker() *tracker { return &tracker{commit: kgo.EpochOffset{Epoch: -1, Offset: -1}} }

// add registers a fetched record. It reports false for an offset at or below one
// already added: a stale record from before a rebalance must not be processed.
func (t *tracker) add(offset int64, epoch int32) bool {
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
func (t *tracker) finish(offset int64) {
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
	if lo == len(t.pending) || t.pending[lo].offset != offset {
		return
	}
	t.pending[lo].done = true
	for t.head < len(t.pending) && t.pending[t.head].done {
		s := t.pending[t.head]
		t.commit = kgo.EpochOffset{Epoch: s.epoch, Offset: s.offset + 1}
		t.dirty = true
		t.head++
	}
	// Compact once the dead prefix dominates, so memory follows what is live.
	if t.head > 64 && t.head*2 > len(t.pending) {
		n := copy(t.pending, t.pending[t.head:])
		t.pending = t.pending[:n]
		t.head = 0
	}
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
