package consumer

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Range mode (Config.Range): the consumer reads fixed partitions between a
// start and an end offset with no group membership, as franz-go's
// ConsumePartitions does next to ConsumeTopics on the same client type. The
// partitions are "assigned" once, when Run starts, and never revoked; each
// has a range tracker (tracker.go). Records flow through the same accept,
// ordering lanes, workers, parking and drain as in group mode; what differs
// is only where a partition starts, that it ends, and where progress goes
// (Config.Commit instead of a group commit).

// Span is one partition of a range: the offsets [Pos, End), of which an
// earlier run already finished Done (ascending, each in [Pos, End)); those are
// not handled again.
type Span struct {
	Pos, End int64
	Done     []int64
}

// Progress is one partition of a range as far as it got: every offset below
// Offset is done (or does not exist), and so are DoneAhead (ascending,
// including the Span's Done not reached yet). Remaining counts the offsets of
// [Offset, End) not done.
type Progress struct {
	Offset    int64
	DoneAhead []int64
	Remaining int64
}

// rangeOpts are a range consumer's own options: the partitions still to do,
// from their start, read committed with the transaction markers kept (so a
// range that ends on a marker ends), resuming at the log start if
// retention took a range's start meanwhile.
func (c *Consumer) rangeOpts() []kgo.Opt {
	at := map[int32]kgo.Offset{}
	for id, sp := range c.cfg.Range {
		if sp.Pos < sp.End {
			at[id] = kgo.NewOffset().At(sp.Pos)
		}
	}
	return []kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.cfg.Topic: at}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.WithLogger(resetWatch{c}),
	}
}

// startRange sets up the range's partitions; end stops the poll once every
// one is done (at once if none has anything to do).
func (c *Consumer) startRange(work context.Context, end context.CancelFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rangeDone = end
	for id, sp := range c.cfg.Range {
		ctx, cancel := context.WithCancel(work)
		p := &partition{id: id, ctx: ctx, cancel: cancel, tr: newRangeTracker(sp.Pos, sp.End, sp.Done),
			lanes: map[string]*lane{}, waiting: map[*waiter]struct{}{}}
		c.parts[id] = p
		if p.tr.complete() {
			p.done = true
		} else {
			c.rangeLeft++
		}
	}
	if c.rangeLeft == 0 {
		end()
	}
}

// settled notes a range partition whose watermark reached its end: its
// fetching is paused for good, and the poll ends with the last one. c.mu is
// held.
func (c *Consumer) settled(p *partition) {
	if p.done || !p.tr.complete() {
		return
	}
	p.done = true
	c.hold(p.id)
	if c.rangeLeft--; c.rangeLeft == 0 {
		c.rangeDone()
	}
}

// Progress returns each range partition's progress now (nil outside range
// mode).
func (c *Consumer) Progress() map[int32]Progress {
	if c.cfg.Range == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.progressLocked()
}

// Remaining is the offsets of the range not done yet, over every partition
// (0 outside range mode): 0 once the range is complete.
func (c *Consumer) Remaining() int64 {
	var n int64
	for _, pr := range c.Progress() {
		n += pr.Remaining
	}
	return n
}

func (c *Consumer) progressLocked() map[int32]Progress {
	out := make(map[int32]Progress, len(c.cfg.Range))
	for id, sp := range c.cfg.Range {
		if p := c.parts[id]; p != nil {
			out[id] = Progress{Offset: p.tr.commit.Offset, DoneAhead: p.tr.doneAhead(), Remaining: p.tr.remaining()}
		} else { // before Run
			t := newRangeTracker(sp.Pos, sp.End, sp.Done)
			out[id] = Progress{Offset: t.commit.Offset, DoneAhead: t.doneAhead(), Remaining: t.remaining()}
		}
	}
	return out
}

// commitRange hands the range's progress to Config.Commit if any partition
// moved since the last commit; a failed commit is tried again next time.
func (c *Consumer) commitRange(ctx context.Context) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.mu.Lock()
	moved := false
	for _, p := range c.parts {
		if _, ok := p.tr.take(); ok {
			moved = true
		}
	}
	if !moved {
		c.mu.Unlock()
		return nil
	}
	progress := c.progressLocked()
	c.mu.Unlock()
	if err := c.cfg.Commit(ctx, progress); err != nil {
		c.mu.Lock()
		for _, p := range c.parts {
			p.tr.dirty = true
		}
		c.mu.Unlock()
		return err
	}
	c.commits.Add(1)
	return nil
}
