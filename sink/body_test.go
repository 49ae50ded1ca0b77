package sink

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// The injection: a name that closes its string and adds a field.
const injectedName = `x", "admin": true, "y": "`

func TestTemplatedJSONBodyMustBeValid(t *testing.T) {
	rec := newRecorder(t)
	s := newTestSink(t, Config{URL: rec.srv.URL, Body: `{"name": "{{ .Record.name }}", "admin": false}`})
	res := s.Deliver(context.Background(), Event{ID: "e1", Record: map[string]any{"name": injectedName}})
	if res.Class != Permanent || !errors.Is(res.Err, ErrRender) {
		t.Fatalf("got %v %v, want a permanent render error", res.Class, res.Err)
	}
	for _, want := range []string{`the name "admin" twice (at byte 38)`, "json func"} {
		if !strings.Contains(res.Err.Error(), want) {
			t.Errorf("error %q does not say %q", res.Err, want)
		}
	}
	// Data that breaks the JSON itself.
	res = s.Deliver(context.Background(), Event{ID: "e3", Record: map[string]any{"name": `x"y`}})
	if res.Class != Permanent || !errors.Is(res.Err, ErrRender) || !strings.Contains(res.Err.Error(), "not valid JSON (invalid character 'y' after object key:value pair, at byte 13)") {
		t.Fatalf("got %v %v, want a permanent render error naming the byte", res.Class, res.Err)
	}
	if n := rec.hits.Load(); n != 0 {
		t.Fatalf("the API got %d requests for unrenderable events", n)
	}
	// A harmless name renders and is sent.
	if res := s.Deliver(context.Background(), Event{ID: "e2", Record: map[string]any{"name": "Ann"}}); res.Class != Done {
		t.Fatalf("harmless name: %v %v", res.Class, res.Err)
	}
}

func TestJSONFuncEscapesInjection(t *testing.T) {
	rec := newRecorder(t)
	s := newTestSink(t, Config{URL: rec.srv.URL, Body: `{"name": {{ json .Record.name }}, "admin": false}`})
	if res := s.Deliver(context.Background(), Event{ID: "e1", Record: map[string]any{"name": injectedName}}); res.Class != Done {
		t.Fatalf("got %v %v", res.Class, res.Err)
	}
	var got map[string]any
	if err := json.Unmarshal(rec.next(t).body, &got); err != nil {
		t.Fatal(err)
	}
	if got["name"] != injectedName || got["admin"] != false || len(got) != 2 {
		t.Fatalf("body decoded to %v", got)
	}
}

func TestNonJSONContentTypeIsNotChecked(t *testing.T) {
	rec := newRecorder(t)
	s := newTestSink(t, Config{URL: rec.srv.URL, ContentType: "text/plain", Body: `name={{ .Record.name }}`})
	if res := s.Deliver(context.Background(), Event{ID: "e1", Record: map[string]any{"name": injectedName}}); res.Class != Done {
		t.Fatalf("got %v %v", res.Class, res.Err)
	}
	if b := string(rec.next(t).body); b != "name="+injectedName {
		t.Fatalf("body %q", b)
	}
}

func TestMaxBodyBytes(t *testing.T) {
	rec := newRecorder(t)
	s := newTestSink(t, Config{URL: rec.srv.URL, MaxBodyBytes: 64})
	big := Event{ID: "big", Body: []byte(`{"pad":"` + strings.Repeat("a", 64) + `"}`)}
	res := s.Deliver(context.Background(), big)
	if res.Class != Permanent || !errors.Is(res.Err, ErrRender) || !strings.Contains(res.Err.Error(), "exceeds max_body_bytes 64") {
		t.Fatalf("got %v %v", res.Class, res.Err)
	}
	if res := s.Deliver(context.Background(), Event{ID: "small", Body: []byte(`{}`)}); res.Class != Done {
		t.Fatalf("small: %v %v", res.Class, res.Err)
	}
	if _, err := New(Config{Name: "x", URL: rec.srv.URL, MaxBodyBytes: MaxBodyBytesLimit + 1}, nil); err == nil || !strings.Contains(err.Error(), "max_body_bytes") {
		t.Fatalf("over the limit: %v", err)
	}
}

