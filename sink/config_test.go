package sink

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestNewValidation(t *testing.T) {
	valid := func() Config { return Config{Name: "email", URL: "https://email.example.test/v1/welcome"} }
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // the whole error
	}{
		{"no name", func(c *Config) { c.Name = "" }, `sink "": name: required`},
		{"upper-case name", func(c *Config) { c.Name = "Email" }, `sink "Email": name: must match [a-z0-9_-]+`},
		{"name with dot", func(c *Config) { c.Name = "e.mail" }, `sink "e.mail": name: must match [a-z0-9_-]+`},
		{"method", func(c *Config) { c.Method = "HEAD" }, `sink "email": method: "HEAD" is not one of GET, POST, PUT, PATCH, DELETE`},
		{"no url", func(c *Config) { c.URL = "" }, `sink "email": url: required`},
		{"relative url", func(c *Config) { c.URL = "/v1/welcome" }, `sink "email": url: must be absolute http(s)`},
		{"ftp url", func(c *Config) { c.URL = "ftp://email.example.test/" }, `sink "email": url: must be absolute http(s)`},
		{"no host", func(c *Config) { c.URL = "http:///path" }, `sink "email": url: must be absolute http(s)`},
		{"opaque url", func(c *Config) { c.URL = "http:email.example.test" }, `sink "email": url: must be absolute http(s)`},
		{"templated url", func(c *Config) { c.URL = "https://{{ .Record.host }}/hook" }, `sink "email": url: must not be a template: event data never chooses the destination`},
		{"bad url hides credentials", func(c *Config) { c.URL = "http://user:s3cret@[::1/" }, `sink "email": url: must be absolute http(s)`},
		{"header name with space", func(c *Config) { c.Headers = map[string]string{"X Plan": "a"} }, `sink "email": headers["X Plan"]: not a valid header name`},
		{"empty header name", func(c *Config) { c.Headers = map[string]string{"": "a"} }, `sink "email": headers[""]: not a valid header name`},
		{"host header", func(c *Config) { c.Headers = map[string]string{"host": "evil.test"} }, `sink "email": headers["host"]: may not be set here: set from url`},
		{"content-length", func(c *Config) { c.Headers = map[string]string{"Content-Length": "1"} }, `sink "email": headers["Content-Length"]: may not be set here: set from the body`},
		{"idempotency-key", func(c *Config) { c.Headers = map[string]string{"Idempotency-Key": "{{ .ID }}"} }, `sink "email": headers["Idempotency-Key"]: may not be set here: set from the event id`},
		{"webhook-id", func(c *Config) { c.Headers = map[string]string{"webhook-id": "x"} }, `sink "email": headers["webhook-id"]: may not be set here: set from the event id`},
		{"traceparent", func(c *Config) { c.Headers = map[string]string{"traceparent": "00-x"} }, `sink "email": headers["traceparent"]: may not be set here: set from the trace context`},
		{"content-type", func(c *Config) { c.Headers = map[string]string{"Content-Type": "text/plain"} }, `sink "email": headers["Content-Type"]: may not be set here: use content_type`},
		{"header value with newline", func(c *Config) { c.Headers = map[string]string{"X-A": "a\r\nHost: evil"} }, `sink "email": headers["X-A"]: value holds a control character`},
		{"header template", func(c *Config) { c.Headers = map[string]string{"X-Plan": "{{ .Record.plan"} }, `sink "email": headers["X-Plan"]: template: X-Plan:1: unclosed action`},
		{"header template unknown func", func(c *Config) { c.Headers = map[string]string{"X-Plan": "{{ upper .Record.plan }}"} }, `sink "email": headers["X-Plan"]: template: X-Plan:1: function "upper" not defined`},
		{"duplicate header", func(c *Config) { c.Headers = map[string]string{"X-Plan": "a", "x-plan": "b"} }, `sink "email": headers: X-Plan is given twice (header names are case-insensitive)`},
		{"body template", func(c *Config) { c.Body = `{"id": {{ .ID }` }, `sink "email": body: template: body:1: unexpected "}" in operand`},
		{"get with body", func(c *Config) { c.Method = "get"; c.Body = "x" }, `sink "email": body: a GET request carries no body`},
		{"content type", func(c *Config) { c.ContentType = "json" }, `sink "email": content_type: "json" is not a media type`},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, `sink "email": timeout: must not be negative, got -1s`},
		{"negative backoff base", func(c *Config) { c.BackoffBase = -1 }, `sink "email": backoff_base: must not be negative, got -1ns`},
		{"cap below base", func(c *Config) { c.BackoffBase = time.Second; c.BackoffCap = time.Millisecond }, `sink "email": backoff_cap: 1ms is below backoff_base 1s`},
		{"negative retry after cap", func(c *Config) { c.RetryAfterCap = -time.Second }, `sink "email": retry_after_cap: must not be negative, got -1s`},
		{"negative attempts", func(c *Config) { c.Attempts = -1 }, `sink "email": attempts: must be at least 1, got -1`},
		{"negative max conns", func(c *Config) { c.MaxConns = -2 }, `sink "email": max_conns: must be at least 1, got -2`},
		{"huge excerpt", func(c *Config) { c.MaxResponseBytes = 1 << 20 }, `sink "email": max_response_bytes: must be between 1 and 65536, got 1048576`},
		{"retry 2xx", func(c *Config) { c.RetryStatus = []int{200} }, `sink "email": retry_status: 200 is not a status between 300 and 599`},
		{"permanent 700", func(c *Config) { c.PermanentStatus = []int{700} }, `sink "email": permanent_status: 700 is not a status between 300 and 599`},
		{"both lists", func(c *Config) { c.RetryStatus = []int{409, 503}; c.PermanentStatus = []int{503} }, `sink "email": permanent_status: 503 is also in retry_status`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.modify(&cfg)
			s, err := New(cfg, nil)
			if err == nil {
				s.Close()
				t.Fatalf("New succeeded, want error %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("New error\n got: %s\nwant: %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error leaks the URL's password: %s", err)
			}
		})
	}
}

