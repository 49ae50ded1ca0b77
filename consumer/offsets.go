package consumer

import (
	"context"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Offsets out of range. Start (ConsumeStartOffset) places only partitions
// without a commit; every OffsetOutOfRange resumes at the log start
// (ConsumeResetOffset). Two places see a reset: checkCommitted at assignment
// (a commit below the log start) and resetWatch while consuming (the fetch
// position fell below the log start: retention overtook a slow partition).

// checkCommitted runs after the group's committed offsets are fetched and
// before fetching starts: a committed offset below its partition's log start
// means retention (or DeleteRecords) took records this group never finished.
// franz-go resumes such a partition at the log start (ConsumeResetOffset);
// this says so, with how many offsets were taken. It never fails the session:
// a failed check only loses the warning.
func (c *Consumer) checkCommitted(ctx context.Context, cl *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
	committed := map[int32]int64{}
	add := func(topic string, partition int32, offset int64) {
		if topic == c.cfg.Topic && offset >= 0 {
			committed[partition] = offset
		}
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			add(t.Topic, p.Partition, p.Offset)
		}
	}
	for _, g := range resp.Groups { // OffsetFetch v8+ answers per group
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				add(t.Topic, p.Partition, p.Offset)
			}
		}
	}
	if len(committed) == 0 {
		return nil
	}
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, c.cfg.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		c.log.Warn("could not check committed offsets against the log start", "topic", c.cfg.Topic, "err", err)
		return nil
	}
	starts.Each(func(o kadm.ListedOffset) {
		if at, ok := committed[o.Partition]; ok && at < o.Offset {
			c.resets.Add(1)
			c.log.Warn("committed offset is below the log start: retention took records this group never finished; resuming at the log start",
				"topic", c.cfg.Topic, "partition", o.Partition, "committed", at, "log_start", o.Offset, "offsets_lost", o.Offset-at)
		}
	})
	return nil
}

// resetWatch is the franz-go logger of a consumer. It forwards nothing but
// franz-go's warning that a fetch went out of range while consuming, which
// franz-go answers by resuming at the log start (or, if the broker lost data,
// per ConsumeResetOffset: the log start too); the next record fetched for the
// partition tells how far that was (see noteResumed).
type resetWatch struct{ c *Consumer }

func (w resetWatch) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (w resetWatch) Log(_ kgo.LogLevel, msg string, keyvals ...any) {
	if !strings.HasPrefix(msg, "received OFFSET_OUT_OF_RANGE while consuming") {
		return
	}
	var topic string
	part, prior := int32(-1), int64(-1)
	for i := 0; i+1 < len(keyvals); i += 2 {
		switch keyvals[i] {
		case "topic":
			topic, _ = keyvals[i+1].(string)
		case "partition":
			part, _ = keyvals[i+1].(int32)
		case "prior_offset":
			prior, _ = keyvals[i+1].(int64)
		}
	}
	if topic != w.c.cfg.Topic || part < 0 {
		return
	}
	w.c.resetMu.Lock()
	if w.c.outRange == nil {
		w.c.outRange = map[int32]int64{}
	}
	w.c.outRange[part] = prior
	w.c.resetMu.Unlock()
}

// noteResumed reports the first record fetched for a partition after an
// out-of-range while consuming: the offsets between the position franz-go
// had and this record were deleted before fanout fetched them (at most that
// many records: compaction and transaction markers take offsets too). c.mu is
// held.
func (c *Consumer) noteResumed(r *kgo.Record) {
	c.resetMu.Lock()
	prior, ok := c.outRange[r.Partition]
	delete(c.outRange, r.Partition)
	c.resetMu.Unlock()
	if !ok {
		return
	}
	c.resets.Add(1)
	if r.Offset >= prior {
		c.log.Warn("fetch offset fell below the log start while consuming: retention took records this group never fetched; resumed at the log start",
			"topic", c.cfg.Topic, "partition", r.Partition, "fetch_offset", prior, "log_start", r.Offset, "offsets_lost", r.Offset-prior)
	} else {
		c.log.Warn("fetch offset was out of range while consuming and the log restarts below it (the broker lost data); resumed at the log start, records are read again",
			"topic", c.cfg.Topic, "partition", r.Partition, "prior_offset", prior, "resumed_at", r.Offset)
	}
}
