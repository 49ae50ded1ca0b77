package sink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"

	"github.com/fanout-dev/fanout/internal/jsontext"
	"github.com/fanout-dev/fanout/tracing"
)

// Event is what a sink delivers. It knows nothing of Kafka: the caller has
// already decoded the record and chosen its id.
type Event struct {
	// ID is the idempotency key, sent as Idempotency-Key and webhook-id
	// (see headerID for an id a header cannot carry) or, batched, as the
	// element's id. Required: an event without one is not sent.
	ID string
	// Type is the event type, e.g. "user.registered", sent as
	// X-Fanout-Event-Type when not empty.
	Type string
	// Body is the record rendered as JSON, sent as is unless Config.Body is
	// set. When nil, Record is marshalled instead.
	Body []byte
	// Record is the same record as plain values (maps, slices, strings,
	// numbers, bools, nil), for templates. The sink does not modify it.
	Record map[string]any
	// Headers are the record's own headers, in order: templates read them
	// (.Headers) and Config.PropagateHeaders forwards some of them.
	Headers []Header
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// ErrRender marks an event the sink could not turn into a request: a template
// that fails for this event's data, a rendered header value that is not a
// valid field value, or a missing id. It is Permanent: retrying cannot help.
var ErrRender = errors.New("render request")

// ErrPropagatedAuthRejected marks a 401 answer to a request that carried an
// Authorization header forwarded from the record (Config.PropagateHeaders):
// the token someone else minted has expired or was revoked by the time of
// delivery, and the sink cannot refresh it. It wraps the *StatusError and is
// Permanent, unless Config.RetryStatus lists 401.
var ErrPropagatedAuthRejected = errors.New("the API refused the authorization forwarded from the record")

// UserAgent is sent with every request unless Config.Headers overrides it.
const UserAgent = "fanout/0.1"

// Header names the sink sets, canonical so they can be assigned directly.
const (
	hdrIdempotencyKey = "Idempotency-Key"
	hdrWebhookID      = "Webhook-Id"
	hdrEventType      = "X-Fanout-Event-Type"
	hdrContentType    = "Content-Type"
	hdrUserAgent      = "User-Agent"
)

// templateData is what header and body templates see.
type templateData struct {
	ID     string
	Type   string
	Record map[string]any
	JSON   string
	// Headers are the record's headers by key, the last value of a key
	// winning (as Kafka clients' lastHeader): {{ index .Headers "x-tenant" }}.
	Headers map[string]string
}

// headerMap is hs by key, the last value of a key winning.
func headerMap(hs []Header) map[string]string {
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

// printFunc is appended to every printing action so that nil prints as empty
// text instead of "<no value>". The leading underscore keeps it out of the
// way of names a template author would pick.
const printFunc = "_fanoutPrint"

var funcs = template.FuncMap{
	"json":    jsontext.Marshal,
	printFunc: emptyIfNil,
}

func emptyIfNil(v any) any {
	if v == nil {
		return ""
	}
	return v
}

// parseTemplate parses text and rewrites its printing actions so that a
// missing key or a nil value prints as empty text.
func parseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Funcs(funcs).Parse(text)
	if err != nil {
		return nil, err
	}
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			emptyNil(tt.Tree, tt.Tree.Root)
		}
	}
	return t, nil
}

// emptyNil appends printFunc to the pipeline of every action that prints
// (actions that declare or assign variables print nothing and are left alone).
func emptyNil(tree *parse.Tree, n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			emptyNil(tree, c)
		}
	case *parse.ActionNode:
		if len(n.Pipe.Decl) > 0 {
			return
		}
		id := parse.NewIdentifier(printFunc).SetTree(tree).SetPos(n.Pos)
		n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{NodeType: parse.NodeCommand, Pos: n.Pos, Args: []parse.Node{id}})
	case *parse.IfNode:
		emptyNil(tree, n.List)
		emptyNil(tree, n.ElseList)
	case *parse.RangeNode:
		emptyNil(tree, n.List)
		emptyNil(tree, n.ElseList)
	case *parse.WithNode:
		emptyNil(tree, n.List)
		emptyNil(tree, n.ElseList)
	}
}

// null stands in for a nil value (a JSON null) in template data. text/template
// cannot evaluate a field of a nil interface, so .Record.user.email would
// fail when user is null; a field of a nil map is merely missing. null prints
// as empty text and marshals (json func) as null.
type null map[string]any

func (null) String() string               { return "" }
func (null) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// nullify returns m with every nil inside it, at any depth, replaced by null,
// so that a null reads exactly like a missing key. m is returned as is when
// it holds no nil; else only the maps and slices on a path to one are copied.
// The caller's record is never modified.
func nullify(m map[string]any) map[string]any {
	if !hasNil(m) {
		return m
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = nullifyValue(v)
	}
	return out
}

func nullifyValue(v any) any {
	switch v := v.(type) {
	case nil:
		return null(nil)
	case map[string]any:
		return nullify(v)
	case []any:
		if !hasNil(v) {
			return v
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = nullifyValue(e)
		}
		return out
	}
	return v
}

// hasNil reports whether a map or slice inside v holds a nil value.
func hasNil(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			if e == nil || hasNil(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if e == nil || hasNil(e) {
				return true
			}
		}
	}
	return false
}

// headerTemplate is one templated header value.
type headerTemplate struct {
	name string // canonical
	tmpl *template.Template
}

