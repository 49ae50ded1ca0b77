// Package tracing owns OpenTelemetry setup and W3C trace-context propagation:
// extracting a context from a Kafka record's headers, injecting it into Kafka
// headers (fanout emit) and into outgoing HTTP requests.
//
// Spans, exporters and metrics come later; every call site already passes a
// context.Context through this package so that adding them changes no caller.
// It must not know about business logic: sinks, schemas, dedupe.
package tracing
