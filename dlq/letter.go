package dlq

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/letter"
)

// Letter is a dead letter as the dlq commands see it: the DLQ record and
// what its fanout-* headers say (letter.Parse). Missing or malformed headers
// leave zero values.
type Letter struct {
	Rec *kgo.Record // the DLQ record: Partition and Offset are its place in the DLQ

	Sink     string
	Class    string
	Status   int
	Attempts int
	Redrives int
	ErrText  string
	ParkedAt time.Time // zero if the header is missing or malformed
	Stub     *letter.Stub

	// The original record (letter.Letter.Original): the DLQ record's own
	// place and timestamp unless its headers say otherwise.
	OrigTopic     string
	OrigPartition int32
	OrigOffset    int64
	OrigTime      time.Time
	HasOrigin     bool // the fanout-original-topic/-partition/-offset headers are all present and valid
}

// Parse reads r's fanout-* headers.
func Parse(r *kgo.Record) Letter {
	pl, err := letter.Parse(r)
	l := Letter{Rec: r, Sink: pl.Sink, Class: string(pl.Reason), Status: pl.Status, Attempts: pl.Attempts,
		Redrives: pl.RedriveCount, ErrText: pl.Error, ParkedAt: pl.ParkedAt, Stub: pl.Stub, OrigTime: pl.Timestamp}
	l.OrigTopic, l.OrigPartition, l.OrigOffset = pl.Original()
	// A letter's original is never its own place in the DLQ (config keeps
	// the DLQ apart from the topic it is fed from): Parse fell back to it.
	l.HasOrigin = err == nil && (l.OrigTopic != r.Topic || l.OrigPartition != r.Partition || l.OrigOffset != r.Offset)
	return l
}

// At is the letter's place in the DLQ, "partition:offset".
func (l Letter) At() string { return fmt.Sprintf("%d:%d", l.Rec.Partition, l.Rec.Offset) }

// Origin identifies the record the letter is a copy of: its original topic,
// partition and offset. Every copy parked again by a redrive keeps them, so
// letters with one origin are copies of one record. A letter without the
// headers stands for itself: its origin is its own place in the DLQ.
func (l Letter) Origin() string {
	r := l.Original()
	return r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
}

// Original rebuilds the record the letter is a copy of, as the sink's
// consumer handed it to the pipeline: original topic, partition, offset and
// timestamp, the same key and value, and the record's own headers (fanout-*
// dropped). The pipeline's last-resort event id (topic/partition/offset) then
// names the event as the first delivery did, so dedupe recognises it.
func (l Letter) Original() *kgo.Record {
	return &kgo.Record{Key: l.Rec.Key, Value: l.Rec.Value, Topic: l.OrigTopic, Partition: l.OrigPartition,
		Offset: l.OrigOffset, Timestamp: l.OrigTime, Headers: letter.OwnHeaders(l.Rec, 0)}
}

// parking is one copy of a record in the DLQ, as redrive remembers it.
type parking struct {
	partition int32
	offset    int64
	redrives  int
	parkedAt  time.Time
}

// is reports whether c is l's copy.
func (c parking) is(l Letter) bool {
	return c.partition == l.Rec.Partition && c.offset == l.Rec.Offset
}

func (l Letter) parking() parking {
	return parking{partition: l.Rec.Partition, offset: l.Rec.Offset, redrives: l.Redrives, parkedAt: l.ParkedAt}
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

// Filter selects dead letters. The zero Filter selects everything.
type Filter struct {
	Sink         string // letters parked by another sink (a DLQ shared before config refused that) never match; "" = any
	Since, Until time.Time
	Statuses     []int    // fanout-http-status in this set; nil = any
	Classes      []string // fanout-error-class in this set; nil = any
}

// Match reports whether l is selected. A letter without a readable
// fanout-parked-at never matches a time bound.
func (f Filter) Match(l Letter) bool {
	switch {
	case f.Sink != "" && l.Sink != "" && l.Sink != f.Sink:
		return false
	case !f.Since.IsZero() && (l.ParkedAt.IsZero() || l.ParkedAt.Before(f.Since)):
		return false
	case !f.Until.IsZero() && (l.ParkedAt.IsZero() || !l.ParkedAt.Before(f.Until)):
		return false
	case f.Statuses != nil && !slices.Contains(f.Statuses, l.Status):
		return false
	case f.Classes != nil && !slices.Contains(f.Classes, l.Class):
		return false
	}
	return true
}
