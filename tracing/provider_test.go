package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/fanout-dev/fanout/tracing/otlptest"
)

func TestEndpoint(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tt := range []struct {
		cfg  Config
		env  map[string]string
		want string
	}{
		{Config{}, nil, ""},
		{Config{Endpoint: "http://c:4318/"}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"}, "http://c:4318/v1/traces"},
		{Config{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"}, "http://env:4318/v1/traces"},
		{Config{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/custom"}, "http://t:1/custom"},
		{Config{Endpoint: "http://c:4318/base/?tenant=a&key=b"}, nil, "http://c:4318/base/v1/traces?tenant=a&key=b"},
		{Config{Endpoint: "https://c?tenant=a"}, nil, "https://c/v1/traces?tenant=a"},
		{Config{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318/otlp?k=v"}, "http://env:4318/otlp/v1/traces?k=v"},
	} {
		if got := tt.cfg.endpoint(env(tt.env)); got != tt.want {
			t.Errorf("%+v with %v: endpoint %q, want %q", tt.cfg, tt.env, got, tt.want)
		}
	}
}

// Start exports to a real OTLP/HTTP receiver: a process span continuing the
// record's trace, and a client span under it whose context is what the API
// gets as traceparent.
func TestStartExportsSpans(t *testing.T) {
	rcv, err := otlptest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	shutdown, endpoint, err := Start(Config{Endpoint: rcv.URL, ServiceName: "unit"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Use(noop.NewTracerProvider()) })
	if endpoint != rcv.URL+"/v1/traces" {
		t.Errorf("endpoint %q", endpoint)
	}

	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := &kgo.Record{Topic: "events", Partition: 2, Offset: 41, Key: []byte("k1"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(tp)}}}
	ctx, proc := StartProcess(ExtractRecord(context.Background(), r), "profile", r)
	u, _ := url.Parse("http://127.0.0.1:8080/users")
	actx, client := StartHTTP(ctx, NewTarget("POST", u), 2)
	h := http.Header{}
	InjectHTTP(actx, h)
	EndHTTP(client, 503, nil)
	proc.End()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	spans := rcv.Spans()
	if len(spans) != 2 || len(rcv.Problems()) > 0 {
		t.Fatalf("received %+v (problems %v), want 2 spans", spans, rcv.Problems())
	}
	var p, c otlptest.Span
	for _, s := range spans {
		if s.Kind == "consumer" {
			p = s
		} else {
			c = s
		}
	}
	want := map[string]string{"messaging.system": "kafka", "messaging.destination.name": "events",
		"messaging.destination.partition.id": "2", "messaging.kafka.offset": "41", "messaging.kafka.message.key": "k1", "fanout.sink": "profile"}
	for k, v := range want {
		if p.Attrs[k] != v {
			t.Errorf("process span %s = %q, want %q", k, p.Attrs[k], v)
		}
	}
	if p.Name != "process events" || p.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || p.ParentSpanID != "00f067aa0ba902b7" || p.Service != "unit" {
		t.Errorf("process span %+v: want a child of the record's traceparent", p)
	}
	if c.Name != "POST" || c.Kind != "client" || c.ParentSpanID != p.SpanID || c.Attrs["http.response.status_code"] != "503" ||
		c.Attrs["http.request.resend_count"] != "1" || c.Attrs["server.port"] != "8080" || c.Attrs["url.full"] != "http://127.0.0.1:8080/users" || c.StatusCode != "error" {
		t.Errorf("client span %+v", c)
	}
	if got, want := h.Get("traceparent"), "00-4bf92f3577b34da6a3ce929d0e0e4736-"+c.SpanID+"-01"; got != want {
		t.Errorf("traceparent sent %q, want %q (the client span)", got, want)
	}
}

// Without an endpoint nothing is exported and spans are no-ops that keep
// their parent's context: the API gets the record's traceparent as is.
func TestNoEndpointKeepsPropagation(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	if _, endpoint, err := Start(Config{}); err != nil || endpoint != "" {
		t.Fatalf("Start: %q %v", endpoint, err)
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := &kgo.Record{Topic: "events", Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(tp)}}}
	ctx, span := StartProcess(ExtractRecord(context.Background(), r), "s", r)
	defer span.End()
	actx, c := StartHTTP(ctx, NewTarget("POST", &url.URL{Scheme: "http", Host: "x"}), 1)
	defer c.End()
	h := http.Header{}
	InjectHTTP(actx, h)
	if h.Get("traceparent") != tp || trace.SpanFromContext(actx).IsRecording() {
		t.Errorf("traceparent %q (recording %v), want the record's %q", h.Get("traceparent"), trace.SpanFromContext(actx).IsRecording(), tp)
	}
}

func TestStartRejectsABadEndpoint(t *testing.T) {
	if _, _, err := Start(Config{Endpoint: "localhost:4318"}); err == nil {
		t.Fatal("Start accepted an endpoint without a scheme")
	}
}

// A query string in the endpoint reaches the collector with every export,
// after the /v1/traces path (the exporter itself drops it).
func TestStartKeepsTheEndpointQuery(t *testing.T) {
	got := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Path + "?" + r.URL.RawQuery
	}))
	defer srv.Close()
	shutdown, endpoint, err := Start(Config{Endpoint: srv.URL + "/collector?tenant=acme&key=k1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Use(noop.NewTracerProvider()) })
	if want := srv.URL + "/collector/v1/traces"; endpoint != want { // logged: the query may hold a key
		t.Errorf("endpoint %q, want %q", endpoint, want)
	}
	_, span := StartProcess(context.Background(), "s", &kgo.Record{Topic: "events"})
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case req := <-got:
		if req != "/collector/v1/traces?tenant=acme&key=k1" {
			t.Errorf("collector got %s", req)
		}
	default:
		t.Fatal("no export reached the collector")
	}
}

// Configured headers go with every export (an API key the collector checks).
func TestStartSendsHeaders(t *testing.T) {
	got := make(chan http.Header, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	defer srv.Close()
	shutdown, _, err := Start(Config{Endpoint: srv.URL, Headers: map[string]string{"Authorization": "Bearer K1", "X-Tenant": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Use(noop.NewTracerProvider()) })
	_, span := StartProcess(context.Background(), "s", &kgo.Record{Topic: "events"})
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case h := <-got:
		if h.Get("Authorization") != "Bearer K1" || h.Get("X-Tenant") != "acme" {
			t.Errorf("collector got headers %v", h)
		}
	default:
		t.Fatal("no export reached the collector")
	}
}

// The sampler: sample_ratio from the config wins, else OTEL_TRACES_SAMPLER
// and its argument, else parentbased_traceidratio 1; an unknown sampler or
// a bad argument is an error.
func TestSampler(t *testing.T) {
	ratio := func(r float64) *float64 { return &r }
	for _, tt := range []struct {
		ratio         *float64
		sampler, arg  string
		want, wantErr string
	}{
		{nil, "", "", "ParentBased{root:TraceIDRatioBased{1}", ""},
		{ratio(0.25), "always_off", "", "ParentBased{root:TraceIDRatioBased{0.25}", ""},
		{ratio(0), "", "", "ParentBased{root:TraceIDRatioBased{0}", ""},
		{nil, "always_on", "", "AlwaysOnSampler", ""},
		{nil, "always_off", "", "AlwaysOffSampler", ""},
		{nil, "traceidratio", "0.5", "TraceIDRatioBased{0.5}", ""},
		{nil, "traceidratio", "", "TraceIDRatioBased{1}", ""},
		{nil, "parentbased_always_on", "", "ParentBased{root:AlwaysOnSampler", ""},
		{nil, "parentbased_always_off", "", "ParentBased{root:AlwaysOffSampler", ""},
		{nil, " ParentBased_TraceIDRatio ", "0.1", "ParentBased{root:TraceIDRatioBased{0.1}", ""},
		{nil, "always_on", "nonsense", "AlwaysOnSampler", ""}, // the argument of a sampler without one is ignored
		{nil, "jaeger_remote", "", "", `OTEL_TRACES_SAMPLER "jaeger_remote" is not one of always_on, always_off, traceidratio`},
		{nil, "alwayson", "", "", `OTEL_TRACES_SAMPLER "alwayson" is not one of`},
		{nil, "traceidratio", "1.5", "", `OTEL_TRACES_SAMPLER_ARG "1.5" is not a ratio within 0..1`},
		{nil, "parentbased_traceidratio", "half", "", `OTEL_TRACES_SAMPLER_ARG "half" is not a ratio`},
	} {
		env := map[string]string{"OTEL_TRACES_SAMPLER": tt.sampler, "OTEL_TRACES_SAMPLER_ARG": tt.arg}
		s, err := Config{SampleRatio: tt.ratio}.sampler(func(k string) string { return env[k] })
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s %q: err %v, want %q", tt.sampler, tt.arg, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%s %q: %v", tt.sampler, tt.arg, err)
		case !strings.HasPrefix(s.Description(), tt.want):
			t.Errorf("ratio %s, %s %q: sampler %s, want %s", ratioString(tt.ratio), tt.sampler, tt.arg, s.Description(), tt.want)
		}
	}
	t.Setenv("OTEL_TRACES_SAMPLER", "sometimes")
	for _, endpoint := range []string{"http://127.0.0.1:1", ""} {
		if _, _, err := Start(Config{Endpoint: endpoint}); err == nil || !strings.Contains(err.Error(), `"sometimes"`) {
			t.Errorf("Start(endpoint %q) with an unknown sampler: %v", endpoint, err)
		}
	}
}

// service.name: the config's, else OTEL_SERVICE_NAME, else service.name in
// OTEL_RESOURCE_ATTRIBUTES, else fanout; the other resource attributes from
// the environment are always kept.
func TestResource(t *testing.T) {
	for _, tt := range []struct {
		cfg, envName, envAttrs string
		want                   string
	}{
		{"", "", "", "fanout"},
		{"", "from-env", "", "from-env"},
		{"", "", "service.name=from-attrs,deployment.environment=prod", "from-attrs"},
		{"", "from-env", "service.name=from-attrs,deployment.environment=prod", "from-env"},
		{"from-config", "from-env", "service.name=from-attrs,deployment.environment=prod", "from-config"},
	} {
		t.Setenv("OTEL_SERVICE_NAME", tt.envName)
		t.Setenv("OTEL_RESOURCE_ATTRIBUTES", tt.envAttrs)
		res, err := Config{ServiceName: tt.cfg}.resource(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		set := res.Set()
		if v, _ := set.Value("service.name"); v.AsString() != tt.want {
			t.Errorf("config %q, OTEL_SERVICE_NAME %q, OTEL_RESOURCE_ATTRIBUTES %q: service.name %q, want %q", tt.cfg, tt.envName, tt.envAttrs, v.AsString(), tt.want)
		}
		if v, _ := set.Value("deployment.environment"); tt.envAttrs != "" && v.AsString() != "prod" {
			t.Errorf("OTEL_RESOURCE_ATTRIBUTES %q: deployment.environment %q, want prod", tt.envAttrs, v.AsString())
		}
		if v, _ := set.Value("telemetry.sdk.language"); v.AsString() != "go" {
			t.Errorf("telemetry.sdk.language %q", v.AsString())
		}
	}
}

func ratioString(r *float64) string {
	if r == nil {
		return "unset"
	}
	return strconv.FormatFloat(*r, 'g', -1, 64)
}
