package tracing

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/fanout-dev/fanout/tracing/otlptest"
)

// Error texts recorded as span status messages pass Config.Redact: an
// exported span never carries a configured secret.
func TestStatusMessagesRedacted(t *testing.T) {
	rcv, err := otlptest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	hide := func(s string) string { return strings.ReplaceAll(s, "TRACESECRET", "***") }
	shutdown, _, err := Start(Config{Endpoint: rcv.URL, ServiceName: "unit", Redact: hide})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Use(noop.NewTracerProvider()); redactStatus.Store(nil) })
	u, _ := url.Parse("http://127.0.0.1:8080/users")
	_, client := StartHTTP(context.Background(), NewTarget("POST", u), 1)
	EndHTTP(client, 0, errors.New("proxy said: token TRACESECRET refused"))
	r := &kgo.Record{Topic: "events"}
	_, send := StartSend(context.Background(), r)
	EndSend(send, r, errors.New("broker said TRACESECRET"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := rcv.Spans()
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want 2", len(spans))
	}
	for _, sp := range spans {
		if sp.StatusCode != "error" || strings.Contains(sp.StatusMsg, "TRACESECRET") || !strings.Contains(sp.StatusMsg, "***") {
			t.Errorf("span %s: status %s %q, want an error with the secret masked", sp.Name, sp.StatusCode, sp.StatusMsg)
		}
	}
}