// render turns ev into the request headers and body used by every attempt.
// Any error wraps ErrRender.
func (s *Sink) render(ev Event) (http.Header, []byte, error) {
	if ev.ID == "" {
		return nil, nil, fmt.Errorf("%w: event has no id", ErrRender)
	}
	// Batched, the id and type travel only in the JSON body, which can
	// carry any string; alone, the id goes through headerID.
	if s.batch == nil && !validHeaderValue(ev.Type) {
		return nil, nil, fmt.Errorf("%w: event type holds a control character", ErrRender)
	}
	body := ev.Body
	if body == nil && ev.Record != nil {
		b, err := json.Marshal(ev.Record)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: marshal record: %w", ErrRender, err)
		}
		body = b
	}

	// A batch request has its own headers (sendBatch): no per-event map.
	var h http.Header
	if s.batch == nil {
		h = make(http.Header, len(s.static)+len(s.headerTmpls)+6)
		h[hdrUserAgent] = []string{UserAgent}
		for k, v := range s.static {
			h[k] = []string{v}
		}
		key := headerID(ev.ID)
		h[hdrIdempotencyKey] = []string{key}
		h[hdrWebhookID] = []string{key}
		if ev.Type != "" {
			h[hdrEventType] = []string{ev.Type}
		}
		if s.cfg.Method != http.MethodGet {
			h[hdrContentType] = []string{s.cfg.ContentType}
		}
		if err := s.propagate(h, ev.Headers); err != nil {
			return nil, nil, err
		}
	}

	if len(s.headerTmpls) == 0 && s.bodyTmpl == nil {
		return h, body, s.checkBody(body, false)
	}
	data := templateData{ID: ev.ID, Type: ev.Type, Record: nullify(ev.Record), JSON: string(body), Headers: headerMap(ev.Headers)}
	var buf bytes.Buffer
	for _, ht := range s.headerTmpls {
		buf.Reset()
		if err := ht.tmpl.Execute(&buf, data); err != nil {
			return nil, nil, fmt.Errorf("%w: header %s: %w", ErrRender, ht.name, err)
		}
		v := strings.TrimSpace(buf.String())
		if !validHeaderValue(v) {
			return nil, nil, fmt.Errorf("%w: header %s: rendered value holds a control character", ErrRender, ht.name)
		}
		h[ht.name] = []string{v}
	}
	if s.bodyTmpl != nil {
		buf.Reset()
		if err := s.bodyTmpl.Execute(&buf, data); err != nil {
			return nil, nil, fmt.Errorf("%w: body: %w", ErrRender, err)
		}
		body = bytes.Clone(buf.Bytes())
	}
	return h, body, s.checkBody(body, s.bodyTmpl != nil)
}

// propagate copies the record headers named by Config.PropagateHeaders into
// h, every value of each, in record order.
func (s *Sink) propagate(h http.Header, hs []Header) error {
	if len(s.propagated) == 0 {
		return nil
	}
	for _, rh := range hs {
		name, ok := s.propagated[strings.ToLower(rh.Key)]
		if !ok {
			continue
		}
		v := string(rh.Value)
		if !validHeaderValue(v) || !utf8.ValidString(v) {
			return fmt.Errorf("%w: record header %s holds a control character or invalid UTF-8, so it cannot be forwarded", ErrRender, name)
		}
		h[name] = append(h[name], v)
	}
	return nil
}

// checkBody enforces Config.MaxBodyBytes and, when a body template rendered
// body for a JSON content_type, that it is valid JSON: event data spliced
// into a template unescaped could otherwise add fields to the request (the
// json func escapes a value). The error names the first offending byte,
// never the body.
func (s *Sink) checkBody(body []byte, templated bool) error {
	if len(body) > s.cfg.MaxBodyBytes {
		return fmt.Errorf("%w: body of %d bytes exceeds max_body_bytes %d", ErrRender, len(body), s.cfg.MaxBodyBytes)
	}
	if !templated || !s.jsonBody {
		return nil
	}
	var why string
	if json.Valid(body) {
		name, off, dup := jsontext.DuplicateName(body)
		if !dup {
			return nil
		}
		why = fmt.Sprintf("an object has the name %q twice (at byte %d), so event data may have overridden a field", truncateUTF8(name, 64), off)
	} else {
		why = "it is not valid JSON"
		var v any
		if se, ok := errors.AsType[*json.SyntaxError](json.Unmarshal(body, &v)); ok {
			why = fmt.Sprintf("it is not valid JSON (%s, at byte %d)", se, se.Offset)
		}
	}
	return fmt.Errorf("%w: the body template rendered a body the content_type %s cannot carry: %s; insert values with the json func, e.g. {{ json .Record.name }}", ErrRender, s.cfg.ContentType, why)
}

// headerID is the event id as the Idempotency-Key and webhook-id headers
// carry it: the id itself when it is valid UTF-8 without control characters.
// A header cannot carry a control character (CR/LF would end it; net/http
// refuses them), and invalid UTF-8 is read differently by each server, so
// any other id is sent as "fanout-sha256-" and the hex SHA-256 of its bytes:
// the same id always gives the same key, so a repeat is recognised, and two
// ids never share one.
func headerID(id string) string {
	if validHeaderValue(id) && utf8.ValidString(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return headerIDPrefix + hex.EncodeToString(sum[:])
}

// headerIDPrefix marks a header that carries an event id's digest.
const headerIDPrefix = "fanout-sha256-"

// newRequest builds one attempt's request. Each attempt gets its own header
// map (the trace context is injected per attempt) and its own body reader.
func (s *Sink) newRequest(ctx context.Context, h http.Header, body []byte) (*http.Request, error) {
	var r io.Reader
	if s.cfg.Method != http.MethodGet {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, s.cfg.Method, s.url, r)
	if err != nil {
		return nil, err
	}
	req.Header = h.Clone()
	tracing.InjectHTTP(ctx, req.Header)
	return req, nil
}
