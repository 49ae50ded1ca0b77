// Package tracing owns OpenTelemetry tracing: W3C trace-context propagation
// (extracting a context from a Kafka record's headers, injecting it into
// Kafka headers and into outgoing HTTP requests), the tracer provider that
// exports spans over OTLP/HTTP when an endpoint is configured (Start; a no-op
// tracer otherwise), and the spans fanout makes: "send" for a produce
// (StartSend), "process <topic>" per consumed record (StartProcess) and one
// HTTP client span per attempt (StartHTTP), named after OpenTelemetry's
// messaging and HTTP conventions. Metrics are not here: the admin endpoint
// serves them through prometheus/client_golang (docs/architecture.md says why).
//
// It must not know about business logic: sinks, schemas, dedupe.
package tracing
