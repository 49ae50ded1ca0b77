package sink

import (
	"cmp"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config describes one downstream API. Zero values take the stated defaults.
type Config struct {
	// Name identifies the sink in logs, metrics and errors. Required; it must
	// match [a-z0-9_-]+.
	Name string
	// Method is the HTTP method. Default POST; one of GET, POST, PUT, PATCH,
	// DELETE (case-insensitive). A GET carries no body and no Content-Type.
	Method string
	// URL is the absolute http(s) URL every event is sent to. Required. It is
	// never a template: event data never chooses the host. Userinfo is allowed
	// (sent as basic auth) and is never logged.
	URL string
	// Headers are extra request headers. A value containing "{{" is a
	// text/template rendered per event (see Body for the data), e.g.
	// "X-Plan": "{{ .Record.plan }}"; others are static. Default none. Host,
	// Content-Length, Transfer-Encoding, Connection, Content-Type (use
	// ContentType), Idempotency-Key, webhook-id, traceparent and tracestate
	// are set by the sink and may not be set here. User-Agent may be
	// overridden.
	Headers map[string]string
	// Body is a text/template for the request body, rendered with the data
	// {ID, Type, Record, JSON}: the event's id and type, its record as plain
	// values and its JSON as a string. The func "json" marshals a value.
	// Missing keys render empty. Default "": the event's JSON as is.
	Body string
	// ContentType is the request's Content-Type. Default application/json.
	ContentType string
	// Timeout bounds one attempt, from dialling to the end of the response
	// body. Default 10s.
	Timeout time.Duration
	// Attempts is the number of in-line attempts in total. Default 5; 1 means
	// no in-line retry.
	Attempts int
	// BackoffBase is the ceiling of the first backoff wait; the ceiling
	// doubles per attempt and the wait is drawn uniformly below it (full
	// jitter). Default 100ms.
	BackoffBase time.Duration
	// BackoffCap caps the backoff ceiling. Default 10s; not below BackoffBase.
	BackoffCap time.Duration
	// RetryAfterCap is the longest Retry-After honoured in-line; a longer one
	// is waited for only this long (Result.RetryAfter still reports it).
	// Default 30s.
	RetryAfterCap time.Duration
	// RetryStatus lists extra statuses (300–599) to treat as retryable, e.g.
	// 409. Default none.
	RetryStatus []int
	// PermanentStatus lists statuses (300–599) to treat as permanent even
	// where the default rules say retryable, e.g. 503 for an API that means
	// it. Default none. A status may not be in both lists.
	PermanentStatus []int
	// MaxConns sizes the sink's pooled transport (MaxConnsPerHost and
	// MaxIdleConnsPerHost); pass the sink's max_in_flight. Default 64.
	MaxConns int
	// MaxResponseBytes is how much of a failed response's body is kept as the
	// error excerpt (for DLQ headers). Default 4096, at most 65536. The rest
	// is drained up to 64 KiB so the connection can be reused; a longer body
	// drops the connection.
	MaxResponseBytes int64
	// Breaker, when not nil, is the sink's circuit breaker: callers ask it
	// before each record (Sink.Breaker) and stop sending while it is open.
	// Default nil (none).
	Breaker *BreakerConfig
	// RateLimit bounds the attempts per second sent to the API, retries
	// included (with Batch, per event: a batch of 10 takes 10 tokens); Rate 0 (the default) is unlimited. A 429 or 503 with
	// Retry-After also pauses the whole sink for that long (capped by
	// RetryAfterCap), not only the one event.
	RateLimit LimiterConfig
	// Batch, when MaxEvents > 1, sends concurrent deliveries together as one
	// CloudEvents batch request (see BatchConfig). Default off.
	Batch BatchConfig
	// PropagateHeaders names the record headers (Event.Headers) forwarded
	// as request headers, matched case-insensitively: an allow-list, nothing
	// is forwarded by default. A record header's every value is sent; a
	// value that is not a valid field value is a render error. Not with
	// Batch (one request, many records), not a header the sink sets, not a
	// configured header, and not Authorization together with Auth.
	PropagateHeaders []string
	// Auth is the sink's own credentials (see AuthConfig). Default none.
	Auth AuthConfig
	// Signing, when it has secrets, signs every request (see SigningConfig).
	Signing SigningConfig
	// TLS is the sink's TLS to an https URL: a private CA, mutual TLS.
	// Default: the system roots, no client certificate.
	TLS TLSConfig
	// MaxBodyBytes caps a rendered request body (the event's JSON or the
	// body template's output); a larger one is a render error. Default 8 MiB,
	// at most 64 MiB.
	MaxBodyBytes int
}

// Defaults.
const (
	DefaultMethod           = http.MethodPost
	DefaultContentType      = "application/json"
	DefaultTimeout          = 10 * time.Second
	DefaultAttempts         = 5
	DefaultBackoffBase      = 100 * time.Millisecond
	DefaultBackoffCap       = 10 * time.Second
	DefaultRetryAfterCap    = 30 * time.Second
	DefaultMaxConns         = 64
	DefaultMaxResponseBytes = 4096
	DefaultMaxBodyBytes     = 8 << 20

	// MaxBodyBytesLimit bounds MaxBodyBytes.
	MaxBodyBytesLimit = 64 << 20
	// MaxBatchBytesLimit bounds BatchConfig.MaxBytes.
	MaxBatchBytesLimit = maxBatchBytes

	// maxExcerpt bounds MaxResponseBytes: the excerpt travels in Kafka headers.
	maxExcerpt = 64 << 10
)

// reserved are the headers the sink sets itself, with the reason shown when a
// config tries to set one.
var reserved = map[string]string{
	"Host":              "set from url",
	"Content-Length":    "set from the body",
	"Transfer-Encoding": "set by the transport",
	"Connection":        "set by the transport",
	"Content-Type":      "use content_type",
	"Idempotency-Key":   "set from the event id",
	"Webhook-Id":        "set from the event id",
	"Webhook-Timestamp": "set by signing",
	"Webhook-Signature": "set by signing",
	"Traceparent":       "set from the trace context",
	"Tracestate":        "set from the trace context",
}

var methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// ConfigError is a config problem New found: the sink and the field at
// fault (as the YAML names it: "auth.oauth2.client_secret"), and what is
// wrong. Its text is `sink "email": url: must be absolute http(s)`.
type ConfigError struct {
	Sink, Field, Msg string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("sink %q: %s: %s", e.Sink, e.Field, e.Msg) }

func configError(name, field, format string, args ...any) error {
	return &ConfigError{Sink: name, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// withDefaults returns cfg with zero values replaced by defaults.
func (cfg Config) withDefaults() Config {
	cfg.Method = strings.ToUpper(cmp.Or(cfg.Method, DefaultMethod))
	cfg.ContentType = cmp.Or(cfg.ContentType, DefaultContentType)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.Attempts = cmp.Or(cfg.Attempts, DefaultAttempts)
	cfg.BackoffBase = cmp.Or(cfg.BackoffBase, DefaultBackoffBase)
	cfg.BackoffCap = cmp.Or(cfg.BackoffCap, max(DefaultBackoffCap, cfg.BackoffBase))
	cfg.RetryAfterCap = cmp.Or(cfg.RetryAfterCap, DefaultRetryAfterCap)
	cfg.MaxConns = cmp.Or(cfg.MaxConns, DefaultMaxConns)
	cfg.MaxResponseBytes = cmp.Or(cfg.MaxResponseBytes, DefaultMaxResponseBytes)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	return cfg
}

// validate checks a defaulted config and returns the parsed URL.
func (cfg Config) validate() (*url.URL, error) {
	n := cfg.Name
	switch {
	case n == "":
		return nil, configError(n, "name", "required")
	case !validName(n):
		return nil, configError(n, "name", "must match [a-z0-9_-]+")
	}
	if !slices.Contains(methods, cfg.Method) {
		return nil, configError(n, "method", "%q is not one of %s", cfg.Method, strings.Join(methods, ", "))
	}
	u, err := parseURL(cfg.URL)
	if err != nil {
		return nil, configError(n, "url", "%s", err)
	}
	for k, v := range cfg.Headers {
		if err := checkHeader(k, v); err != nil {
			return nil, configError(n, fmt.Sprintf("headers[%q]", k), "%s", err)
		}
	}
	if dup := duplicateHeader(cfg.Headers); dup != "" {
		return nil, configError(n, "headers", "%s is given twice (header names are case-insensitive)", dup)
	}
	if err := cfg.Batch.validate(n); err != nil {
		return nil, err
	}
	if cfg.Batch.enabled() {
		if cfg.Method == http.MethodGet {
			return nil, configError(n, "batch.max_events", "a GET request carries no body to batch events in")
		}
		for k, v := range cfg.Headers {
			if isTemplate(v) {
				return nil, configError(n, fmt.Sprintf("headers[%q]", k), "a template renders per event, but a batch request has one set of headers")
			}
		}
	}
	if err := cfg.validatePropagate(); err != nil {
		return nil, err
	}
	if cfg.MaxBodyBytes < 0 || cfg.MaxBodyBytes > MaxBodyBytesLimit {
		return nil, configError(n, "max_body_bytes", "must be between 1 and %d, got %d", MaxBodyBytesLimit, cfg.MaxBodyBytes)
	}
	if ah := cfg.Auth.header(); ah != "" && (hasHeader(cfg.Headers, ah) || slices.ContainsFunc(cfg.PropagateHeaders, func(p string) bool { return http.CanonicalHeaderKey(p) == ah })) {
		return nil, configError(n, "auth", "sets %s, which headers or propagate_headers set too: one source per header", ah)
	}
	if cfg.TLS.set() && u.Scheme != "https" {
		return nil, configError(n, "tls", "set, but url is not https")
	}
	if cfg.Method == http.MethodGet && cfg.Body != "" {
		return nil, configError(n, "body", "a GET request carries no body")
	}
	if mt, _, err := mime.ParseMediaType(cfg.ContentType); err != nil || !strings.Contains(mt, "/") || !validHeaderValue(cfg.ContentType) {
		return nil, configError(n, "content_type", "%q is not a media type", cfg.ContentType)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"timeout", cfg.Timeout},
		{"backoff_base", cfg.BackoffBase},
		{"backoff_cap", cfg.BackoffCap},
		{"retry_after_cap", cfg.RetryAfterCap},
	} {
		if d.v < 0 {
			return nil, configError(n, d.field, "must not be negative, got %s", d.v)
		}
	}
	if cfg.BackoffCap < cfg.BackoffBase {
		return nil, configError(n, "backoff_cap", "%s is below backoff_base %s", cfg.BackoffCap, cfg.BackoffBase)
	}
	if cfg.Attempts < 0 {
		return nil, configError(n, "attempts", "must be at least 1, got %d", cfg.Attempts)
	}
	if cfg.MaxConns < 0 {
		return nil, configError(n, "max_conns", "must be at least 1, got %d", cfg.MaxConns)
	}
	if cfg.MaxResponseBytes < 0 || cfg.MaxResponseBytes > maxExcerpt {
		return nil, configError(n, "max_response_bytes", "must be between 1 and %d, got %d", maxExcerpt, cfg.MaxResponseBytes)
	}
	for _, l := range []struct {
		field string
		codes []int
	}{{"retry_status", cfg.RetryStatus}, {"permanent_status", cfg.PermanentStatus}} {
		for _, c := range l.codes {
			if c < 300 || c > 599 {
				return nil, configError(n, l.field, "%d is not a status between 300 and 599", c)
			}
		}
	}
	for _, c := range cfg.RetryStatus {
		if slices.Contains(cfg.PermanentStatus, c) {
			return nil, configError(n, "permanent_status", "%d is also in retry_status", c)
		}
	}
	return u, nil
}

// validatePropagate checks PropagateHeaders: header names the sink neither
// sets itself nor has configured, and no batching.
func (cfg Config) validatePropagate() error {
	seen := map[string]bool{}
	for i, name := range cfg.PropagateHeaders {
		field := fmt.Sprintf("propagate_headers[%d]", i)
		c := http.CanonicalHeaderKey(name)
		switch {
		case !validToken(name):
			return configError(cfg.Name, field, "%q is not a valid header name", name)
		case seen[c]:
			return configError(cfg.Name, field, "%s is listed twice (header names are case-insensitive)", c)
		case reserved[c] != "" || c == hdrUserAgent || c == hdrEventType:
			return configError(cfg.Name, field, "%s is set by the sink and cannot be forwarded", c)
		case hasHeader(cfg.Headers, c):
			return configError(cfg.Name, field, "%s is also in headers: forward it or set it, not both", c)
		case cfg.Batch.enabled():
			return configError(cfg.Name, field, "a batch request carries many records but one set of headers: forwarding record headers needs batch.max_events 0 or 1")
		}
		seen[c] = true
	}
	return nil
}

func hasHeader(h map[string]string, canonical string) bool {
	for k := range h {
		if http.CanonicalHeaderKey(k) == canonical {
			return true
		}
	}
	return false
}

func validName(s string) bool {
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' && r != '-' {
			return false
		}
	}
	return true
}

func parseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("required")
	}
	if strings.Contains(raw, "{{") {
		return nil, fmt.Errorf("must not be a template: event data never chooses the destination")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		// err would echo the URL, which may hold credentials.
		return nil, fmt.Errorf("must be absolute http(s)")
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// checkHeader validates one configured header: its name is an RFC 9110 token
// the sink does not own, and its value is a valid field value or a template
// that parses.
func checkHeader(name, value string) error {
	if !validToken(name) {
		return fmt.Errorf("not a valid header name")
	}
	if why, ok := reserved[http.CanonicalHeaderKey(name)]; ok {
		return fmt.Errorf("may not be set here: %s", why)
	}
	if isTemplate(value) {
		_, err := parseTemplate(name, value)
		return err
	}
	if !validHeaderValue(value) {
		return fmt.Errorf("value holds a control character")
	}
	return nil
}

func duplicateHeader(h map[string]string) string {
	seen := make(map[string]bool, len(h))
	for k := range h {
		c := http.CanonicalHeaderKey(k)
		if seen[c] {
			return c
		}
		seen[c] = true
	}
	return ""
}

func isTemplate(s string) bool { return strings.Contains(s, "{{") }

// validToken reports whether s is an RFC 9110 token (a header name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s is a valid field value: no control
// characters other than horizontal tab. net/http would refuse such a value at
// send time with an error that looks like a transport failure.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// TemplateError is a header or body template that does not parse.
type TemplateError struct {
	Field string // "headers.<name as configured>" or "body"
	Err   error
}

// TemplateErrors parses every template of cfg and returns each one that does
// not parse, in field order (New stops at the first problem of any kind).
func TemplateErrors(cfg Config) []TemplateError {
	var errs []TemplateError
	for k, v := range cfg.Headers {
		if !isTemplate(v) {
			continue
		}
		if _, err := parseTemplate(http.CanonicalHeaderKey(k), v); err != nil {
			errs = append(errs, TemplateError{Field: "headers." + k, Err: err})
		}
	}
	slices.SortFunc(errs, func(a, b TemplateError) int { return strings.Compare(a.Field, b.Field) })
	if cfg.Body != "" {
		if _, err := parseTemplate("body", cfg.Body); err != nil {
			errs = append(errs, TemplateError{Field: "body", Err: err})
		}
	}
	return errs
}
