package tracing

import (
	"context"
	"net/http"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

func spanContext(t *testing.T) trace.SpanContext {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
}

// A trace context survives Kafka headers → context → HTTP headers unchanged,
// and injecting twice replaces instead of duplicating the header.
func TestKafkaToHTTP(t *testing.T) {
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), spanContext(t))
	r := &kgo.Record{Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("e1")}}}
	InjectRecord(ctx, r)
	InjectRecord(ctx, r)
	n := 0
	for _, h := range r.Headers {
		if h.Key == "traceparent" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d traceparent headers after two injects, want 1: %v", n, r.Headers)
	}
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if got := (KafkaCarrier{Headers: &r.Headers}).Get("traceparent"); got != want {
		t.Fatalf("traceparent header %q, want %q", got, want)
	}
	got := trace.SpanContextFromContext(ExtractRecord(context.Background(), r))
	if !got.Equal(spanContext(t)) {
		t.Fatalf("extracted %v, want %v", got, spanContext(t))
	}
	h := http.Header{}
	InjectHTTP(ExtractRecord(context.Background(), r), h)
	if h.Get("traceparent") != want {
		t.Fatalf("HTTP traceparent %q, want %q", h.Get("traceparent"), want)
	}
	if sc := trace.SpanContextFromContext(ExtractHTTP(context.Background(), h)); !sc.Equal(spanContext(t)) {
		t.Fatalf("HTTP round trip gave %v", sc)
	}
}

func TestNoTraceContext(t *testing.T) {
	r := &kgo.Record{}
	if sc := trace.SpanContextFromContext(ExtractRecord(context.Background(), r)); sc.IsValid() {
		t.Fatalf("extracted %v from a record without headers", sc)
	}
	h := http.Header{}
	InjectHTTP(context.Background(), h)
	if h.Get("traceparent") != "" {
		t.Fatalf("injected %q without a trace", h.Get("traceparent"))
	}
	keys := KafkaCarrier{Headers: &[]kgo.RecordHeader{{Key: "a"}, {Key: "b"}}}.Keys()
	if len(keys) != 2 || keys[0] != "a" || keys[1] != "b" {
		t.Fatalf("Keys = %v", keys)
	}
}
