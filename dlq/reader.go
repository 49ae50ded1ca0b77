package dlq

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Range is a bounded part of a dead-letter topic: per partition the
// offsets [From, End), End being the partition's end offset when the range
// was taken. Reading it never waits for records parked later, so the dlq
// commands end even while a sink keeps parking (or a redrive parks again).
type Range struct {
	Topic string
	From  map[int32]int64 // only partitions with From < End
	End   map[int32]int64
}

// ErrStop, returned by a Read's fn, ends the read early without error.
var ErrStop = errors.New("stop reading")

// TakeRange lists topic's offsets. Each partition's range starts at its log
// start offset, or at pos[p] if that is further (pos: a consumer group's
// committed offsets; nil for everything).
func TakeRange(ctx context.Context, adm *kadm.Client, topic string, pos map[int32]int64) (*Range, error) {
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
	r := &Range{Topic: topic, From: map[int32]int64{}, End: map[int32]int64{}}
	ends.Each(func(e kadm.ListedOffset) {
		from := int64(0)
		if s, ok := starts.Lookup(topic, e.Partition); ok {
			from = s.Offset
		}
		if p, ok := pos[e.Partition]; ok && p > from {
			from = p
		}
		if from < e.Offset {
			r.From[e.Partition], r.End[e.Partition] = from, e.Offset
		}
	})
	return r, nil
}

// Size is the number of offsets in the range (records, unless compacted).
func (r *Range) Size() int64 {
	var n int64
	for p, end := range r.End {
		n += end - r.From[p]
	}
	return n
}

// Read calls fn for every record of the range, in offset order within a
// partition (partitions interleave). fn returning ErrStop ends the read
// without error; another error ends it with that error.
//
// A partition is done when a record at or past its end arrives or the record
// just before its end has been read. Offsets a fetch never returns (a
// transaction marker as the last offset) would keep it waiting; fanout's
// producers are not transactional, so a DLQ it writes has none.
func (r *Range) Read(ctx context.Context, opts []kgo.Opt, fn func(*kgo.Record) error) error {
	if len(r.End) == 0 {
		return nil
	}
	at := map[int32]kgo.Offset{}
	for p, from := range r.From {
		at[p] = kgo.NewOffset().At(from)
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.Topic: at}),
		// Offsets deleted by retention since the range was taken: go on
		// from the oldest still there.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	open := len(r.End)
	done := map[int32]bool{}
	finish := func(p int32) {
		if !done[p] {
			done[p] = true
			open--
			cl.PauseFetchPartitions(map[string][]int32{r.Topic: {p}})
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
			end, ok := r.End[rec.Partition]
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
		if errors.Is(ferr, ErrStop) {
			return nil
		}
		if ferr != nil {
			return ferr
		}
	}
	return nil
}
