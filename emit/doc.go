// Package emit publishes JSON documents as events, as an upstream system
// would: each document is validated against its event type's schema, encoded
// in the Confluent wire format and produced with the event-id header and a
// traceparent (a new trace per event). `fanout emit` is its command; the
// demo's producer uses [NewTrace].
//
// emit must not know where documents come from (flags, files, stdin: the
// command opens them) or how anything is delivered downstream.
package emit
