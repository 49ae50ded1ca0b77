package replay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Part is one partition of a replay: the offsets [From, End), and how far
// earlier runs of the same replay got (Pos, the watermark, and prior: the
// offsets done past it).
type Part struct {
	Partition int32   `json:"partition"`
	From      int64   `json:"from"`
	End       int64   `json:"end"`
	Pos       int64   `json:"position"`
	prior     []int64 // done past pos
}

// Done is the number of the part's offsets earlier runs finished.
func (p Part) Done() int64 { return p.Pos - p.From + int64(len(p.prior)) }

// Range is the part of the main topic a replay covers.
type Range struct {
	Topic string
	Mode  string
	Parts []Part // ascending by partition
}

// size is the number of offsets in the range (records, unless compacted).
func (r *Range) size() int64 {
	var n int64
	for _, p := range r.Parts {
		n += p.End - p.From
	}
	return n
}

// doneBefore is the number of offsets earlier runs finished.
func (r *Range) doneBefore() int64 {
	var n int64
	for _, p := range r.Parts {
		n += p.Done()
	}
	return n
}

// id is the replay's short id: the same sink, topic, dedupe mode and resolved
// offsets give the same id, so running one command twice finds its own
// progress instead of sending the range again.
func (r *Range) id(sink string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s", sink, r.Topic, r.Mode)
	for _, p := range r.Parts {
		fmt.Fprintf(h, "\x00%d:%d-%d", p.Partition, p.From, p.End)
	}
	return hex.EncodeToString(h.Sum(nil))[:8]
}

// resolveRange asks the broker where the range of sp lies. Starts before the
// log start are moved up to it and ends past the topic's end when the command
// starts are moved down to it (notes say so); a start past the end is a usage
// error.
func resolveRange(ctx context.Context, adm *kadm.Client, topic, mode string, sp Spec) (*Range, []string, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	if o, ok := ends.Lookup(topic, -1); ok && errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
		return nil, nil, fmt.Errorf("topic %s does not exist", topic)
	}
	if err := ends.Error(); err != nil {
		return nil, nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	byTime := func(t time.Time) (map[int32]int64, error) {
		if t.IsZero() {
			return nil, nil
		}
		l, err := adm.ListOffsetsAfterMilli(ctx, t.UnixMilli(), topic)
		if err == nil {
			err = l.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("list the offsets of %s at %s: %w", topic, t.Format(time.RFC3339), err)
		}
		m := map[int32]int64{}
		l.Each(func(o kadm.ListedOffset) { m[o.Partition] = o.Offset })
		return m, nil
	}
	fromT, err := byTime(sp.fromTime)
	if err != nil {
		return nil, nil, err
	}
	toT, err := byTime(sp.toTime)
	if err != nil {
		return nil, nil, err
	}

	all := map[int32]kadm.ListedOffset{}
	ends.Each(func(o kadm.ListedOffset) { all[o.Partition] = o })
	var ps []int32
	switch {
	case sp.partitions != nil:
		ps = sp.partitions
	case sp.fromOffset != nil:
		for p := range sp.fromOffset {
			ps = append(ps, p)
		}
	default:
		for p := range all {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	for _, p := range ps {
		if _, ok := all[p]; !ok {
			return nil, nil, invalidf("partition %d: %s has partitions 0 to %d", p, topic, len(all)-1)
		}
	}
	for p := range sp.toOffset {
		if !slices.Contains(ps, p) {
			return nil, nil, invalidf("--to-offset names partition %d, which is not in the range", p)
		}
	}

	r := &Range{Topic: topic, Mode: mode}
	var notes []string
	for _, p := range ps {
		end := all[p].Offset
		logStart := int64(0)
		if s, ok := starts.Lookup(topic, p); ok {
			logStart = s.Offset
		}
		from, ok := sp.fromOffset[p]
		if !ok {
			if from, ok = fromT[p]; !ok || from < 0 {
				from = end
			}
		}
		if from > end {
			return nil, nil, invalidf("partition %d: --from-offset %d is past the end of %s (%d)", p, from, topic, end)
		}
		if from < logStart {
			notes = append(notes, fmt.Sprintf("partition %d: offsets %d to %d are gone (retention); starting at %d", p, from, logStart-1, logStart))
			from = logStart
		}
		to := end
		if o, ok := sp.toOffset[p]; ok {
			if o > end {
				notes = append(notes, fmt.Sprintf("partition %d: --to-offset %d is past the end (%d); stopping at the end", p, o, end))
			} else {
				to = o
			}
		} else if o, ok := toT[p]; ok && o >= 0 && o < end {
			to = o
		}
		to = max(to, from)
		r.Parts = append(r.Parts, Part{Partition: p, From: from, End: to, Pos: from})
	}
	return r, notes, nil
}

// ValidID reports whether id can be a replay ID (8 lowercase hex digits).
func ValidID(id string) bool {
	if len(id) != 8 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// loadProgress reads a replay's group. found is false when the group holds
// no progress for topic.
func loadProgress(ctx context.Context, adm *kadm.Client, group, topic string) (r *Range, found bool, err error) {
	offs, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("fetch the offsets of group %s: %w", group, err)
	}
	r = &Range{Topic: topic}
	for p, o := range offs[topic] {
		if o.Err != nil {
			return nil, false, fmt.Errorf("fetch the offsets of group %s: partition %d: %w", group, p, o.Err)
		}
		if o.At < 0 {
			continue
		}
		m, err := ParseMeta(o.Metadata, o.At)
		if err != nil {
			return nil, true, fmt.Errorf("group %s, partition %d: %v", group, p, err)
		}
		if r.Mode != "" && r.Mode != m.Mode {
			return nil, true, fmt.Errorf("group %s: partitions disagree on the dedupe mode", group)
		}
		r.Mode = m.Mode
		r.Parts = append(r.Parts, Part{Partition: p, From: m.From, End: m.End, Pos: o.At, prior: m.Done})
	}
	if len(r.Parts) == 0 {
		return nil, false, nil
	}
	slices.SortFunc(r.Parts, func(a, b Part) int { return int(a.Partition - b.Partition) })
	return r, true, nil
}
