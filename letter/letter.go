package letter

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrNotLetter is Parse's error for a record without fanout-* headers.
var ErrNotLetter = errors.New("not a parked record: no " + HeaderPrefix + "* headers")

// Letter is what a parked record says about itself: where the original came
// from, who parked it, why, and when. Encode writes it as fanout-* headers;
// Parse reads it back.
type Letter struct {
	// The original record, where it first entered fanout: every parked copy
	// of one record (tiers, DLQ, redrives) carries the same.
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time

	Sink     string
	Attempts int    // delivery attempts, added up over every pass
	Error    string // the last error
	Reason   Reason
	Status   int // the last HTTP status, 0 if none
	ParkedAt time.Time

	Tier      int       // the retry tier parked in, 1 for the first; 0 on the DLQ
	NotBefore time.Time // with Tier: the tier delivers the record no earlier
	Excerpt   string    // the start of the last failed response's body, "" if none

	RedriveCount int // DLQ redrives; 0 before the first

	Stub *Stub // set on a stub letter, parked with its value dropped
}

// Stub is what a stub letter says about the record it replaced: the park
// topic refused the whole record, so the value (and, on a bare stub, a long
// key and the record's own headers) was dropped.
type Stub struct {
	ValueBytes  int    // the original value's size
	ValueSHA256 string // hex SHA-256 of the original value
	// KeyBytes is the original key's size when a bare stub replaced the key
	// by its hex SHA-256, 0 when the key is the original.
	KeyBytes int
	// Bare marks a bare stub, which left off the record's own headers
	// (HeadersDropped of them).
	Bare           bool
	HeadersDropped int
}

// Original is where the letter's record first entered fanout: its topic,
// partition and offset.
func (l Letter) Original() (topic string, partition int32, offset int64) {
	return l.Topic, l.Partition, l.Offset
}

// Parse reads what r's fanout-* headers say. A record without any is not a
// letter: Parse returns ErrNotLetter, and a Letter that stands for r itself
// (its own topic, partition, offset and timestamp, nothing else), which is
// where a park of r starts from.
//
// Parse is lenient, as tools reading a DLQ need it to be: a missing or
// malformed header leaves its field zero. The original coordinates are r's
// own unless the topic, partition and offset headers are all present and
// valid; the original timestamp is r's own unless its header is valid. A
// header repeated (a park never writes one twice) counts at its last.
func Parse(r *kgo.Record) (Letter, error) {
	l := Letter{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp}
	var (
		found     bool
		topic     string
		part, off int64
		hasP      bool
		hasO      bool
		dropped   bool // fanout-value-dropped, which marks a stub letter
	)
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			continue // a record's own header
		}
		found = true
		v := string(h.Value)
		var err error
		switch h.Key {
		case HeaderTopic:
			topic = v
		case HeaderPartition:
			part, err = strconv.ParseInt(v, 10, 32)
			hasP = err == nil
		case HeaderOffset:
			off, err = strconv.ParseInt(v, 10, 64)
			hasO = err == nil
		case HeaderTimestamp:
			if t, ok := parseTime(v); ok {
				l.Timestamp = t
			}
		case HeaderSink:
			l.Sink = v
		case HeaderAttempts:
			l.Attempts, _ = strconv.Atoi(v)
		case HeaderError:
			l.Error = v
		case HeaderErrorClass:
			l.Reason = Reason(v)
		case HeaderStatus:
			l.Status, _ = strconv.Atoi(v)
		case HeaderParkedAt:
			l.ParkedAt, _ = parseTime(v)
		case HeaderTier:
			l.Tier, _ = strconv.Atoi(v)
		case HeaderNotBefore:
			l.NotBefore, _ = parseTime(v)
		case HeaderExcerpt:
			l.Excerpt = v
		case HeaderRedriveCount:
			l.RedriveCount, _ = strconv.Atoi(v)
		case HeaderValueDropped:
			dropped = true
			l.stub().ValueBytes, _ = strconv.Atoi(v)
		case HeaderValueSHA256:
			l.stub().ValueSHA256 = v
		case HeaderKeyDropped:
			l.stub().KeyBytes, _ = strconv.Atoi(v)
		case HeaderHeadersDropped:
			s := l.stub()
			s.Bare = true
			s.HeadersDropped, _ = strconv.Atoi(v)
		}
	}
	if !found {
		return l, ErrNotLetter
	}
	if topic != "" && hasP && hasO {
		l.Topic, l.Partition, l.Offset = topic, int32(part), off
	}
	if !dropped {
		l.Stub = nil // a stub letter is marked by fanout-value-dropped
	}
	return l, nil
}

func (l *Letter) stub() *Stub {
	if l.Stub == nil {
		l.Stub = &Stub{}
	}
	return l.Stub
}

func parseTime(v string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

// Headers are the fanout-* headers that say l, in the order a park writes
// them: the original's coordinates, sink, attempts, error, reason, status and
// parking time always; the response excerpt if any; tier and not-before on a
// tier record; the redrive count once redriven; a stub's marks.
func (l Letter) Headers() []kgo.RecordHeader {
	h := make([]kgo.RecordHeader, 0, 18)
	add := func(k, v string) { h = append(h, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(HeaderTopic, l.Topic)
	add(HeaderPartition, strconv.Itoa(int(l.Partition)))
	add(HeaderOffset, strconv.FormatInt(l.Offset, 10))
	add(HeaderTimestamp, l.Timestamp.UTC().Format(TimeFormat))
	add(HeaderSink, l.Sink)
	add(HeaderAttempts, strconv.Itoa(l.Attempts))
	add(HeaderError, l.Error)
	add(HeaderErrorClass, string(l.Reason))
	add(HeaderStatus, strconv.Itoa(l.Status))
	add(HeaderParkedAt, l.ParkedAt.UTC().Format(TimeFormat))
	if l.Excerpt != "" {
		add(HeaderExcerpt, l.Excerpt)
	}
	if l.Tier > 0 {
		add(HeaderTier, strconv.Itoa(l.Tier))
		add(HeaderNotBefore, l.NotBefore.UTC().Format(TimeFormat))
	}
	if l.RedriveCount > 0 {
		add(HeaderRedriveCount, strconv.Itoa(l.RedriveCount))
	}
	if s := l.Stub; s != nil {
		add(HeaderValueDropped, strconv.Itoa(s.ValueBytes))
		add(HeaderValueSHA256, s.ValueSHA256)
		if s.KeyBytes > 0 {
			add(HeaderKeyDropped, strconv.Itoa(s.KeyBytes))
		}
		if s.Bare {
			add(HeaderHeadersDropped, strconv.Itoa(s.HeadersDropped))
		}
	}
	return h
}

// Encode returns r's parked copy for topic, saying l: r's key and value, r's
// own headers (its fanout-* headers, from an earlier parking, are replaced by
// l's), then l.Headers(); its timestamp is l.ParkedAt.
func (l Letter) Encode(topic string, r *kgo.Record) *kgo.Record {
	fanout := l.Headers()
	headers := append(OwnHeaders(r, len(fanout)), fanout...)
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: headers, Timestamp: l.ParkedAt}
}

// OwnHeaders returns r's own headers, those not starting with HeaderPrefix,
// in a new slice with room for extra more.
func OwnHeaders(r *kgo.Record, extra int) []kgo.RecordHeader {
	own := make([]kgo.RecordHeader, 0, len(r.Headers)+extra)
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			own = append(own, h)
		}
	}
	return own
}
