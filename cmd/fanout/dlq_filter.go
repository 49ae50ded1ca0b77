package main

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/letter"
	"github.com/twmb/franz-go/pkg/kgo"
)

// errorClasses are the values of the fanout-error-class header: the reasons
// the pipeline parks a record with.
var errorClasses = func() []string {
	c := make([]string, len(letter.Reasons))
	for i, r := range letter.Reasons {
		c[i] = string(r)
	}
	return c
}()

// deadLetter is a dead letter as the dlq commands see it: the DLQ record and
// what its fanout-* headers say (letter.Parse). Missing or malformed headers
// leave zero values.
type deadLetter struct {
	rec *kgo.Record // the DLQ record: Partition and Offset are its place in the DLQ

	sink     string
	class    string
	status   int
	attempts int
	redrives int
	errText  string
	parkedAt time.Time // zero if the header is missing or malformed
	stub     *letter.Stub

	// The original record (letter.Letter.Original): the DLQ record's own
	// place and timestamp unless its headers say otherwise.
	origTopic     string
	origPartition int32
	origOffset    int64
	origTime      time.Time
	hasOrigin     bool // the fanout-original-topic/-partition/-offset headers are all present and valid
}

func parseLetter(r *kgo.Record) deadLetter {
	pl, err := letter.Parse(r)
	l := deadLetter{rec: r, sink: pl.Sink, class: string(pl.Reason), status: pl.Status, attempts: pl.Attempts,
		redrives: pl.RedriveCount, errText: pl.Error, parkedAt: pl.ParkedAt, stub: pl.Stub, origTime: pl.Timestamp}
	l.origTopic, l.origPartition, l.origOffset = pl.Original()
	// A letter's original is never its own place in the DLQ (config keeps
	// the DLQ apart from the topic it is fed from): Parse fell back to it.
	l.hasOrigin = err == nil && (l.origTopic != r.Topic || l.origPartition != r.Partition || l.origOffset != r.Offset)
	return l
}

// at is the letter's place in the DLQ, "partition:offset".
func (l deadLetter) at() string { return fmt.Sprintf("%d:%d", l.rec.Partition, l.rec.Offset) }

// origin identifies the record the letter is a copy of: its original topic,
// partition and offset. Every copy parked again by a redrive keeps them, so
// letters with one origin are copies of one record. A letter without the
// headers stands for itself: its origin is its own place in the DLQ.
func (l deadLetter) origin() string {
	r := l.original()
	return r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
}

// parking is one copy of a record in the DLQ, as redrive remembers it.
type parking struct {
	partition int32
	offset    int64
	redrives  int
	parkedAt  time.Time
}

// is reports whether c is l's copy.
func (c parking) is(l deadLetter) bool {
	return c.partition == l.rec.Partition && c.offset == l.rec.Offset
}

func (l deadLetter) parking() parking {
	return parking{partition: l.rec.Partition, offset: l.rec.Offset, redrives: l.redrives, parkedAt: l.parkedAt}
}

// newer reports whether c is a later copy of its record than d: more
// redrives, else parked later, else further in the DLQ.
func (c parking) newer(d parking) bool {
	switch {
	case c.redrives != d.redrives:
		return c.redrives > d.redrives
	case !c.parkedAt.Equal(d.parkedAt):
		return c.parkedAt.After(d.parkedAt)
	case c.partition != d.partition:
		return c.partition > d.partition
	}
	return c.offset > d.offset
}

// filter selects dead letters. The zero filter selects everything.
type filter struct {
	sink         string // letters parked by another sink (a DLQ shared before config refused that) never match; "" = any
	since, until time.Time
	statuses     []int    // fanout-http-status in this set; nil = any
	classes      []string // fanout-error-class in this set; nil = any
}

