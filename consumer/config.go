package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultMaxInFlight is Config.MaxInFlight when it is not set, and a sink's
// max_in_flight in the config file when that is not set (config refers to it).
const DefaultMaxInFlight = 64

// Ordering says which records of a sink may be in flight together.
type Ordering int

const (
	// ByPartition: one record in flight per partition, in offset order.
	ByPartition Ordering = iota
	// ByKey: one record in flight per record key (within a partition), many
	// keys at once. Records without a key are unordered.
	ByKey
	// Unordered: up to MaxInFlight records at once, in any order.
	Unordered
)

func (o Ordering) String() string {
	return [...]string{"partition", "key", "unordered"}[o]
}

// Config is one sink's consumer. Every field's comment states its default.
type Config struct {
	Sink     string   // required: the sink's name, written on parked records
	Topic    string   // required: the topic to consume
	Group    string   // required: the sink's consumer group, e.g. fanout.<sink>
	DLQTopic string   // required: where dead letters are parked
	Ordering Ordering // default ByPartition
	// MaxInFlight bounds the records being handled at once; default
	// DefaultMaxInFlight.
	MaxInFlight int
	// MaxBuffered bounds the records fetched and not yet done (in flight plus
	// waiting behind their ordering lane); default max(4×MaxInFlight, 256).
	// Each partition may hold its share of it (see share) and is paused
	// beyond, so memory stays bounded under any backlog: at most MaxBuffered
	// records (or MaxInFlight per partition, if larger) plus one fetch per
	// partition (FetchMaxPartitionBytes) and the fetch franz-go buffers.
	MaxBuffered int
	// FetchMaxBytes and FetchMaxPartitionBytes bound one fetch (compressed
	// bytes, as Kafka counts them); defaults 4 MiB and 1 MiB.
	FetchMaxBytes, FetchMaxPartitionBytes int32
	// FetchMaxWait is how long the broker may hold a fetch for data; default
	// 200ms. A partition resumed after a pause joins only the next fetch, so
	// this is also how long a resumed partition may wait for it when the
	// other partitions have nothing new.
	FetchMaxWait time.Duration
	// Start is where a partition starts when the group has no committed
	// offset for it (a new group); default the earliest offset. A committed
	// offset that is out of range (retention or DeleteRecords took it)
	// resumes at the earliest retained offset whatever Start is, with a
	// warning and OffsetResets counted.
	Start kgo.Offset
	// CommitInterval is how often the done watermark is committed; default 1s.
	CommitInterval time.Duration
	// RevokeTimeout is how long revoked partitions' in-flight records may run
	// before they are cancelled and left uncommitted; default 20s (below the
	// group's 60s rebalance timeout).
	RevokeTimeout time.Duration
	// DrainTimeout is how long Run waits for in-flight records once its context
	// ends; default 30s.
	DrainTimeout time.Duration
	// Retry is the tier retryable failures are parked in once their in-line
	// retries are spent: the first tier for the main topic, the next one for
	// a tier; nil parks them on the DLQ.
	Retry *Tier
	// Tier is this consumer's own tier number, 0 for the main topic. A tier
	// consumer delivers each record no earlier than its not-before time,
	// waiting with the partition paused; it always orders by partition, since
	// a tier partition holds records in not-before order.
	Tier int

	// Range, if set, makes the consumer read these partitions of Topic, each
	// from its Span's Pos to its End, with no group membership (franz-go's
	// direct consuming: Group, Start and RevokeTimeout do not apply). Run
	// returns by itself once every partition's watermark reaches its End,
	// with the same drain, ordering lanes and parking as a group consumer.
	// Progress goes to Commit, never to a group of the consumer's own. A
	// record left undone (Abandon) holds its partition short of its End:
	// Run then returns when ctx ends, with that record uncommitted.
	Range map[int32]Span
	// Commit receives a range's progress, every CommitInterval when it moved
	// and once when Run ends: every partition of Range with its watermark
	// and the records done past it. Required with Range.
	Commit func(ctx context.Context, progress map[int32]Progress) error
	// Repark, if set, rewrites each parked copy before it is produced; fanout
	// dlq redrive counts a letter parked again with it (one more redrive).
	Repark func(parked *kgo.Record) *kgo.Record
}

func (c *Config) defaults() error {
	switch {
	case c.Sink == "":
		return errors.New("consumer: Sink is required")
	case c.Topic == "":
		return errors.New("consumer: Topic is required")
	case c.Group == "" && c.Range == nil:
		return errors.New("consumer: Group is required")
	case c.Range != nil && c.Commit == nil:
		return errors.New("consumer: Commit is required with Range")
	case c.DLQTopic == "":
		return errors.New("consumer: DLQTopic is required")
	case c.Ordering < ByPartition || c.Ordering > Unordered:
		return fmt.Errorf("consumer: Ordering %d is unknown", c.Ordering)
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Tier > 0 {
		c.Ordering = ByPartition
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = max(4*c.MaxInFlight, 256)
	}
	if c.MaxBuffered < c.MaxInFlight {
		c.MaxBuffered = c.MaxInFlight
	}
	if c.FetchMaxBytes <= 0 {
		c.FetchMaxBytes = 4 << 20
	}
	if c.FetchMaxPartitionBytes <= 0 {
		c.FetchMaxPartitionBytes = 1 << 20
	}
	if c.FetchMaxWait <= 0 {
		c.FetchMaxWait = 200 * time.Millisecond
	}
	if c.Start == (kgo.Offset{}) {
		c.Start = kgo.NewOffset().AtStart()
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = time.Second
	}
	if c.RevokeTimeout <= 0 {
		c.RevokeTimeout = 20 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	return nil
}
