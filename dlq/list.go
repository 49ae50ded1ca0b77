package dlq

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Listed counts what a List read and selected.
type Listed struct {
	Examined int // letters read
	Shown    int // letters that matched and were handed to fn
}

// List reads topic from its oldest record up to the end it has now and calls
// fn with each letter f selects and its event id (ids), at most limit of
// them (0: all). opts are the Kafka client's options. fn returning an error
// ends the list with it (ErrStop: without error).
func List(ctx context.Context, adm *kadm.Client, opts []kgo.Opt, topic string, f Filter, limit int, ids *IDs,
	fn func(l Letter, id string) error) (Listed, error) {
	var n Listed
	r, err := TakeRange(ctx, adm, topic, nil)
	if err != nil {
		return n, err
	}
	err = r.Read(ctx, opts, func(rec *kgo.Record) error {
		n.Examined++
		l := Parse(rec)
		if !f.Match(l) {
			return nil
		}
		n.Shown++
		if err := fn(l, ids.Of(ctx, l)); err != nil {
			return err
		}
		if limit > 0 && n.Shown >= limit {
			return ErrStop
		}
		return nil
	})
	return n, err
}

// ReadOne returns the letter at partition p, offset o of topic.
func ReadOne(ctx context.Context, adm *kadm.Client, opts []kgo.Opt, topic string, p int32, o int64) (*kgo.Record, error) {
	r, err := TakeRange(ctx, adm, topic, nil)
	if err != nil {
		return nil, err
	}
	end, ok := r.End[p]
	if !ok {
		return nil, fmt.Errorf("no dead letter at %d:%d: partition %d of %s is empty or does not exist", p, o, p, topic)
	}
	if o < r.From[p] || o >= end {
		return nil, fmt.Errorf("no dead letter at %d:%d: partition %d of %s holds offsets %d to %d", p, o, p, topic, r.From[p], end-1)
	}
	one := &Range{Topic: topic, From: map[int32]int64{p: o}, End: map[int32]int64{p: o + 1}}
	var rec *kgo.Record
	if err := one.Read(ctx, opts, func(r *kgo.Record) error { rec = r; return ErrStop }); err != nil {
		return nil, err
	}
	if rec == nil || rec.Offset != o {
		return nil, fmt.Errorf("no dead letter at %d:%d (compacted away?)", p, o)
	}
	return rec, nil
}
