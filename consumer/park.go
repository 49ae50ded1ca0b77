package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers fanout writes on a parked record, next to the record's own headers
// (event-id and traceparent among them), so that on-call can see why it was
// parked and redrive it unchanged: key and value are the original bytes.
const (
	// HeaderPrefix starts every header fanout adds to a parked record.
	HeaderPrefix     = "fanout-"
	HeaderTopic      = "fanout-original-topic"
	HeaderPartition  = "fanout-original-partition"
	HeaderOffset     = "fanout-original-offset"
	HeaderTimestamp  = "fanout-original-timestamp" // RFC 3339, UTC, milliseconds
	HeaderSink       = "fanout-sink"
	HeaderAttempts   = "fanout-attempts"
	HeaderError      = "fanout-error"       // last error, at most maxErrorBytes
	HeaderErrorClass = "fanout-error-class" // Outcome.Reason
	HeaderStatus     = "fanout-http-status" // last HTTP status, "0" if none
	HeaderParkedAt   = "fanout-parked-at"   // RFC 3339, UTC, milliseconds

	// On records parked in a retry tier:
	HeaderTier      = "fanout-tier"             // 1 for the first tier
	HeaderNotBefore = "fanout-not-before"       // RFC 3339, UTC, ms: the tier delivers it no earlier
	HeaderExcerpt   = "fanout-response-excerpt" // the start of the last failed response's body
	// HeaderRedriveCount counts DLQ redrives; parking keeps it.
	HeaderRedriveCount = "fanout-redrive-count"

	// On a stub letter, parked with its value dropped because the park
	// topic refused the whole record (see Stub); parking keeps them:
	HeaderValueDropped   = "fanout-value-dropped"   // the original value's size in bytes; the value is a stub
	HeaderValueSHA256    = "fanout-value-sha256"    // hex SHA-256 of the original value
	HeaderKeyDropped     = "fanout-key-dropped"     // the original key's size; the key is its hex SHA-256
	HeaderHeadersDropped = "fanout-headers-dropped" // how many of the record's own headers a bare stub left off
)

// Tier is a retry tier a consumer parks retryable failures in.
type Tier struct {
	Number int           // 1 for the first tier
	Topic  string        // e.g. events.email.retry.1
	Delay  time.Duration // a parked record is delivered no earlier than parking time + Delay
}

const maxErrorBytes = 1024

// origin is where a record first entered fanout: its own coordinates, or, for
// a record read back from a retry tier or the DLQ, those its headers carry.
type origin struct {
	topic, partition, offset, timestamp string
	attempts                            int
}

func originOf(r *kgo.Record) origin {
	o := origin{
		topic: r.Topic, partition: strconv.Itoa(int(r.Partition)),
		offset: strconv.FormatInt(r.Offset, 10), timestamp: r.Timestamp.UTC().Format(timeFormat),
	}
	if t := headerValue(r, HeaderTopic); t != "" {
		o.topic = t
		o.partition = headerValue(r, HeaderPartition)
		o.offset = headerValue(r, HeaderOffset)
		o.timestamp = headerValue(r, HeaderTimestamp)
		o.attempts, _ = strconv.Atoi(headerValue(r, HeaderAttempts))
	}
	return o
}

// HeaderValue returns r's header key, "" if it has none.
func HeaderValue(r *kgo.Record, key string) string { return headerValue(r, key) }

