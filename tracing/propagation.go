package tracing

import (
	"context"
	"net/http"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// Propagator is the W3C trace-context + baggage propagator fanout uses on
// every boundary. It is also installed as otel's global propagator by Setup.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, propagation.Baggage{},
)

// Setup installs fanout's propagator as the global one. Safe to call more than once.
func Setup() { otel.SetTextMapPropagator(Propagator) }

// KafkaCarrier adapts a record's headers to a propagation.TextMapCarrier.
// Set replaces an existing header of the same key instead of adding a second.
type KafkaCarrier struct{ Headers *[]kgo.RecordHeader }

// Get returns the first header value for key.
func (c KafkaCarrier) Get(key string) string {
	for _, h := range *c.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces or appends the header key.
func (c KafkaCarrier) Set(key, value string) {
	for i, h := range *c.Headers {
		if h.Key == key {
			(*c.Headers)[i].Value = []byte(value)
			return
		}
	}
	*c.Headers = append(*c.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

// Keys lists the header keys.
func (c KafkaCarrier) Keys() []string {
	keys := make([]string, 0, len(*c.Headers))
	for _, h := range *c.Headers {
		keys = append(keys, h.Key)
	}
	return keys
}

// ExtractRecord returns ctx carrying the trace context found in r's headers.
func ExtractRecord(ctx context.Context, r *kgo.Record) context.Context {
	return Propagator.Extract(ctx, KafkaCarrier{Headers: &r.Headers})
}

// InjectRecord writes ctx's trace context into r's headers.
func InjectRecord(ctx context.Context, r *kgo.Record) {
	Propagator.Inject(ctx, KafkaCarrier{Headers: &r.Headers})
}

// InjectHTTP writes ctx's trace context (traceparent, tracestate, baggage) into h.
func InjectHTTP(ctx context.Context, h http.Header) {
	Propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// ExtractHTTP returns ctx carrying the trace context found in h (used by test
// targets and demo APIs to check what arrived).
func ExtractHTTP(ctx context.Context, h http.Header) context.Context {
	return Propagator.Extract(ctx, propagation.HeaderCarrier(h))
}
