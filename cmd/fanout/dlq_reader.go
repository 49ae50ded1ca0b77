package main

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// dlqRange is a bounded part of a dead-letter topic: per partition the
// offsets [from, end), end being the partition's end offset when the range
// was taken. Reading it never waits for records parked later, so the dlq
// commands end even while a sink keeps parking (or a redrive parks again).
type dlqRange struct {
	topic string
	from  map[int32]int64 // only partitions with from < end
	end   map[int32]int64
}

// errStop ends a read early without error.
var errStop = errors.New("stop reading")

// takeRange lists topic's offsets. Each partition's range starts at its log
// start offset, or at pos[p] if that is further (pos: a consumer group's
// committed offsets; nil for everything).
func takeRange(ctx context.Context, adm *kadm.Client, topic string, pos map[int32]int64) (*dlqRange, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	if o, ok := ends.Lookup(topic, -1); ok && errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
		return nil, fmt.Errorf("dead-letter topic %s does not exist (fanout topics ensure creates it)", topic)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	if err := starts.Error(); err != nil {
		return nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	r := &dlqRange{topic: topic, from: map[int32]int64{}, end: map[int32]int64{}}
	ends.Each(func(e kadm.ListedOffset) {
		from := int64(0)
		if s, ok := starts.Lookup(topic, e.Partition); ok {
			from = s.Offset
		}
		if p, ok := pos[e.Partition]; ok && p > from {
			from = p
		}
		if from < e.Offset {
			r.from[e.Partition], r.end[e.Partition] = from, e.Offset
		}
	})
	return r, nil
}

// size is the number of offsets in the range (records, unless compacted).
func (r *dlqRange) size() int64 {
	var n int64
	for p, end := range r.end {
		n += end - r.from[p]
	}
	return n
}

// partitions lists the range's partitions in order.
func (r *dlqRange) partitions() []int32 {
	ps := make([]int32, 0, len(r.end))
	for p := range r.end {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// read calls fn for every record of the range, in offset order within a
// partition (partitions interleave). fn returning errStop ends the read
// without error; another error ends it with that error.
//
// A partition is done when a record at or past its end arrives or the record
// just before its end has been read. Offsets a fetch never returns (a
// transaction marker as the last offset) would keep it waiting; fanout's
// producers are not transactional, so a DLQ it writes has none.
func (r *dlqRange) read(ctx context.Context, opts []kgo.Opt, fn func(*kgo.Record) error) error {
	if len(r.end) == 0 {
		return nil
	}
	at := map[int32]kgo.Offset{}
	for p, from := range r.from {
		at[p] = kgo.NewOffset().At(from)
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.topic: at}),
		// Offsets deleted by retention since the range was taken: go on
		// from the oldest still there.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	open := len(r.end)
	done := map[int32]bool{}
	finish := func(p int32) {
		if !done[p] {
			done[p] = true
			open--
			cl.PauseFetchPartitions(map[string][]int32{r.topic: {p}})
		}
	}
	for open > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, e := range fs.Errors() {
			var lost *kgo.ErrDataLoss
			if !errors.As(e.Err, &lost) { // data loss: retention won the race; go on
				return fmt.Errorf("read %s partition %d: %w", e.Topic, e.Partition, e.Err)
			}
		}
		var ferr error
		fs.EachRecord(func(rec *kgo.Record) {
			end, ok := r.end[rec.Partition]
			if ferr != nil || !ok || done[rec.Partition] {
				return
			}
			if rec.Offset >= end {
				finish(rec.Partition)
				return
			}
			if err := fn(rec); err != nil {
				ferr = err
				return
			}
			if rec.Offset+1 >= end {
				finish(rec.Partition)
			}
		})
		if errors.Is(ferr, errStop) {
			return nil
		}
		if ferr != nil {
			return ferr
		}
	}
	return nil
}
