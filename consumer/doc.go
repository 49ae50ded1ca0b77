// Package consumer owns fanout's Kafka side for one sink: a franz-go client in
// the sink's own consumer group, the ordering modes (partition, key, unordered)
// with a bound on in-flight and buffered records, the per-partition commit
// watermark, rebalance handling, and parking records on the sink's dead-letter
// topic.
//
// A record is handed to a Handler, which says what became of it: done
// (delivered, deduplicated or skipped), dead-letter (park it), or abandon (the
// context ended: leave it uncommitted for the next owner). An offset is committed
// only when every record at or below it is done or durably parked: in full,
// or, where the park topic refuses the record, as a stub letter (Stub).
//
// It must not know how an API is called, how records are decoded or how dedupe
// works: that is the Handler's business.
package consumer
