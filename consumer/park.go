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
)

const maxErrorBytes = 1024

// parkedRecord builds the dead-letter copy of r.
func parkedRecord(topic, sink string, r *kgo.Record, out Outcome, now time.Time) *kgo.Record {
	errText := ""
	if out.Err != nil {
		errText = truncate(out.Err.Error(), maxErrorBytes)
	}
	fanout := []kgo.RecordHeader{
		{Key: HeaderTopic, Value: []byte(r.Topic)},
		{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		{Key: HeaderOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		{Key: HeaderTimestamp, Value: []byte(r.Timestamp.UTC().Format(timeFormat))},
		{Key: HeaderSink, Value: []byte(sink)},
		{Key: HeaderAttempts, Value: []byte(strconv.Itoa(out.Attempts))},
		{Key: HeaderError, Value: []byte(errText)},
		{Key: HeaderErrorClass, Value: []byte(out.Reason)},
		{Key: HeaderStatus, Value: []byte(strconv.Itoa(out.Status))},
		{Key: HeaderParkedAt, Value: []byte(now.UTC().Format(timeFormat))},
	}
	headers := make([]kgo.RecordHeader, 0, len(r.Headers)+len(fanout))
	for _, h := range r.Headers {
		// A redriven record brings the headers of its earlier parking; the
		// new ones replace them.
		if !strings.HasPrefix(h.Key, "fanout-") || h.Key == "fanout-redrive-count" {
			headers = append(headers, h)
		}
	}
	headers = append(headers, fanout...)
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: headers, Timestamp: now}
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

// park produces r's dead-letter copy and waits for the acknowledgement
// (acks=all, idempotent producer), retrying with backoff until ctx ends. Only an
// acknowledged park lets the offset be committed.
func (c *Consumer) park(ctx context.Context, cl *kgo.Client, r *kgo.Record, out Outcome) error {
	backoff := 100 * time.Millisecond
	for {
		rec := parkedRecord(c.cfg.DLQTopic, c.cfg.Sink, r, out, time.Now())
		err := cl.ProduceSync(ctx, rec).FirstErr()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Error("park to dead-letter topic failed; retrying (does the topic exist? fanout topics ensure)",
			"dlq_topic", c.cfg.DLQTopic, "partition", r.Partition, "offset", r.Offset, "err", err)
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
