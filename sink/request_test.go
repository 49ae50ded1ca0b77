package sink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"

	"github.com/fanout-dev/fanout/internal/jsontext"
	"github.com/fanout-dev/fanout/tracing"
)

var userRegistered = Event{
	ID:   "evt-0001",
	Type: "user.registered",
	Body: []byte(`{"id":"evt-0001","email":"ada@example.test","plan":"pro","user":{"name":"Ada"}}`),
	Record: map[string]any{
		"id":    "evt-0001",
		"email": "ada@example.test",
		"plan":  "pro",
		"user":  map[string]any{"name": "Ada"},
	},
}

func TestRequest(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config // URL is the path and query appended to the server's URL
		ev      Event
		method  string
		uri     string
		headers map[string]string // "" means must be absent
		body    string
	}{
		{
			name:   "defaults",
			cfg:    Config{URL: "/v1/profiles"},
			ev:     userRegistered,
			method: "POST", uri: "/v1/profiles",
			headers: map[string]string{
				"Content-Type":        "application/json",
				"Idempotency-Key":     "evt-0001",
				"Webhook-Id":          "evt-0001",
				"User-Agent":          "fanout/0.1",
				"X-Fanout-Event-Type": "user.registered",
				"Content-Length":      strconv.Itoa(len(userRegistered.Body)),
			},
			body: string(userRegistered.Body),
		},
		{
			name: "static and templated headers, query kept",
			cfg: Config{URL: "/hook?tenant=acme", Method: "put", Headers: map[string]string{
				"Authorization": "Bearer static-token",
				"X-Plan":        "{{ .Record.plan }}",
				"x-user":        "{{ .Record.user.name }} <{{ .Record.email }}>",
				"X-Missing":     "[{{ .Record.nope }}]",
				"X-Event":       "{{ .Type }}/{{ .ID }}",
				"User-Agent":    "email-sink/2",
			}},
			ev:     userRegistered,
			method: "PUT", uri: "/hook?tenant=acme",
			headers: map[string]string{
				"Authorization": "Bearer static-token",
				"X-Plan":        "pro",
				"X-User":        "Ada <ada@example.test>",
				"X-Missing":     "[]",
				"X-Event":       "user.registered/evt-0001",
				"User-Agent":    "email-sink/2",
			},
			body: string(userRegistered.Body),
		},
		{
			name: "body template and content type",
			cfg: Config{URL: "/send", Method: "PATCH", ContentType: "application/vnd.email+json",
				Body: `{"to":{{ json .Record.email }},"name":{{ json .Record.user.name }},"key":"{{ .ID }}","missing":"{{ .Record.nope }}","raw":{{ .JSON }}}`},
			ev:     userRegistered,
			method: "PATCH", uri: "/send",
			headers: map[string]string{"Content-Type": "application/vnd.email+json"},
			body:    `{"to":"ada@example.test","name":"Ada","key":"evt-0001","missing":"","raw":` + string(userRegistered.Body) + `}`,
		},
		{
			name:   "get carries no body",
			cfg:    Config{URL: "/ping?id=1", Method: "GET"},
			ev:     userRegistered,
			method: "GET", uri: "/ping?id=1",
			headers: map[string]string{"Content-Type": "", "Idempotency-Key": "evt-0001"},
			body:    "",
		},
		{
			name:   "delete with body",
			cfg:    Config{URL: "/users/1", Method: "DELETE"},
			ev:     userRegistered,
			method: "DELETE", uri: "/users/1",
			body: string(userRegistered.Body),
		},
		{
			name:   "no type, record marshalled when body is nil",
			cfg:    Config{URL: "/"},
			ev:     Event{ID: "k", Record: map[string]any{"b": 2, "a": "x"}},
			method: "POST", uri: "/",
			headers: map[string]string{"X-Fanout-Event-Type": ""},
			body:    `{"a":"x","b":2}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t)
			cfg := tt.cfg
			cfg.URL = rec.srv.URL + cfg.URL
			s := newTestSink(t, cfg)
			res := s.Deliver(context.Background(), tt.ev)
			if res.Class != Done || res.Err != nil || res.Attempts != 1 || res.Status != http.StatusNoContent {
				t.Fatalf("Deliver = %+v, want Done in 1 attempt with 204", res)
			}
			got := rec.next(t)
			if got.method != tt.method || got.uri != tt.uri {
				t.Errorf("request line = %s %s, want %s %s", got.method, got.uri, tt.method, tt.uri)
			}
			for k, want := range tt.headers {
				if vs, ok := got.header[http.CanonicalHeaderKey(k)]; want == "" && ok {
					t.Errorf("header %s = %q, want absent", k, vs)
				} else if g := got.header.Get(k); g != want {
					t.Errorf("header %s = %q, want %q", k, g, want)
				}
			}
			if string(got.body) != tt.body {
				t.Errorf("body\n got: %s\nwant: %s", got.body, tt.body)
			}
		})
	}
}

func TestRequestBasicAuthFromURL(t *testing.T) {
	rec := newRecorder(t)
	s := newTestSink(t, Config{URL: strings.Replace(rec.srv.URL, "http://", "http://svc:p%40ss@", 1) + "/x"})
	if res := s.Deliver(context.Background(), userRegistered); res.Class != Done {
		t.Fatalf("Deliver = %+v", res)
	}
	got := rec.next(t)
	if !got.hasBA || got.user != "svc" || got.pass != "p@ss" {
		t.Errorf("basic auth = %v %q %q, want svc p@ss", got.hasBA, got.user, got.pass)
	}
}

func TestRequestTraceparent(t *testing.T) {
	tracing.Setup()
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, _ := trace.ParseTraceState("vendor=abc")
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	})
	tests := []struct {
		name            string
		ctx             context.Context
		wantTraceparent string
		wantTracestate  string
	}{
		{"span context", trace.ContextWithRemoteSpanContext(context.Background(), sc),
			"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=abc"},
		{"no span context", context.Background(), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t)
			s := newTestSink(t, Config{URL: rec.srv.URL})
			if res := s.Deliver(tt.ctx, userRegistered); res.Class != Done {
				t.Fatalf("Deliver = %+v", res)
			}
			got := rec.next(t)
			if g := got.header.Get("Traceparent"); g != tt.wantTraceparent {
				t.Errorf("traceparent = %q, want %q", g, tt.wantTraceparent)
			}
			if g := got.header.Get("Tracestate"); g != tt.wantTracestate {
				t.Errorf("tracestate = %q, want %q", g, tt.wantTracestate)
			}
			remote := trace.SpanContextFromContext(tracing.ExtractHTTP(context.Background(), got.header))
			if tt.wantTraceparent != "" && (remote.TraceID() != traceID || remote.SpanID() != spanID || !remote.IsSampled()) {
				t.Errorf("server extracted %v/%v, want %v/%v", remote.TraceID(), remote.SpanID(), traceID, spanID)
			}
		})
	}
}

// TestRender covers the template rules: missing keys and nulls render empty,
// json marshals without HTML escaping, actions that declare print nothing.
func TestRender(t *testing.T) {
	record := map[string]any{
		"name":  "Ada <ada@example.test>",
		"age":   36,
		"null":  nil,
		"user":  nil,
		"tags":  []any{"a", nil, map[string]any{"k": nil, "v": 1}},
		"prefs": map[string]any{"lang": "en", "tz": nil},
	}
	ev := Event{ID: "id-1", Type: "user.registered", Body: []byte(`{"x":1}`), Record: record}
	tests := []struct {
		name, body, want string
	}{
		{"field", `{{ .Record.name }}`, `Ada <ada@example.test>`},
		{"number", `{{ .Record.age }}`, `36`},
		{"missing key", `[{{ .Record.nope }}]`, `[]`},
		{"null", `[{{ .Record.null }}]`, `[]`},
		{"missing intermediate", `[{{ .Record.nope.deeper }}]`, `[]`},
		{"null intermediate", `[{{ .Record.user.email }}]`, `[]`},
		{"null in nested map", `[{{ .Record.prefs.tz }}|{{ .Record.prefs.lang }}]`, `[|en]`},
		{"json", `{{ json .Record.name }}`, `"Ada <ada@example.test>"`},
		{"json pipe", `{{ .Record.prefs | json }}`, `{"lang":"en","tz":null}`},
		{"json missing", `{{ json .Record.nope }}`, `null`},
		{"JSON field", `{{ .JSON }}`, `{"x":1}`},
		{"id and type", `{{ .ID }} {{ .Type }}`, `id-1 user.registered`},
		{"range keeps nil elements", `{{ range $i, $t := .Record.tags }}{{ $i }}={{ $t }};{{ end }}`, `0=a;1=;2=map[k: v:1];`},
		{"declaration prints nothing", `{{ $n := .Record.name }}<{{ $n }}>`, `<Ada <ada@example.test>>`},
		{"with on null", `{{ with .Record.user }}{{ .email }}{{ else }}none{{ end }}`, `none`},
		{"if on missing", `{{ if .Record.nope }}yes{{ else }}no{{ end }}`, `no`},
		{"define and template", `{{ define "n" }}<{{ .nope }}>{{ end }}{{ template "n" .Record }}`, `<>`},
		{"printf of null", `{{ printf "[%v]" .Record.null }}`, `[]`},
		{"json of whole record keeps nulls", `{{ json .Record.tags }}`, `["a",null,{"k":null,"v":1}]`},
		{"eq on a field", `{{ if eq .Record.prefs.lang "en" }}english{{ end }}`, `english`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// text/plain: these test the template language; a JSON
			// content_type also checks the output (body_test.go).
			s := newTestSink(t, Config{URL: "http://x.test", ContentType: "text/plain", Body: tt.body, Headers: map[string]string{"X-T": tt.body}})
			h, body, err := s.render(ev)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if string(body) != tt.want {
				t.Errorf("body = %q, want %q", body, tt.want)
			}
			if g := h.Get("X-T"); g != strings.TrimSpace(tt.want) {
				t.Errorf("header = %q, want %q", g, tt.want)
			}
		})
	}
	// The caller's record is not modified.
	if record["null"] != nil || record["prefs"].(map[string]any)["tz"] != nil {
		t.Error("render modified the caller's record")
	}
}

func TestNullify(t *testing.T) {
	clean := map[string]any{"a": 1, "b": map[string]any{"c": "d"}, "l": []any{"x", 2}}
	if got := nullify(clean); reflect.ValueOf(got).Pointer() != reflect.ValueOf(clean).Pointer() {
		t.Error("nullify copied a map without nils")
	}
	dirty := map[string]any{"a": 1, "b": map[string]any{"c": nil}, "l": []any{nil}}
	want := map[string]any{"a": 1, "b": map[string]any{"c": null(nil)}, "l": []any{null(nil)}}
	if got := nullify(dirty); !reflect.DeepEqual(got, want) {
		t.Errorf("nullify = %#v, want %#v", got, want)
	}
	if dirty["b"].(map[string]any)["c"] != nil || dirty["l"].([]any)[0] != nil {
		t.Error("nullify modified its argument")
	}
}

func TestRenderErrorsArePermanent(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		ev      Event
		wantErr string
	}{
		{"body template fails", Config{Body: `{{ .Record.name.first }}`},
			Event{ID: "1", Record: map[string]any{"name": "Ada"}},
			`render request: body: template: body:1:10: executing "body" at <.Record.name.first>: can't evaluate field first in type interface {}`},
		{"json of unsupported value", Config{Body: `{{ json .Record.score }}`},
			Event{ID: "1", Body: []byte(`{}`), Record: map[string]any{"score": math.Inf(1)}},
			`render request: body: template: body:1:3: executing "body" at <json .Record.score>: error calling json: json: unsupported value: +Inf`},
		{"header renders a newline", Config{Headers: map[string]string{"X-Name": "{{ .Record.name }}"}},
			Event{ID: "1", Record: map[string]any{"name": "Ada\r\nX-Admin: true"}},
			`render request: header X-Name: rendered value holds a control character`},
		{"no id", Config{}, Event{Body: []byte(`{}`)}, `render request: event has no id`},
		{"type with newline", Config{}, Event{ID: "1", Type: "a\nb", Body: []byte(`{}`)}, `render request: event type holds a control character`},
		{"unmarshalable record", Config{}, Event{ID: "1", Record: map[string]any{"f": func() {}}},
			`render request: marshal record: json: unsupported type: func()`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t)
			cfg := tt.cfg
			cfg.URL = rec.srv.URL
			s := newTestSink(t, cfg, WithSleep(noWait))
			res := s.Deliver(context.Background(), tt.ev)
			if res.Class != Permanent || res.Attempts != 0 || res.Status != 0 {
				t.Errorf("Deliver = %+v, want Permanent after 0 attempts", res)
			}
			if !errors.Is(res.Err, ErrRender) {
				t.Errorf("error %v does not wrap ErrRender", res.Err)
			}
			if res.Err == nil || res.Err.Error() != tt.wantErr {
				t.Errorf("error\n got: %v\nwant: %s", res.Err, tt.wantErr)
			}
			if n := rec.hits.Load(); n != 0 {
				t.Errorf("server got %d requests, want none", n)
			}
		})
	}
}

