package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/schemas"
	"github.com/fanout-dev/fanout/sink"
)

// registryCodec returns a codec over a real HTTP server answering the
// Confluent endpoints for schema id 1 (user.registered's schema),
// registered under subjects; with subjects nil the server predates
// GET /schemas/ids/{id}/versions (a bare 404).
func registryCodec(t *testing.T, subjects []string) *schemas.Codec {
	t.Helper()
	avsc, err := fs.ReadFile(schemas.Builtin(), "user.registered.avsc")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /schemas/ids/1", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"schema": string(avsc)})
	})
	mux.HandleFunc("GET /schemas/ids/1/versions", func(w http.ResponseWriter, r *http.Request) {
		if subjects == nil {
			http.NotFound(w, r)
			return
		}
		var out []map[string]any
		for _, s := range subjects {
			out = append(out, map[string]any{"subject": s, "version": 1})
		}
		json.NewEncoder(w).Encode(out)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return schemas.NewCodec(schemas.NewHTTPRegistry(srv.URL, srv.Client())).WithEventTypes(schemas.EventTypes{Topic: "events"})
}

// typedHandler is a handler of a sink with types over codec whose API
// records each request's X-Fanout-Event-Type; the log goes to logs.
func typedHandler(t *testing.T, codec *schemas.Codec, types []string, logs io.Writer) (*Handler, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, r.Header.Get("X-Fanout-Event-Type"))
		mu.Unlock()
	}))
	t.Cleanup(api.Close)
	s, err := sink.New(sink.Config{Name: "profile", URL: api.URL, Attempts: 1, BackoffBase: time.Millisecond, BackoffCap: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	h, err := New(Config{Sink: "profile", Types: types}, codec, nil, HTTPSink(s), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return h, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
}

// TestRegistryTypesFilter: with a Schema Registry, a sink with types gets
// the events of its type, with X-Fanout-Event-Type set; before the type was
// learnt from the registry it skipped every event and committed past it.
func TestRegistryTypesFilter(t *testing.T) {
	value := record(t, codec(t), "user.registered", userDoc).Value // schema id 1
	h, requests := typedHandler(t, registryCodec(t, []string{"fanout.example.UserRegistered", "events-value"}), []string{"events-value"}, io.Discard)
	for i := range 3 {
		if out := h.Handle(context.Background(), &kgo.Record{Topic: "events", Offset: int64(i), Value: value}); out.Verdict != consumer.Done {
			t.Fatalf("outcome %+v", out)
		}
	}
	st := h.Stats()
	if st.Delivered != 3 || st.Skipped != 0 {
		t.Fatalf("delivered=%d skipped=%d, want 3 delivered", st.Delivered, st.Skipped)
	}
	if got := requests(); strings.Join(got, ",") != "events-value,events-value,events-value" {
		t.Errorf("X-Fanout-Event-Type %q, want events-value", got)
	}
}

// TestUntypedSkipWarns: an event whose type the registry cannot tell is
// skipped by a sink with types, and the first such skip is logged at warn
// with the schema id (once), so the loss is never silent.
func TestUntypedSkipWarns(t *testing.T) {
	value := record(t, codec(t), "user.registered", userDoc).Value
	var logs bytes.Buffer
	h, requests := typedHandler(t, registryCodec(t, nil), []string{"events-value"}, &logs)
	for i := range 3 {
		if out := h.Handle(context.Background(), &kgo.Record{Topic: "events", Offset: int64(i), Value: value}); out.Verdict != consumer.Done {
			t.Fatalf("outcome %+v", out)
		}
	}
	if st := h.Stats(); st.Skipped != 3 || len(requests()) != 0 {
		t.Fatalf("skipped=%d requests=%d, want 3 skipped", st.Skipped, len(requests()))
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "type is unknown") || !strings.Contains(logs.String(), "schema_id=1") {
		t.Errorf("want one warning naming the schema id, got %d:\n%s", n, logs.String())
	}
	// A sink without types delivers them, without the header.
	h, requests = typedHandler(t, registryCodec(t, nil), nil, io.Discard)
	if out := h.Handle(context.Background(), &kgo.Record{Topic: "events", Value: value}); out.Verdict != consumer.Done || len(requests()) != 1 || requests()[0] != "" {
		t.Errorf("no types: %+v %q", out, requests())
	}
}