func TestPropagateHeaders(t *testing.T) {
	rec := newRecorder(t)
	s := newTestSink(t, Config{URL: rec.srv.URL, PropagateHeaders: []string{"authorization", "X-Tenant-Id"},
		Headers: map[string]string{"X-Echo": `{{ index .Headers "x-tenant-id" }}`}})
	ev := Event{ID: "e1", Body: []byte(`{}`), Headers: []Header{
		{"x-tenant-id", []byte("t-1")}, {"Authorization", []byte("Bearer abc")}, {"x-internal", []byte("no")}, {"x-tenant-id", []byte("t-2")},
	}}
	if res := s.Deliver(context.Background(), ev); res.Class != Done {
		t.Fatalf("got %v %v", res.Class, res.Err)
	}
	h := rec.next(t).header
	if got := h.Values("X-Tenant-Id"); strings.Join(got, ",") != "t-1,t-2" {
		t.Errorf("X-Tenant-Id %q, want every value in record order", got)
	}
	if got := h.Get("Authorization"); got != "Bearer abc" {
		t.Errorf("Authorization %q", got)
	}
	if got := h.Get("X-Internal"); got != "" {
		t.Errorf("a header not on the list arrived: %q", got)
	}
	if got := h.Get("X-Echo"); got != "t-2" {
		t.Errorf("template read .Headers as %q, want the last value", got)
	}
	// A value that is not a valid field value is the event's fault.
	bad := Event{ID: "e2", Body: []byte(`{}`), Headers: []Header{{"x-tenant-id", []byte("a\r\nX-Evil: 1")}}}
	if res := s.Deliver(context.Background(), bad); res.Class != Permanent || !errors.Is(res.Err, ErrRender) {
		t.Fatalf("CRLF value: %v %v", res.Class, res.Err)
	}
}

func TestPropagatedAuthorizationRejected(t *testing.T) {
	rec := newRecorder(t, 401)
	s := newTestSink(t, Config{URL: rec.srv.URL, PropagateHeaders: []string{"authorization"}})
	ev := Event{ID: "e1", Body: []byte(`{}`), Headers: []Header{{"authorization", []byte("Bearer expired")}}}
	res := s.Deliver(context.Background(), ev)
	if res.Class != Permanent || !errors.Is(res.Err, ErrPropagatedAuthRejected) {
		t.Fatalf("got %v %v", res.Class, res.Err)
	}
	if _, ok := errors.AsType[*StatusError](res.Err); !ok {
		t.Fatalf("%v does not wrap the StatusError", res.Err)
	}
	// Without a forwarded authorization, a 401 is an ordinary refusal.
	res = s.Deliver(context.Background(), Event{ID: "e2", Body: []byte(`{}`)})
	if res.Class != Permanent || errors.Is(res.Err, ErrPropagatedAuthRejected) {
		t.Fatalf("no forwarded token: %v %v", res.Class, res.Err)
	}
}

func TestPropagateHeadersConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"reserved":   {Config{PropagateHeaders: []string{"idempotency-key"}}, "propagate_headers[0]: Idempotency-Key is set by the sink"},
		"signature":  {Config{PropagateHeaders: []string{"webhook-signature"}}, "is set by the sink"},
		"invalid":    {Config{PropagateHeaders: []string{"x y"}}, `"x y" is not a valid header name`},
		"twice":      {Config{PropagateHeaders: []string{"x-a", "X-A"}}, "propagate_headers[1]: X-A is listed twice"},
		"configured": {Config{PropagateHeaders: []string{"x-a"}, Headers: map[string]string{"X-A": "1"}}, "also in headers"},
		"with batch": {Config{PropagateHeaders: []string{"x-a"}, Batch: BatchConfig{MaxEvents: 10}}, "one set of headers"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.cfg.Name, tc.cfg.URL = "s", "http://127.0.0.1:1/"
			_, err := New(tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
