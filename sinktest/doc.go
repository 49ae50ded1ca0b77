// Package sinktest is the test kit for fanout's sinks: one fake webhook API
// and one config builder, shared by the demo, the benchmark, the end-to-end
// tests and the fault suite.
//
// [API] is an http.Handler standing in for a downstream API. It takes single
// events and CloudEvents batches (application/cloudevents-batch+json), lets an
// [Answer] func decide each event on its own (status sequences per key and
// attempt, latency, an answer dropped after the API accepted, a batch answer
// cut off), answers a batch per event, and records per key what it accepted:
// attempts, acceptances, bodies, traceparent, headers. It has no dependency
// on package testing, so the demo serves it too; [Listen] serves it on a
// loopback port without httptest. [Options.Request] decides for a request as
// a whole (a down window, a reset, a slow or lost answer for a whole batch);
// with [Options.Ledger] it keeps a [Record] of every event: status, arrival,
// answer time, when the client went away, and whether the answer was lost
// (on purpose, the client gone before it, or the connection closed right
// after it: [API.ConnState]). The e2e fault target is such a configuration.
//
// [Config] writes a fanout.yaml from typed fields (the kafka, redis and run
// sections, typed sink specs, and verbatim YAML for the rest).
//
// The primitives are exported too: [ParseBatch], [WriteResults],
// [CutAnswer], [ResetConn], [Trickle].
//
// sinktest/oauth2test runs go-oauth2's token server for tests; it is a
// package of its own so the demo does not link go-oauth2.
//
// sinktest must not know how fanout delivers: it sees only HTTP requests.
package sinktest
