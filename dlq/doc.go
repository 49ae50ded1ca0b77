// Package dlq reads one sink's dead-letter topic and sends its letters through
// the sink's delivery path again.
//
// It owns: reading a dead-letter topic as a bounded range (Range: per
// partition the offsets from a start up to the end the topic had when the
// range was taken, so a read ends even while the sink keeps parking); the
// dead-letter view of a record (Letter: what its fanout-* headers say, parsed
// by package letter) and the filters on it (Filter); naming a letter's event as
// delivery does (IDs); listing (List, ReadOne); and the redrive (Redriver: a
// range-mode consumer.Consumer over the topic whose handler decides per letter
// and hands it to the sink's pipeline.Handler). It also holds the small value
// parsers the commands share (ParseWhen, ParseRate, ParseAt, SplitList) and
// the Pacer behind --rate.
//
// It must not know about flags, output formats or how a sink is assembled:
// the caller passes Kafka options, the config and a built *pipeline.Handler,
// and prints what the functions return (cmd/fanout keeps the table, JSON and
// summary lines). Errors are plain errors; which of them are usage errors is
// the command's call.
package dlq
