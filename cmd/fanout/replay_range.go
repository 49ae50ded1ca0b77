package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/naming"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Dedupe modes of a replay.
const (
	modeRespect = "respect" // events already delivered are skipped by dedupe
	modeBypass  = "bypass"  // every event in range is sent again
)

// replaySpec is the range a replay's flags ask for, before the broker is asked.
type replaySpec struct {
	fromOffset, toOffset map[int32]int64 // nil unless given
	fromTime, toTime     time.Time       // zero unless given
	partitions           []int32         // nil: every partition (or those of --from-offset)
}

// parseOffsets reads a P:O[,P:O…] flag.
func parseOffsets(flagName, s string) (map[int32]int64, error) {
	if s == "" {
		return nil, nil
	}
	m := map[int32]int64{}
	for _, item := range strings.Split(s, ",") {
		ps, os, ok := strings.Cut(strings.TrimSpace(item), ":")
		p, perr := strconv.ParseInt(ps, 10, 32)
		o, oerr := strconv.ParseInt(os, 10, 64)
		if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
			return nil, usagef("%s: %q is not partition:offset, e.g. 0:100", flagName, item)
		}
		if _, dup := m[int32(p)]; dup {
			return nil, usagef("%s: partition %d given twice", flagName, p)
		}
		m[int32(p)] = o
	}
	return m, nil
}

// parsePartitions reads --partition P[,P…].
func parsePartitions(s string) ([]int32, error) {
	if s == "" {
		return nil, nil
	}
	var out []int32
	for _, item := range strings.Split(s, ",") {
		p, err := strconv.ParseInt(strings.TrimSpace(item), 10, 32)
		if err != nil || p < 0 {
			return nil, usagef("--partition: %q is not a partition number", item)
		}
		if slices.Contains(out, int32(p)) {
			return nil, usagef("--partition: partition %d given twice", p)
		}
		out = append(out, int32(p))
	}
	slices.Sort(out)
	return out, nil
}

// newReplaySpec checks the range flags together; every mistake is a usage error.
func newReplaySpec(fromOffset, fromTime, toOffset, toTime, partitions string, now time.Time) (replaySpec, error) {
	var sp replaySpec
	var err error
	switch {
	case fromOffset == "" && fromTime == "":
		return sp, usagef("give where the replay starts: --from-offset P:O[,P:O…] or --from-time T")
	case fromOffset != "" && fromTime != "":
		return sp, usagef("give one of --from-offset and --from-time, not both")
	case toOffset != "" && toTime != "":
		return sp, usagef("give one of --to-offset and --to-time, not both")
	}
	if sp.fromOffset, err = parseOffsets("--from-offset", fromOffset); err != nil {
		return sp, err
	}
	if sp.toOffset, err = parseOffsets("--to-offset", toOffset); err != nil {
		return sp, err
	}
	if sp.fromTime, err = parseWhen(fromTime, now); err != nil {
		return sp, usagef("--from-time: %v", err)
	}
	if sp.toTime, err = parseWhen(toTime, now); err != nil {
		return sp, usagef("--to-time: %v", err)
	}
	if !sp.fromTime.IsZero() && !sp.toTime.IsZero() && !sp.fromTime.Before(sp.toTime) {
		return sp, usagef("--from-time %s is not before --to-time %s", sp.fromTime.Format(time.RFC3339), sp.toTime.Format(time.RFC3339))
	}
	if sp.partitions, err = parsePartitions(partitions); err != nil {
		return sp, err
	}
	if sp.partitions != nil && sp.fromOffset != nil {
		for _, p := range sp.partitions {
			if _, ok := sp.fromOffset[p]; !ok {
				return sp, usagef("--partition %d has no start in --from-offset", p)
			}
		}
		for p := range sp.fromOffset {
			if !slices.Contains(sp.partitions, p) {
				return sp, usagef("--from-offset names partition %d, which --partition leaves out", p)
			}
		}
	}
	for p, to := range sp.toOffset {
		if from, ok := sp.fromOffset[p]; ok && to < from {
			return sp, usagef("partition %d: --to-offset %d is before --from-offset %d", p, to, from)
		}
	}
	return sp, nil
}