// An id a header cannot carry (a control character, CR/LF above all, or
// invalid UTF-8) goes as its digest, the same on every attempt; any other id
// goes as is.
func TestHeaderIDIsSafe(t *testing.T) {
	for _, tt := range []struct{ name, id, want string }{
		{"plain", "evt-1", "evt-1"},
		{"emoji", "evt-😀", "evt-😀"},
		{"CR LF", "1\r\nX-Evil: yes", "fanout-sha256-35e02f29958e822661d9dc3e896fdc06f75ae34e6beaa0131b45cee3c7cc8f26"},
		{"invalid UTF-8", "a\xffb", ""},
		{"NUL", "a\x00b", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, 503, 204)
			s := newTestSink(t, Config{URL: rec.srv.URL, Attempts: 2}, WithSleep(noWait))
			res := s.Deliver(context.Background(), Event{ID: tt.id, Body: []byte(`{}`)})
			if res.Class != Done || res.Attempts != 2 {
				t.Fatalf("Deliver = %+v, want done after 2 attempts", res)
			}
			var keys []string
			for range 2 {
				c := rec.next(t)
				k, w := c.header.Get("Idempotency-Key"), c.header.Get("Webhook-Id")
				if k != w || c.header.Get("X-Evil") != "" {
					t.Errorf("Idempotency-Key %q, webhook-id %q, X-Evil %q", k, w, c.header.Get("X-Evil"))
				}
				keys = append(keys, k)
			}
			if keys[0] != keys[1] {
				t.Errorf("keys %q: a retry must carry the same key", keys)
			}
			want := tt.want
			if want == "" {
				sum := sha256.Sum256([]byte(tt.id))
				want = "fanout-sha256-" + hex.EncodeToString(sum[:])
			}
			if keys[0] != want || !utf8.ValidString(keys[0]) {
				t.Errorf("key %q, want %q", keys[0], want)
			}
		})
	}
}

// The json func must produce the same JSON as encoding/json, less HTML escaping.
func TestJSONFunc(t *testing.T) {
	v := map[string]any{"html": "<b>&</b>", "n": 1.5, "l": []any{true, nil}}
	got, err := jsontext.Marshal(v) // the json template func
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal([]byte(got), &back); err != nil || !reflect.DeepEqual(back, v) {
		t.Errorf("json round trip = %v (%v), want %v", back, err, v)
	}
	if !strings.Contains(got, "<b>&</b>") {
		t.Errorf("json escaped HTML: %s", got)
	}
}
