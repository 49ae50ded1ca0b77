package replay

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/dlq"
)

// Dedupe modes of a replay.
const (
	ModeRespect = "respect" // events already delivered are skipped by dedupe
	ModeBypass  = "bypass"  // every event in range is sent again
)

// ErrInvalid marks the errors in what a replay is asked to do (flags, a
// range the topic does not have, a replay that ran before): errors.Is(err,
// ErrInvalid) tells them from failures. The message is the error's own.
var ErrInvalid = errors.New("invalid replay request")

type invalidError struct{ msg string }

func (e invalidError) Error() string        { return e.msg }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error { return invalidError{fmt.Sprintf(format, args...)} }

// Spec is the range a replay's flags ask for, before the broker is asked.
type Spec struct {
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
			return nil, invalidf("%s: %q is not partition:offset, e.g. 0:100", flagName, item)
		}
		if _, dup := m[int32(p)]; dup {
			return nil, invalidf("%s: partition %d given twice", flagName, p)
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
			return nil, invalidf("--partition: %q is not a partition number", item)
		}
		if slices.Contains(out, int32(p)) {
			return nil, invalidf("--partition: partition %d given twice", p)
		}
		out = append(out, int32(p))
	}
	slices.Sort(out)
	return out, nil
}

// NewSpec checks the range flags together (offsets P:O[,P:O…], times as
// dlq.ParseWhen reads them, partitions P[,P…]); every mistake is ErrInvalid.
func NewSpec(fromOffset, fromTime, toOffset, toTime, partitions string, now time.Time) (Spec, error) {
	var sp Spec
	var err error
	switch {
	case fromOffset == "" && fromTime == "":
		return sp, invalidf("give where the replay starts: --from-offset P:O[,P:O…] or --from-time T")
	case fromOffset != "" && fromTime != "":
		return sp, invalidf("give one of --from-offset and --from-time, not both")
	case toOffset != "" && toTime != "":
		return sp, invalidf("give one of --to-offset and --to-time, not both")
	}
	if sp.fromOffset, err = parseOffsets("--from-offset", fromOffset); err != nil {
		return sp, err
	}
	if sp.toOffset, err = parseOffsets("--to-offset", toOffset); err != nil {
		return sp, err
	}
	if sp.fromTime, err = dlq.ParseWhen(fromTime, now); err != nil {
		return sp, invalidf("--from-time: %v", err)
	}
	if sp.toTime, err = dlq.ParseWhen(toTime, now); err != nil {
		return sp, invalidf("--to-time: %v", err)
	}
	if !sp.fromTime.IsZero() && !sp.toTime.IsZero() && !sp.fromTime.Before(sp.toTime) {
		return sp, invalidf("--from-time %s is not before --to-time %s", sp.fromTime.Format(time.RFC3339), sp.toTime.Format(time.RFC3339))
	}
	if sp.partitions, err = parsePartitions(partitions); err != nil {
		return sp, err
	}
	if sp.partitions != nil && sp.fromOffset != nil {
		for _, p := range sp.partitions {
			if _, ok := sp.fromOffset[p]; !ok {
				return sp, invalidf("--partition %d has no start in --from-offset", p)
			}
		}
		for p := range sp.fromOffset {
			if !slices.Contains(sp.partitions, p) {
				return sp, invalidf("--from-offset names partition %d, which --partition leaves out", p)
			}
		}
	}
	for p, to := range sp.toOffset {
		if from, ok := sp.fromOffset[p]; ok && to < from {
			return sp, invalidf("partition %d: --to-offset %d is before --from-offset %d", p, to, from)
		}
	}
	return sp, nil
}
