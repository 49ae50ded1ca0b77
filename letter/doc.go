// Package letter owns the parked-record format: the fanout-* headers a park
// writes on a copy of a record it puts on a retry tier or the dead-letter
// topic (DLQ), the reasons a record is parked with, and Letter, what those
// headers say. The consumer encodes a Letter when it parks; the pipeline, the
// dlq commands and replay read one back with Parse. Like Watermill's poison
// middleware, it exports its header names so that tools can read a DLQ
// without fanout.
//
// A parked record keeps the original's key, value and own headers; every
// header fanout adds starts with HeaderPrefix, so an event renders the same
// on every pass with the fanout-* headers left out.
//
// It must not know how a record is produced, delivered or decoded: where a
// letter is parked and what counts as a failure are the consumer's and the
// pipeline's business.
package letter
