// Package replay sends a range of the main topic through one sink's delivery
// path again, resumably.
//
// It owns: the range a replay's flags ask for (Spec, NewSpec) and where the
// broker puts it (Resolve: offsets and times to per-partition [from, end),
// clamped to what the topic holds); the replay's ID (sink, range and dedupe
// mode hashed, so the same command twice finds its own progress); its
// progress, committed to the group <prefix><sink>.replay.<ID> as each
// partition's watermark with the range and the records done past it as
// commit metadata (Meta); and the run itself (Replayer: a range-mode
// consumer.Consumer with the sink's handler, ordering and max_in_flight,
// parking failures straight on the sink's DLQ, paced by --rate, counted into
// a Summary).
//
// It must not know about flags, output or how a sink is assembled: the caller
// builds the *pipeline.Handler and the Kafka options, prints the Summary and
// shows progress through a Watcher that reads Replayer snapshots. Mistakes in
// the request are errors for which errors.Is(err, ErrInvalid) holds.
package replay