func headerValue(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// ParkedRecord builds the copy of r parked on topic: the DLQ when tier is
// nil, else the retry tier. fanout dlq redrive uses it to park a letter again. Key and value are r's own bytes; the attempt count
// adds up over tiers; the original coordinates survive every hop.
func ParkedRecord(topic, sink string, r *kgo.Record, out Outcome, now time.Time, tier *Tier) *kgo.Record {
	errText := ""
	if out.Err != nil {
		errText = truncate(out.Err.Error(), maxErrorBytes)
	}
	o := originOf(r)
	fanout := []kgo.RecordHeader{
		{Key: HeaderTopic, Value: []byte(o.topic)},
		{Key: HeaderPartition, Value: []byte(o.partition)},
		{Key: HeaderOffset, Value: []byte(o.offset)},
		{Key: HeaderTimestamp, Value: []byte(o.timestamp)},
		{Key: HeaderSink, Value: []byte(sink)},
		{Key: HeaderAttempts, Value: []byte(strconv.Itoa(o.attempts + out.Attempts))},
		{Key: HeaderError, Value: []byte(errText)},
		{Key: HeaderErrorClass, Value: []byte(out.Reason)},
		{Key: HeaderStatus, Value: []byte(strconv.Itoa(out.Status))},
		{Key: HeaderParkedAt, Value: []byte(now.UTC().Format(timeFormat))},
	}
	if out.Excerpt != "" {
		fanout = append(fanout, kgo.RecordHeader{Key: HeaderExcerpt, Value: []byte(truncate(out.Excerpt, maxErrorBytes))})
	}
	if tier != nil {
		fanout = append(fanout,
			kgo.RecordHeader{Key: HeaderTier, Value: []byte(strconv.Itoa(tier.Number))},
			// Rounded up to the header's millisecond: never early.
			kgo.RecordHeader{Key: HeaderNotBefore, Value: []byte(now.Add(tier.Delay + time.Millisecond - 1).Truncate(time.Millisecond).UTC().Format(timeFormat))},
		)
	}
	headers := make([]kgo.RecordHeader, 0, len(r.Headers)+len(fanout))
	for _, h := range r.Headers {
		// A record from a tier or a redrive brings the headers of its
		// earlier parking; the new ones replace them.
		if !strings.HasPrefix(h.Key, "fanout-") || kept(h.Key) {
			headers = append(headers, h)
		}
	}
	headers = append(headers, fanout...)
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: headers, Timestamp: now}
}

