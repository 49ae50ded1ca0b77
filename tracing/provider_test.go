package tracing

import (
	"context"
	"net/http"
	"net/url"
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
