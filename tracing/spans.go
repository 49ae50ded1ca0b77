package tracing

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// The spans follow OpenTelemetry's semantic conventions for messaging
// (Kafka) and HTTP clients; the attribute names are spelled out here so the
// conventions' package version does not matter.

// StartProcess starts the consumer span for one record of sink: "process
// <topic>", a child of the trace context the record carried (ctx, see
// ExtractRecord), so a trace runs from the producer through Kafka into the
// API call.
func StartProcess(ctx context.Context, sink string, r *kgo.Record) (context.Context, trace.Span) {
	if !enabled.Load() {
		return ctx, off
	}
	ctx, span := Tracer().Start(ctx, "process "+r.Topic, trace.WithSpanKind(trace.SpanKindConsumer))
	if !span.IsRecording() {
		return ctx, span // no exporter, or not sampled: build nothing
	}
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.name", "process"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", r.Topic),
		attribute.String("messaging.destination.partition.id", strconv.Itoa(int(r.Partition))),
		attribute.Int64("messaging.kafka.offset", r.Offset),
		attribute.Int("messaging.message.body.size", len(r.Value)),
		attribute.String("fanout.sink", sink),
	}
	if len(r.Key) > 0 && len(r.Key) <= 256 && utf8.Valid(r.Key) {
		attrs = append(attrs, attribute.String("messaging.kafka.message.key", string(r.Key)))
	}
	span.SetAttributes(attrs...)
	return ctx, span
}

// StartSend starts the producer span of a record about to be produced to
// r.Topic: "send <topic>", a new trace unless ctx has one. Inject the returned
// context into the record; end the span with EndSend once it is
// acknowledged.
func StartSend(ctx context.Context, r *kgo.Record) (context.Context, trace.Span) {
	if !enabled.Load() {
		return ctx, off
	}
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.name", "send"),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.destination.name", r.Topic),
		attribute.Int("messaging.message.body.size", len(r.Value)),
	}
	if len(r.Key) > 0 && len(r.Key) <= 256 && utf8.Valid(r.Key) {
		attrs = append(attrs, attribute.String("messaging.kafka.message.key", string(r.Key)))
	}
	return Tracer().Start(ctx, "send "+r.Topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
}

// EndSend records where the record landed, or the error, and ends span.
func EndSend(span trace.Span, r *kgo.Record, err error) {
	if err != nil {
		span.SetAttributes(attribute.String("error.type", "_OTHER"))
		span.SetStatus(codes.Error, statusText(err))
	} else {
		span.SetAttributes(attribute.String("messaging.destination.partition.id", strconv.Itoa(int(r.Partition))),
			attribute.Int64("messaging.kafka.offset", r.Offset))
	}
	span.End()
}

// Target is what HTTP client spans say about the API: its method and URL
// (without userinfo or query).
type Target struct {
	Method string
	attrs  []attribute.KeyValue
}

// NewTarget describes method and the safe URL u for client spans.
func NewTarget(method string, u *url.URL) Target {
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", method),
		attribute.String("url.full", u.String()),
		attribute.String("server.address", u.Hostname()),
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, attribute.Int("server.port", p))
	}
	return Target{Method: method, attrs: attrs}
}

// StartHTTP starts the client span of one request to t: attempt is 1 for
// the first, higher for in-line retries; opts add to it (a batch's links and
// size). Inject the returned context into the request so the API's span is
// its child.
func StartHTTP(ctx context.Context, t Target, attempt int, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !enabled.Load() {
		return ctx, off
	}
	ctx, span := Tracer().Start(ctx, t.Method, append(opts, trace.WithSpanKind(trace.SpanKindClient))...)
	if span.IsRecording() {
		span.SetAttributes(t.attrs...)
		if attempt > 1 {
			span.SetAttributes(attribute.Int("http.request.resend_count", attempt-1))
		}
	}
	return ctx, span
}

// EndHTTP records a request's outcome on its span and ends it: the status
// when there was an answer, error.type and an error status for a 4xx, 5xx
// or a request that got no answer.
func EndHTTP(span trace.Span, status int, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	if status > 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	switch {
	case status >= 400:
		span.SetAttributes(attribute.String("error.type", strconv.Itoa(status)))
		span.SetStatus(codes.Error, "")
	case status == 0 && err != nil:
		span.SetAttributes(attribute.String("error.type", errorType(err)))
		span.SetStatus(codes.Error, statusText(err))
	}
	span.End()
}

func errorType(err error) string {
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	return "_OTHER"
}