// notBefore reads a tier record's not-before time.
func notBefore(r *kgo.Record) (time.Time, bool) {
	v := headerValue(r, HeaderNotBefore)
	if v == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// kept reports whether a fanout-* header of an earlier parking survives a
// new one: the redrive count, and a stub's marks (the value stays dropped).
func kept(key string) bool {
	switch key {
	case HeaderRedriveCount, HeaderValueDropped, HeaderValueSHA256, HeaderKeyDropped, HeaderHeadersDropped:
		return true
	}
	return false
}

// park produces r's parked copy (DLQ or retry tier) and waits for the
// acknowledgement (acks=all, idempotent producer); see ProduceParked. Only an
// acknowledged park lets the offset be committed.
func (c *Consumer) park(ctx context.Context, cl *kgo.Client, topic string, tier *Tier, r *kgo.Record, out Outcome) error {
	_, err := ProduceParked(ctx, cl, func() *kgo.Record {
		return ParkedRecord(topic, c.cfg.Sink, r, out, time.Now(), tier)
	}, c.log.With("partition", r.Partition, "offset", r.Offset))
	if err != nil {
		return fmt.Errorf("park %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return nil
}

// kgoSlack is how much larger franz-go counts a batch than the broker does
// (it adds the 4-byte length of the records array when it does not know the
// produce version yet): its ProducerBatchMaxBytes is the topic's limit plus
// this, and this is taken off again to learn the limit.
const kgoSlack = 4

// kgoDefaultBatchBytes is franz-go's default ProducerBatchMaxBytes.
const kgoDefaultBatchBytes = 1_000_012

// ProducerSizing sizes a client's producer for the topics it parks into:
// limits maps a topic to its max.message.bytes (as DescribeTopicConfigs
// returns it: the topic's override or the broker's message.max.bytes); other
// topics keep franz-go's default of 1,000,012 bytes. ProduceParked checks each
// record against the same per-topic numbers before producing it.
func ProducerSizing(limits map[string]int32) kgo.Opt {
	m := make(map[string]int32, len(limits))
	for t, l := range limits {
		m[t] = min(max(l+kgoSlack, 512), 1<<30)
	}
	return kgo.ProducerBatchMaxBytesFn(func(topic string) int32 {
		if l, ok := m[topic]; ok {
			return l
		}
		return kgoDefaultBatchBytes
	})
}

// parkLimit is the largest record (RecordBytes) cl's producer sends to topic:
// the topic's max.message.bytes when cl was sized with ProducerSizing.
func parkLimit(cl *kgo.Client, topic string) int {
	if fn, ok := cl.OptValue(kgo.ProducerBatchMaxBytesFn).(func(string) int32); ok && fn != nil {
		return int(fn(topic)) - kgoSlack
	}
	return kgoDefaultBatchBytes - kgoSlack
}

// refusesRecord reports whether err is a broker's (or franz-go's) refusal of
// this record's contents — too large, invalid — which no retry can change.
func refusesRecord(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) ||
		errors.Is(err, kerr.InvalidRecord) || errors.Is(err, kerr.InvalidTimestamp)
}

// retriable reports whether a failed produce may succeed if tried again:
// Kafka's retriable errors, and franz-go's own (record timeout, retries
// spent, buffer full) and transport errors, which carry no Kafka code.
func retriable(err error) bool {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	return true
}

// ProduceParked produces build()'s record — a parked copy, rebuilt for each
// attempt so its parked-at and not-before times are fresh — and waits for
// the acknowledgement, until ctx ends. It never retries a record its topic
// refuses:
//
//   - Larger than the topic takes (its max.message.bytes, known from
//     ProducerSizing; checked before producing) or refused by the broker as
//     too large or invalid: it parks a StubLetter instead (value replaced,
//     every header kept); if the topic refuses that too, a BareStub. A full
//     copy the broker calls too large although it fits alone (batched with
//     others) is tried twice more first.
//   - Retriable errors (leader moved, timeouts, unknown topic) are retried
//     with backoff, logged with what failed.
//   - Other errors are not this record's fault (authorization, a topic that
//     refuses even a bare stub, i.e. misconfigured): a stub would not help
//     and would lose the value, so they too are retried with backoff, logged
//     at error level with the broker's message, until the cause is fixed;
//     the partition waits meanwhile and the record stays uncommitted.
//
// It returns what was parked.
func ProduceParked(ctx context.Context, cl *kgo.Client, build func() *kgo.Record, log *slog.Logger) (Level, error) {
	backoff := 100 * time.Millisecond
	level, tooLarge, reason := FullCopy, 0, ""
	for {
		rec := build()
		topic, size := rec.Topic, len(rec.Value)
		limit := parkLimit(cl, topic)
		if level > FullCopy {
			rec = Stub(rec, reason, level)
		}
		if n := RecordBytes(rec); n > limit && level < BareStub {
			reason = fmt.Sprintf("%s record of %d bytes exceeds max.message.bytes %d of topic %s", level, n, limit, topic)
			level++
			log.Warn("park topic cannot take the record; parking a stub letter with the value dropped",
				"park_topic", topic, "record_bytes", n, "limit", limit, "value_bytes", size, "level", level.String())
			continue
		}
		err := cl.ProduceSync(ctx, rec).FirstErr()
		if err == nil {
			return level, nil
		}
		if ctx.Err() != nil {
			return level, ctx.Err()
		}
		switch {
		case refusesRecord(err) && level == FullCopy && errors.Is(err, kerr.MessageTooLarge) && tooLarge < 2:
			// It fits alone (checked above): batched with other parks.
			tooLarge++
			log.Warn("park topic refused a batch as too large; producing the record again", "park_topic", topic, "err", err)
		case refusesRecord(err) && level < BareStub:
			reason = fmt.Sprintf("%s record refused by topic %s: %v", level, topic, err)
			level++
			log.Warn("park topic refused the record; parking a stub letter with the value dropped",
				"park_topic", topic, "value_bytes", size, "level", level.String(), "err", err)
			continue
		case refusesRecord(err):
			log.Error("park failed: the topic refuses even a bare stub letter; retrying until its config is fixed (max.message.bytes, or cleanup.policy=compact wanting keys)",
				"park_topic", topic, "err", err)
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			log.Error("park failed; retrying: the topic does not exist (create it with fanout topics ensure)", "park_topic", topic, "err", err)
		case retriable(err):
			log.Warn("park failed; retrying", "park_topic", topic, "err", err)
		default:
			log.Error("park failed, not because of this record; retrying until the cause is fixed", "park_topic", topic, "level", level.String(), "err", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return level, ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
