package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Scope is the instrumentation scope of fanout's spans.
const Scope = "github.com/fanout-dev/fanout"

// Tracer returns fanout's tracer from the global provider: a no-op one until
// Start installs an exporting provider. A no-op tracer's spans record nothing
// but carry their parent's span context, so propagation is unchanged.
func Tracer() trace.Tracer { return *tracer.Load() }

// tracer is fanout's tracer from the provider Use installed last, so the hot
// path does not look it up per span.
var tracer atomic.Pointer[trace.Tracer]

func init() {
	t := otel.Tracer(Scope)
	tracer.Store(&t)
}

// Use makes tp the global tracer provider and the source of Tracer. Start
// calls it; tests use it to record spans in memory.
func Use(tp trace.TracerProvider) {
	otel.SetTracerProvider(tp)
	t := tp.Tracer(Scope)
	tracer.Store(&t)
	_, isNoop := tp.(noop.TracerProvider)
	enabled.Store(!isNoop)
}

// Enabled reports whether spans are recorded: a provider other than the
// no-op one was installed. Callers skip work only spans would use.
func Enabled() bool { return enabled.Load() }

// enabled is false until Use installs a provider that records: the span
// helpers then return the context as it is and a no-op span, so a process
// without an exporter pays nothing per record.
var enabled atomic.Bool

// off is the span the helpers return while tracing is not enabled.
var off trace.Span = noop.Span{}

// Config says where spans go.
type Config struct {
	// Endpoint is the OTLP/HTTP collector's base URL, e.g.
	// http://127.0.0.1:4318 (spans are POSTed to <Endpoint>/v1/traces).
	// Empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (a full URL) or
	// OTEL_EXPORTER_OTLP_ENDPOINT (a base URL) from the environment; with
	// neither, no spans are exported.
	Endpoint string
	// SampleRatio is the share of new traces sampled (those whose event
	// arrived without a trace context); an event's own sampling decision is
	// always followed. Default 1.
	SampleRatio float64
	// ServiceName is the service.name resource attribute. Default "fanout".
	ServiceName string
}

// endpoint returns the traces URL to export to, "" for none.
func (c Config) endpoint(getenv func(string) string) string {
	switch {
	case c.Endpoint != "":
		return strings.TrimSuffix(c.Endpoint, "/") + "/v1/traces"
	case getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "":
		return getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	case getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "":
		return strings.TrimSuffix(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "/") + "/v1/traces"
	}
	return ""
}

// Start installs fanout's propagator and, when an endpoint is configured, a
// tracer provider that batches spans to it over OTLP/HTTP. shutdown flushes
// what is buffered (bounded by its context) and must be called before the
// process exits. With no endpoint it returns a no-op shutdown and "" as the
// endpoint.
func Start(cfg Config) (shutdown func(context.Context) error, endpoint string, err error) {
	Setup()
	noop := func(context.Context) error { return nil }
	endpoint = cfg.endpoint(os.Getenv)
	if endpoint == "" {
		return noop, "", nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return noop, "", fmt.Errorf("tracing: OTLP endpoint %q is not an http(s) URL", endpoint)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(endpoint)}
	if u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return noop, "", fmt.Errorf("tracing: %w", err)
	}
	name := cfg.ServiceName
	if name == "" {
		name = "fanout"
	}
	ratio := cfg.SampleRatio
	if ratio == 0 {
		ratio = 1
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", name)))
	if err != nil {
		return noop, "", fmt.Errorf("tracing: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	Use(tp)
	return func(ctx context.Context) error {
		err := tp.Shutdown(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("tracing: spans not flushed before the deadline: %w", err)
		}
		return err
	}, endpoint, nil
}
