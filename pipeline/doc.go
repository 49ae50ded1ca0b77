// Package pipeline is the glue of one sink: it implements consumer.Handler by
// decoding a record (schemas), filtering it by event type, claiming its event id
// (dedupe), delivering it (sink) and turning the result into a consumer verdict.
//
// It owns the per-record decisions that need all three: which id an event has,
// what a Redis outage means for a sink (fail-closed or fail-open), and which
// failures are dead letters. It must not know how Kafka is consumed or how
// records are committed: that is the consumer's.
package pipeline
