package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/letter"
)

// Tier is a retry tier a consumer parks retryable failures in.
type Tier struct {
	Number int           // 1 for the first tier
	Topic  string        // e.g. events.email.retry.1
	Delay  time.Duration // a parked record is delivered no earlier than parking time + Delay
}

const maxErrorBytes = 1024

// ParkedRecord builds the copy of r parked on topic: the DLQ when tier is
// nil, else the retry tier. fanout dlq redrive uses it to park a letter
// again. Key and value are r's own bytes; the attempt count adds up over
// tiers; the original coordinates survive every hop, and so do an earlier
// parking's redrive count and stub marks (the value stays dropped).
func ParkedRecord(topic, sink string, r *kgo.Record, out Outcome, now time.Time, tier *Tier) *kgo.Record {
	prior, _ := letter.Parse(r) // r's own coordinates unless it is a letter
	l := letter.Letter{Topic: prior.Topic, Partition: prior.Partition, Offset: prior.Offset, Timestamp: prior.Timestamp,
		Sink: sink, Attempts: prior.Attempts + out.Attempts, Reason: out.Reason, Status: out.Status, ParkedAt: now,
		Excerpt: truncate(out.Excerpt, maxErrorBytes), RedriveCount: prior.RedriveCount, Stub: prior.Stub}
	if out.Err != nil {
		l.Error = truncate(out.Err.Error(), maxErrorBytes)
	}
	if tier != nil {
		// Rounded up to the header's millisecond: never early.
		l.Tier, l.NotBefore = tier.Number, now.Add(tier.Delay+time.Millisecond-1).Truncate(time.Millisecond)
	}
	return l.Encode(topic, r)
}

// notBefore reads a tier record's not-before time.
func notBefore(r *kgo.Record) (time.Time, bool) {
	l, err := letter.Parse(r)
	return l.NotBefore, err == nil && !l.NotBefore.IsZero()
}

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

// park produces r's parked copy (DLQ or retry tier) and waits for the
// acknowledgement (acks=all, idempotent producer); see ProduceParked. Only an
// acknowledged park lets the offset be committed.
func (c *Consumer) park(ctx context.Context, cl *kgo.Client, topic string, tier *Tier, r *kgo.Record, out Outcome) error {
	_, err := ProduceParked(ctx, cl, func() *kgo.Record {
		rec := ParkedRecord(topic, c.cfg.Sink, r, out, time.Now(), tier)
		if c.cfg.Repark != nil {
			rec = c.cfg.Repark(rec)
		}
		return rec
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
