package consumer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers fanout writes on a parked record, next to the record's own headers
// (event-id and traceparent among them), so that on-call can see why it was
// parked and redrive it unchanged: key and value are the original bytes.
const (
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
		if !strings.HasPrefix(h.Key, "fanout-") || h.Key == HeaderRedriveCount {
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

// park produces r's parked copy (DLQ or retry tier) and waits for the acknowledgement
// (acks=all, idempotent producer), retrying with backoff until ctx ends. Only an
// acknowledged park lets the offset be committed.
func (c *Consumer) park(ctx context.Context, cl *kgo.Client, topic string, tier *Tier, r *kgo.Record, out Outcome) error {
	backoff := 100 * time.Millisecond
	for {
		rec := ParkedRecord(topic, c.cfg.Sink, r, out, time.Now(), tier)
		err := cl.ProduceSync(ctx, rec).FirstErr()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Error("park failed; retrying (does the topic exist? fanout topics ensure)",
			"park_topic", topic, "partition", r.Partition, "offset", r.Offset, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("park %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, ctx.Err())
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
