package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/redact"
	"github.com/fanout-dev/fanout/sink"
)

// TestOutcomeRedacted: an API that echoes the request's Authorization header
// in its 400 body does not put the token into the outcome the consumer parks
// (fanout-error, fanout-response-excerpt), and the error still classifies.
func TestOutcomeRedacted(t *testing.T) {
	const token = "Bearer PIPELINEBEARERTOKEN"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"bad","echo":"`+r.Header.Get("Authorization")+`"}`)
	}))
	t.Cleanup(srv.Close)
	s, err := sink.New(sink.Config{Name: "profile", URL: srv.URL, Headers: map[string]string{"Authorization": token},
		Attempts: 1, BackoffBase: time.Millisecond, BackoffCap: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	h, err := New(Config{Sink: "profile", Redact: redact.New(token, "PIPELINEBEARERTOKEN").String}, codec(t), nil, HTTPSink(s), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	out := h.Handle(context.Background(), record(t, h.codec, "user.registered", userDoc))
	if out.Verdict != consumer.DeadLetter || out.Status != 400 {
		t.Fatalf("outcome = %+v", out)
	}
	parked := consumer.ParkedRecord("events.profile.dlq", "profile", record(t, h.codec, "user.registered", userDoc), out, time.Now(), nil)
	for _, hd := range parked.Headers {
		if strings.Contains(string(hd.Value), "PIPELINEBEARERTOKEN") {
			t.Errorf("parked header %s holds the token: %q", hd.Key, hd.Value)
		}
	}
	if !strings.Contains(out.Excerpt, `"echo":"***"`) {
		t.Errorf("excerpt = %q, want the echo masked", out.Excerpt)
	}
	if _, ok := errors.AsType[*sink.StatusError](out.Err); !ok {
		t.Errorf("the redacted error lost its *sink.StatusError: %T", out.Err)
	}
}
