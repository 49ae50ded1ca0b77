package pipeline

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/sink"
)

// handlerFor builds a handler over a sink made from sc, delivering to url.
func handlerFor(t *testing.T, sc sink.Config, url string) *Handler {
	t.Helper()
	sc.Name, sc.URL, sc.Attempts = "profile", url, 1
	s, err := sink.New(sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	h, err := New(Config{Sink: "profile"}, codec(t), dedupe.NewMemory(), s, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Record headers reach the sink without fanout's park headers, so a record
// back from a retry tier renders as it did the first time; the park reasons
// say why an event cannot be sent.
func TestRecordHeadersAndRenderReasons(t *testing.T) {
	var mu sync.Mutex
	var got []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
		if r.Header.Get("Authorization") == "Bearer expired" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	c := codec(t)

	h := handlerFor(t, sink.Config{PropagateHeaders: []string{"authorization", "x-tenant-id", "fanout-sink"},
		Headers: map[string]string{"X-Hops": `{{ index .Headers "fanout-attempts" }}|{{ index .Headers "x-tenant-id" }}`}}, srv.URL)
	rec := record(t, c, "user.registered", userDoc)
	rec.Headers = []kgo.RecordHeader{{Key: "x-tenant-id", Value: []byte("t-9")}, {Key: "authorization", Value: []byte("Bearer ok")},
		{Key: consumer.HeaderAttempts, Value: []byte("3")}, {Key: consumer.HeaderSink, Value: []byte("profile")}, {Key: consumer.HeaderTier, Value: []byte("1")}}
	if out := h.Handle(context.Background(), rec); out.Verdict != consumer.Done {
		t.Fatalf("outcome %+v", out)
	}
	mu.Lock()
	hd := got[0]
	mu.Unlock()
	if hd.Get("X-Tenant-Id") != "t-9" || hd.Get("Authorization") != "Bearer ok" || hd.Get("Fanout-Sink") != "" || hd.Get("X-Hops") != "|t-9" {
		t.Fatalf("request headers %v: want the record's own headers, none of fanout's", hd)
	}

	expired := record(t, c, "user.registered", userDoc)
	expired.Headers = []kgo.RecordHeader{{Key: "authorization", Value: []byte("Bearer expired")}}
	if out := h.Handle(context.Background(), expired); out.Verdict != consumer.DeadLetter || out.Reason != ReasonPropagatedAuth || out.Status != 401 {
		t.Fatalf("expired forwarded token: outcome %+v, want dead-letter/%q", out, ReasonPropagatedAuth)
	}

	inj := handlerFor(t, sink.Config{Body: `{"name": "{{ .Record.name }}", "admin": false}`}, srv.URL)
	bad := record(t, c, "user.registered", `{"id":"8f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a","email":"a@example.com","name":"x\", \"admin\": true, \"y\": \"","plan":"FREE","created_at":"2026-11-27T10:00:00.000Z","referrer":null,"metadata":{}}`)
	if out := inj.Handle(context.Background(), bad); out.Verdict != consumer.DeadLetter || out.Reason != ReasonRenderFailed {
		t.Fatalf("injection: outcome %+v, want dead-letter/%q", out, ReasonRenderFailed)
	}
}
