package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
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

// Config says where spans go. Each setting is taken from the config when
// set there, else from the standard OTEL_* environment variables, else
// fanout's default.
type Config struct {
	// Endpoint is the OTLP/HTTP collector's base URL, e.g.
	// http://127.0.0.1:4318 (spans are POSTed to <Endpoint>/v1/traces; a
	// query string is kept and sent with every export). Empty:
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (a full URL) or
	// OTEL_EXPORTER_OTLP_ENDPOINT (a base URL) from the environment; with
	// neither, no spans are exported.
	Endpoint string
	// SampleRatio is the share of new traces sampled (those whose event
	// arrived without a trace context); an event's own sampling decision is
	// always followed (parentbased_traceidratio). Nil: OTEL_TRACES_SAMPLER
	// and OTEL_TRACES_SAMPLER_ARG from the environment, else 1.
	SampleRatio *float64
	// ServiceName is the service.name resource attribute. Empty:
	// OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES, else
	// "fanout". The other OTEL_RESOURCE_ATTRIBUTES are always added.
	ServiceName string
	// Headers are sent with every export (an API key, an Authorization
	// header); default none. When set they replace OTEL_EXPORTER_OTLP_HEADERS
	// and OTEL_EXPORTER_OTLP_TRACES_HEADERS.
	Headers map[string]string
	// Redact hides secrets in the error texts spans record (their status
	// messages); default nil: none hidden. The process span's message comes
	// from the pipeline, which hides them itself (pipeline.Config.Redact).
	Redact func(string) string
}

// redactStatus is Config.Redact of the running provider.
var redactStatus atomic.Pointer[func(string) string]

// statusText is err's text for a span status, with secrets hidden.
func statusText(err error) string {
	if f := redactStatus.Load(); f != nil {
		return (*f)(err.Error())
	}
	return err.Error()
}

// endpoint returns the traces URL to export to, "" for none.
func (c Config) endpoint(getenv func(string) string) string {
	switch {
	case c.Endpoint != "":
		return tracesURL(c.Endpoint)
	case getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "":
		return getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	case getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "":
		return tracesURL(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	}
	return ""
}

// tracesURL appends /v1/traces to a base URL's path, keeping its query. A
// base that does not parse is returned as it is, for Start to refuse.
func tracesURL(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	return u.JoinPath("v1", "traces").String()
}

// Samplers are the OTEL_TRACES_SAMPLER values fanout supports.
var Samplers = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// sampler decides which new traces are sampled: SampleRatio when set (as
// parentbased_traceidratio), else OTEL_TRACES_SAMPLER/_ARG, else
// parentbased_traceidratio with ratio 1. An unknown sampler or a bad ratio
// is an error.
func (c Config) sampler(getenv func(string) string) (sdktrace.Sampler, error) {
	if c.SampleRatio != nil {
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*c.SampleRatio)), nil
	}
	ratio := func() (float64, error) {
		arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER_ARG %q is not a ratio within 0..1", arg)
		}
		return r, nil
	}
	switch name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER"))); name {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.TraceIDRatioBased(r), nil
	case "", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	default:
		return nil, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER %q is not one of %s", name, strings.Join(Samplers, ", "))
	}
}

// resource describes the process: the SDK's attributes and
// OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME from the environment, with
// service.name ServiceName when set, else from the environment, else
// "fanout".
func (c Config) resource(ctx context.Context) (*resource.Resource, error) {
	env, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("tracing: OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	res, err := resource.Merge(resource.NewSchemaless(attribute.String("service.name", "fanout")), env)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if c.ServiceName != "" {
		if res, err = resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", c.ServiceName))); err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
	}
	return res, nil
}

// queryTransport adds a fixed query string to every request.
type queryTransport struct {
	base  http.RoundTripper
	query string
}

func (t queryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.RawQuery = t.query
	return t.base.RoundTrip(r)
}

// Start installs fanout's propagator and, when an endpoint is configured, a
// tracer provider that batches spans to it over OTLP/HTTP. shutdown flushes
// what is buffered (bounded by its context) and must be called before the
// process exits. endpoint is where spans go, without credentials or query
// (it is logged). With no endpoint it returns a no-op shutdown and "" as the
// endpoint. An unknown OTEL_TRACES_SAMPLER (or a bad argument) or malformed
// OTEL_RESOURCE_ATTRIBUTES is an error.
func Start(cfg Config) (shutdown func(context.Context) error, endpoint string, err error) {
	Setup()
	noop := func(context.Context) error { return nil }
	// A bad sampler setting is refused even when nothing is exported yet,
	// so the mistake shows before an endpoint is added.
	sampler, err := cfg.sampler(os.Getenv)
	if err != nil {
		return noop, "", err
	}
	redactStatus.Store(nil)
	if cfg.Redact != nil {
		redactStatus.Store(&cfg.Redact)
	}
	endpoint = cfg.endpoint(os.Getenv)
	if endpoint == "" {
		return noop, "", nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return noop, "", fmt.Errorf("tracing: OTLP endpoint %q is not an http(s) URL", endpoint)
	}
	res, err := cfg.resource(context.Background())
	if err != nil {
		return noop, "", err
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(endpoint)}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	if u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	if u.RawQuery != "" {
		// The exporter builds its URL from host and path only; a client of
		// our own puts the query back. It has the exporter's default
		// timeout; OTEL_EXPORTER_OTLP_*TIMEOUT and *_CERTIFICATE do not
		// apply to it.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		opts = append(opts, otlptracehttp.WithHTTPClient(&http.Client{Timeout: 10 * time.Second, Transport: queryTransport{base: tr, query: u.RawQuery}}))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return noop, "", fmt.Errorf("tracing: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
	)
	Use(tp)
	safe := *u // for logs: no credentials, no query
	safe.User, safe.RawQuery, safe.ForceQuery = nil, "", false
	return func(ctx context.Context) error {
		err := tp.Shutdown(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("tracing: spans not flushed before the deadline: %w", err)
		}
		return err
	}, safe.String(), nil
}