// replayPart is one partition of a replay: the offsets [from, end), and how
// far earlier runs of the same replay got (pos, prior: see replayTracker).
type replayPart struct {
	Partition int32   `json:"partition"`
	From      int64   `json:"from"`
	End       int64   `json:"end"`
	Pos       int64   `json:"position"`
	prior     []int64 // done past pos
}

// replayRange is the part of the main topic a replay covers.
type replayRange struct {
	topic string
	mode  string
	parts []replayPart // ascending by partition
}

// size is the number of offsets in the range (records, unless compacted).
func (r *replayRange) size() int64 {
	var n int64
	for _, p := range r.parts {
		n += p.End - p.From
	}
	return n
}

// doneBefore is the number of offsets earlier runs finished.
func (r *replayRange) doneBefore() int64 {
	var n int64
	for _, p := range r.parts {
		n += p.Pos - p.From + int64(len(p.prior))
	}
	return n
}

// id is the replay's short id: the same sink, topic, dedupe mode and resolved
// offsets give the same id, so running one command twice finds its own
// progress instead of sending the range again.
func (r *replayRange) id(sink string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s", sink, r.topic, r.mode)
	for _, p := range r.parts {
		fmt.Fprintf(h, "\x00%d:%d-%d", p.Partition, p.From, p.End)
	}
	return hex.EncodeToString(h.Sum(nil))[:8]
}

// resolveRange asks the broker where the range of sp lies. Starts before the
// log start are moved up to it and ends past the topic's end when the command
// starts are moved down to it (notes say so); a start past the end is a usage
// error.
func resolveRange(ctx context.Context, adm *kadm.Client, topic, mode string, sp replaySpec) (*replayRange, []string, error) {
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
			return nil, nil, usagef("partition %d: %s has partitions 0 to %d", p, topic, len(all)-1)
		}
	}
	for p := range sp.toOffset {
		if !slices.Contains(ps, p) {
			return nil, nil, usagef("--to-offset names partition %d, which is not in the range", p)
		}
	}

	r := &replayRange{topic: topic, mode: mode}
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
			return nil, nil, usagef("partition %d: --from-offset %d is past the end of %s (%d)", p, from, topic, end)
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
		r.parts = append(r.parts, replayPart{Partition: p, From: from, End: to, Pos: from})
	}
	return r, notes, nil
}

// replayGroup is the consumer group holding a replay's progress.
func replayGroup(prefix, sink, id string) string { return naming.ReplayGroup(prefix, sink, id) }

// validReplayID reports whether id can be a replay id (what id() returns).
func validReplayID(id string) bool {
	if len(id) != 8 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// loadProgress reads a replay's group. found is false when the group holds
// no progress for topic.
func loadProgress(ctx context.Context, adm *kadm.Client, group, topic string) (r *replayRange, found bool, err error) {
	offs, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("fetch the offsets of group %s: %w", group, err)
	}
	r = &replayRange{topic: topic}
	for p, o := range offs[topic] {
		if o.Err != nil {
			return nil, false, fmt.Errorf("fetch the offsets of group %s: partition %d: %w", group, p, o.Err)
		}
		if o.At < 0 {
			continue
		}
		m, err := parseReplayMeta(o.Metadata, o.At)
		if err != nil {
			return nil, true, fmt.Errorf("group %s, partition %d: %v", group, p, err)
		}
		if r.mode != "" && r.mode != m.mode {
			return nil, true, fmt.Errorf("group %s: partitions disagree on the dedupe mode", group)
		}
		r.mode = m.mode
		r.parts = append(r.parts, replayPart{Partition: p, From: m.from, End: m.end, Pos: o.At, prior: m.done})
	}
	if len(r.parts) == 0 {
		return nil, false, nil
	}
	slices.SortFunc(r.parts, func(a, b replayPart) int { return int(a.Partition - b.Partition) })
	return r, true, nil
}