func TestNewAccepts(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"minimal", Config{Name: "profile", URL: "http://profile.test"}},
		{"lower-case method", Config{Name: "a_b-1", URL: "https://x.test/p?q=1", Method: "patch"}},
		{"credentials and templates", Config{
			Name: "analytics", URL: "https://u:p@x.test/track?key=k",
			Headers:     map[string]string{"Authorization": "Bearer t", "X-Plan": "{{ .Record.plan }}", "User-Agent": "custom"},
			Body:        `{"id": {{ json .ID }}}`,
			ContentType: "application/cloudevents+json; charset=utf-8",
		}},
		{"get without body", Config{Name: "g", URL: "http://x.test", Method: "GET"}},
		{"overrides", Config{Name: "o", URL: "http://x.test", RetryStatus: []int{409}, PermanentStatus: []int{503}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg, nil)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			if s.Name() != tt.cfg.Name {
				t.Errorf("Name() = %q, want %q", s.Name(), tt.cfg.Name)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	s := newTestSink(t, Config{Name: "profile", URL: "https://user:pw@profile.test/users?token=abc#frag"})
	want := Config{
		Name:             "profile",
		Method:           http.MethodPost,
		URL:              "https://profile.test/users", // redacted copy
		ContentType:      "application/json",
		Timeout:          10 * time.Second,
		Attempts:         5,
		BackoffBase:      100 * time.Millisecond,
		BackoffCap:       10 * time.Second,
		RetryAfterCap:    30 * time.Second,
		MaxConns:         64,
		MaxResponseBytes: 4096,
	}
	got := s.cfg
	got.RetryStatus, got.PermanentStatus = nil, nil
	if got.Name != want.Name || got.Method != want.Method || got.URL != want.URL ||
		got.ContentType != want.ContentType || got.Timeout != want.Timeout ||
		got.Attempts != want.Attempts || got.BackoffBase != want.BackoffBase ||
		got.BackoffCap != want.BackoffCap || got.RetryAfterCap != want.RetryAfterCap ||
		got.MaxConns != want.MaxConns || got.MaxResponseBytes != want.MaxResponseBytes {
		t.Errorf("defaults\n got: %+v\nwant: %+v", got, want)
	}
	if s.url != "https://user:pw@profile.test/users?token=abc" {
		t.Errorf("request URL = %q, want credentials and query kept, fragment dropped", s.url)
	}
	tr := s.transport
	if tr.MaxConnsPerHost != 64 || tr.MaxIdleConnsPerHost != 64 || tr.MaxIdleConns != 64 {
		t.Errorf("transport pool = %d/%d/%d, want 64 each", tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost, tr.MaxIdleConns)
	}
	if !tr.ForceAttemptHTTP2 || tr.IdleConnTimeout != idleConnTimeout || tr.Proxy == nil {
		t.Errorf("transport: ForceAttemptHTTP2=%v IdleConnTimeout=%v proxy set=%v", tr.ForceAttemptHTTP2, tr.IdleConnTimeout, tr.Proxy != nil)
	}
	if tr == http.DefaultTransport {
		t.Error("sink shares http.DefaultTransport")
	}

	sized := newTestSink(t, Config{Name: "big", URL: "http://x.test", MaxConns: 300, BackoffBase: 20 * time.Second})
	if sized.transport.MaxConnsPerHost != 300 || sized.transport.MaxIdleConns != 300 {
		t.Errorf("MaxConns 300: transport pool %d/%d", sized.transport.MaxConnsPerHost, sized.transport.MaxIdleConns)
	}
	if sized.cfg.BackoffCap != 20*time.Second {
		t.Errorf("BackoffCap with base 20s = %v, want raised to the base", sized.cfg.BackoffCap)
	}
}

func TestReservedHeadersCanonical(t *testing.T) {
	for k := range reserved {
		if http.CanonicalHeaderKey(k) != k {
			t.Errorf("reserved header %q is not canonical; lookups would miss it", k)
		}
	}
}

// TemplateErrors reports every template that does not parse, each under its
// own field, and nothing for static values or good templates.
func TestTemplateErrors(t *testing.T) {
	errs := TemplateErrors(Config{
		Headers: map[string]string{"X-B": "{{ .Record.b ", "X-A": "{{ nosuch }}", "X-Ok": "{{ .ID }}", "X-Static": "plain"},
		Body:    "{{ if }}",
	})
	var got []string
	for _, e := range errs {
		got = append(got, e.Field+": "+e.Err.Error())
	}
	want := []string{
		`headers.X-A: template: X-A:1: function "nosuch" not defined`,
		"headers.X-B: template: X-B:1: unclosed action",
		"body: template: body:1: missing value for if",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if errs := TemplateErrors(Config{Headers: map[string]string{"X": "{{ .ID }}"}, Body: `{"id": {{ json .ID }}}`}); len(errs) != 0 {
		t.Errorf("good templates: %v", errs)
	}
}