// match reports whether l is selected. A letter without a readable
// fanout-parked-at never matches a time bound.
func (f filter) match(l deadLetter) bool {
	switch {
	case f.sink != "" && l.sink != "" && l.sink != f.sink:
		return false
	case !f.since.IsZero() && (l.parkedAt.IsZero() || l.parkedAt.Before(f.since)):
		return false
	case !f.until.IsZero() && (l.parkedAt.IsZero() || !l.parkedAt.Before(f.until)):
		return false
	case f.statuses != nil && !slices.Contains(f.statuses, l.status):
		return false
	case f.classes != nil && !slices.Contains(f.classes, l.class):
		return false
	}
	return true
}

// filterFlags defines the selection flags list and redrive share. The
// returned func validates them (usage errors) once the flags are parsed.
func filterFlags(fs *flag.FlagSet) func(sink string, now time.Time) (filter, error) {
	since := fs.String("since", "", "only letters parked at or after `T`: RFC 3339, or a duration back from now (90m, 2h, 7d)")
	until := fs.String("until", "", "only letters parked before `T`: RFC 3339, or a duration back from now")
	status := fs.String("status", "", "only these HTTP `statuses`, comma-separated (0: no HTTP answer)")
	class := fs.String("class", "", "only these error `classes`, comma-separated: "+strings.Join(errorClasses, ", "))
	return func(sink string, now time.Time) (filter, error) {
		f := filter{sink: sink}
		var err error
		if f.since, err = parseWhen(*since, now); err != nil {
			return f, usagef("--since: %v", err)
		}
		if f.until, err = parseWhen(*until, now); err != nil {
			return f, usagef("--until: %v", err)
		}
		if !f.since.IsZero() && !f.until.IsZero() && !f.since.Before(f.until) {
			return f, usagef("--since %s is not before --until %s", f.since.Format(time.RFC3339), f.until.Format(time.RFC3339))
		}
		for _, s := range splitList(*status) {
			n, err := strconv.Atoi(s)
			if err != nil || (n != 0 && (n < 100 || n > 599)) {
				return f, usagef("--status: %q is not an HTTP status (100-599, or 0 for none)", s)
			}
			f.statuses = append(f.statuses, n)
		}
		for _, c := range splitList(*class) {
			if !slices.Contains(errorClasses, c) {
				return f, usagef("--class: %q is not one of %s", c, strings.Join(errorClasses, ", "))
			}
			f.classes = append(f.classes, c)
		}
		return f, nil
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseWhen reads a point in time: RFC 3339, or a positive duration meaning
// that long before now (Go syntax, plus whole days: 7d). "" is the zero time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
		}
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("duration %q must be positive (it counts back from now)", s)
	}
	return now.Add(-d), nil
}

// parseRate reads --rate: N, N/s or N/m records. It returns the interval
// between two records; 0 means unlimited.
func parseRate(s string) (time.Duration, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	num, per := s, time.Second
	if n, unit, ok := strings.Cut(s, "/"); ok {
		num = n
		switch unit {
		case "s":
		case "m":
			per = time.Minute
		default:
			return 0, fmt.Errorf("%q: the unit is /s or /m", s)
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || n > 1e6 {
		return 0, fmt.Errorf("%q is not a positive rate such as 10/s", s)
	}
	return time.Duration(float64(per) / n), nil
}

// parseAt reads --at: partition:offset.
func parseAt(s string) (int32, int64, error) {
	ps, os, ok := strings.Cut(s, ":")
	p, perr := strconv.ParseInt(ps, 10, 32)
	o, oerr := strconv.ParseInt(os, 10, 64)
	if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
		return 0, 0, usagef("--at: %q is not partition:offset, e.g. 2:117", s)
	}
	return int32(p), o, nil
}

// original rebuilds the record the letter is a copy of, as the sink's
// consumer handed it to the pipeline: original topic, partition, offset and
// timestamp, the same key and value, and the record's own headers (fanout-*
// dropped). The pipeline's last-resort event id (topic/partition/offset) then
// names the event as the first delivery did, so dedupe recognises it.
func (l deadLetter) original() *kgo.Record {
	return &kgo.Record{Key: l.rec.Key, Value: l.rec.Value, Topic: l.origTopic, Partition: l.origPartition,
		Offset: l.origOffset, Timestamp: l.origTime, Headers: letter.OwnHeaders(l.rec, 0)}
}
