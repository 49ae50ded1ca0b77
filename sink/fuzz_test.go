package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseRetryAfter checks parseRetryAfter on any header value.
//
// Invariants:
//   - it never panics;
//   - ok == false ⇒ d == 0;
//   - d >= 0 always;
//   - surrounding spaces do not change the answer;
//   - delta-seconds round-trip: strconv.Itoa(n) for 0 <= n <= 1e6 is n seconds, ok;
//   - an HTTP-date (IMF-fixdate, any year 1..9999) in the past is 0, ok; one in the
//     future is its distance from now, ok.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// Seeds: the values of TestRetryAfter and the edges of the parser.
	for _, v := range []string{
		"2", "0", "120", "10", "99999999999999999999999", "soon", "-5", "", " 7 ", "+3", "1.5", "0x10",
		now.Add(7 * time.Second).Format(http.TimeFormat),
		now.Add(time.Hour).Format(http.TimeFormat),
		now.Add(-time.Minute).Format(http.TimeFormat),
		now.Add(3 * time.Second).Format("Monday, 02-Jan-06 15:04:05 GMT"),
		now.Add(3 * time.Second).Format(time.ANSIC),
		"9223372036", "9223372037", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT",
	} {
		f.Add(v, uint32(7), int64(-60))
	}
	f.Fuzz(func(t *testing.T, v string, n uint32, offset int64) {
		d, ok := parseRetryAfter(v, now)
		if !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, false: want 0 when not ok", v, d)
		}
		if d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, %v: negative", v, d, ok)
		}
		if d2, ok2 := parseRetryAfter(" \t"+v+" ", now); d2 != d || ok2 != ok {
			t.Fatalf("parseRetryAfter(%q) = %v, %v but with spaces around = %v, %v", v, d, ok, d2, ok2)
		}

		secs := int(n % 1_000_001)
		if d, ok := parseRetryAfter(strconv.Itoa(secs), now); !ok || d != time.Duration(secs)*time.Second {
			t.Fatalf("parseRetryAfter(%q) = %v, %v: want %ds, true", strconv.Itoa(secs), d, ok, secs)
		}

		// A date within years 1..9999, which IMF-fixdate can write.
		lo, hi := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		at := now.Add(time.Duration(offset%(1<<33)) * time.Second) // ±272 years, in Duration range
		if offset < -(1 << 33) {
			at = lo.Add(time.Duration(-offset%(1<<33)) * time.Second)
		} else if offset >= 1<<33 {
			at = hi.Add(-time.Duration(offset%(1<<33)) * time.Second)
		}
		date := at.Format(http.TimeFormat)
		want := max(at.Sub(now), 0) // saturates at the Duration range
		if d, ok := parseRetryAfter(date, now); !ok || d != want {
			t.Fatalf("parseRetryAfter(%q) at %s = %v, %v: want %v, true", date, now.Format(http.TimeFormat), d, ok, want)
		}
	})
}

// FuzzParseBatchResults checks parseBatchResults on any 2xx response body
// and Content-Type.
//
// Invariants:
//   - it never panics;
//   - a body that does not start with '[' after trimming JSON's whitespace
//     (space, tab, CR, LF: "\v[200]" is not JSON), or a
//     Content-Type that is set and not JSON, is not an array (isArray false,
//     err nil, no results);
//   - err != nil ⇒ isArray;
//   - err == nil && isArray ⇒ one result per array element (as
//     encoding/json counts them), every status within 100..599;
//   - on a body that encoding/json reads as []int, it agrees: err == nil
//     exactly when every int is within 100..599, with the same statuses.
func FuzzParseBatchResults(f *testing.F) {
	// Seeds: the bodies of TestBatchPerEventResults and
	// TestBatchUnclearResponsesAreRetried, and the edges of the parser.
	for _, s := range []struct{ ct, body string }{
		{"application/json", `[200, {"status": 422, "error": "email invalid"}, 500]`},
		{"application/json", `[200]`},
		{"application/json", `[{"status":"ok"},{"status":"ok"}]`},
		{"application/json", `[200, 42]`},
		{"", `{"accepted":true}`},
		{"", `  [204,204]  `},
		{"application/problem+json; charset=utf-8", `[{"status":409,"error":"dup"}]`},
		{"text/plain", `[200]`},
		{"application/json", `[null, -0, 1e2, 200.0, "200", 599, 600, 99]`},
		{"application/json", `[200`},
		{"application/json", `[99]`}, {"application/json", `[100]`}, {"application/json", `[599]`},
		{"application/json", `[600]`}, {"application/json", `[0]`}, {"application/json", `[null]`},
		{"application/json", `[]`},
		{"bad/;;", `[200]`},
		{"application/json", "[\xff]"},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ct string, raw []byte) {
		rs, isArray, err := parseBatchResults(ct, raw)
		trimmed := bytes.Trim(raw, " \t\r\n") // JSON's whitespace only
		jsonCT := ct == "" || isJSONType(ct)
		if len(trimmed) == 0 || trimmed[0] != '[' || !jsonCT {
			if isArray || err != nil || rs != nil {
				t.Fatalf("parseBatchResults(%q, %q) = %v, %v, %v: want no array", ct, raw, rs, isArray, err)
			}
			return
		}
		if !isArray {
			t.Fatalf("parseBatchResults(%q, %q): a JSON body starting with '[' is not an array", ct, raw)
		}
		if err == nil {
			var elems []json.RawMessage
			if jerr := json.Unmarshal(raw, &elems); jerr != nil || len(elems) != len(rs) {
				t.Fatalf("parseBatchResults(%q, %q) = %d results; encoding/json: %d elements, %v", ct, raw, len(rs), len(elems), jerr)
			}
			for i, r := range rs {
				if r.Status < 100 || r.Status > 599 {
					t.Fatalf("parseBatchResults(%q, %q): result %d has status %d", ct, raw, i, r.Status)
				}
			}
		}
		var ints []int
		if json.Unmarshal(raw, &ints) != nil {
			return
		}
		inRange := true
		for _, n := range ints {
			inRange = inRange && n >= 100 && n <= 599
		}
		if (err == nil) != inRange {
			t.Fatalf("parseBatchResults(%q, %q) error %v; encoding/json reads %v (all statuses: %v)", ct, raw, err, ints, inRange)
		}
		if err == nil {
			for i, r := range rs {
				if r.Status != ints[i] || r.Error != "" {
					t.Fatalf("parseBatchResults(%q, %q) = %+v; encoding/json reads %v", ct, raw, rs, ints)
				}
			}
		}
	})
}

// FuzzBatchEncoder checks the CloudEvents batch encoding (batchElement and
// batchBody) on any event id, type and body, for a sink with a JSON
// content_type (the body raw JSON; only bodies json.Valid accepts, as
// batcher.attempt refuses the others) and one with text/plain (the body a
// JSON string).
//
// Invariants:
//   - every element, and the batch of them, is json.Valid and valid UTF-8
//     (JSON text is UTF-8; json.Valid does not check it);
//   - decoding an element gives back the id, the type ("unknown" when empty),
//     the source and datacontenttype, each string with invalid UTF-8 replaced
//     by U+FFFD per byte (as encoding/json decodes);
//   - the data is the body: for JSON, the same JSON value (encoding/json
//     decoding both the same, numbers as written); for text/plain, the
//     body as a string (invalid UTF-8 as above);
//   - the batch decodes to the elements in order, and its ids are the items'.
func FuzzBatchEncoder(f *testing.F) {
	jsonSink := newTestSink(f, Config{URL: "http://127.0.0.1:1/", Batch: BatchConfig{MaxEvents: 5}})
	textSink := newTestSink(f, Config{URL: "http://127.0.0.1:1/", ContentType: "text/plain", Batch: BatchConfig{MaxEvents: 5}})
	if !jsonSink.batch.jsonData || textSink.batch.jsonData {
		f.Fatal("the test sinks do not encode JSON and text data as expected")
	}
	// Seeds: the events of the batch tests and the hard cases for JSON.
	for _, s := range []struct{ id, typ, body string }{
		{`id "1"`, "user.registered", `{"email":"a@example.com"}`},
		{"x", "t", "hello\n"},
		{"0", "user.registered", `{"n":0}`},
		{"", "", ""},
		{"a\x00b\r\n\t\\\"", "\u2028\u2029</script>", `{"s":"\u0000\ud800","n":1e400,"m":-0.0}`},
		{"\xff\xfe", "t\xc3", "{\"s\":\"\xff\xc3\"}"},
		{"\xed\xa0\x80", "\xf4\x90\x80\x80", "[1, 2.5, true, null, \"x\"]   "},
		{"id", "t", " \t\n123456789012345678901234567890\n"},
	} {
		f.Add(s.id, s.typ, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, id, typ string, body []byte) {
		ctx := context.Background()
		var items []*batchItem
		check := func(s *Sink, jsonData bool) {
			elem := s.batchElement(ctx, id, typ, body)
			if !json.Valid(elem) || !utf8.Valid(elem) {
				t.Fatalf("element for id %q type %q body %q (%s) is not valid JSON (or UTF-8): %q", id, typ, body, s.cfg.ContentType, elem)
			}
			var ce cloudEvent
			if err := json.Unmarshal(elem, &ce); err != nil {
				t.Fatalf("element %q: %v", elem, err)
			}
			wantType := typ
			if typ == "" {
				wantType = "unknown"
			}
			if ce.SpecVersion != "1.0" || ce.ID != jsonDecoded(id) || ce.Type != jsonDecoded(wantType) ||
				ce.Source != "fanout/test" || ce.DataContentType != s.cfg.ContentType {
				t.Fatalf("element %q decodes to %+v; want id %q type %q", elem, ce, jsonDecoded(id), jsonDecoded(wantType))
			}
			if jsonData {
				got, err1 := decodeJSONValue(ce.Data)
				want, err2 := decodeJSONValue(body)
				if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("element %q: data %q decodes to %#v (%v), want the body %q: %#v (%v)", elem, ce.Data, got, err1, body, want, err2)
				}
			} else {
				var got string
				if err := json.Unmarshal(ce.Data, &got); err != nil || got != jsonDecoded(string(body)) {
					t.Fatalf("element %q: data %q decodes to %q (%v), want the body %q as a string", elem, ce.Data, got, err, body)
				}
			}
			items = append(items, &batchItem{id: id, elem: elem})
		}
		check(textSink, false)
		if json.Valid(body) {
			check(jsonSink, true)
		}
		out, ids := batchBody(items)
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("batch of %d is not valid JSON: %q", len(items), out)
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(out, &elems); err != nil || len(elems) != len(items) || len(ids) != len(items) {
			t.Fatalf("batch %q: %d elements (%v), %d ids; want %d", out, len(elems), err, len(ids), len(items))
		}
		for i, e := range elems {
			if !bytes.Equal(e, items[i].elem) || ids[i] != id {
				t.Fatalf("batch %q: element %d is %q, id %q; want %q, %q", out, i, e, ids[i], items[i].elem, id)
			}
		}
	})
}

// jsonDecoded is s as a JSON string carrying it decodes: each byte of
// invalid UTF-8 becomes U+FFFD.
func jsonDecoded(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// decodeJSONValue decodes one JSON value, numbers as written.
func decodeJSONValue(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one value")
	}
	return v, nil
}

// renderTemplates are FuzzRender's body templates for a JSON content_type,
// chosen by a fuzzed byte: the json func (safe), a value spliced into a
// string unescaped (unsafe: must be refused or valid), several values and a
// record header, the record's own JSON, and none (the record marshalled).
var renderTemplates = []string{
	`{"name": {{ json .Record.name }}}`,
	`{"name": "{{ .Record.name }}"}`,
	`{"id": {{ json .ID }}, "plan": {{ json .Record.plan }}, "tenant": {{ json (index .Headers "x-tenant-id") }}, "name": {{ json .Record.name }}}`,
	`{{ .JSON }}`,
	`{"user": {{ .JSON }}, "plan": "{{ .Record.plan }}"}`,
	``,
}

// FuzzRender checks Sink.render, header and body templates, on any record
// values (strings with quotes, control characters and invalid UTF-8, nested
// maps and lists, nil, NaN and infinite floats, bytes) and any record headers.
// Every sink has the header templates X-Plan: {{ .Record.plan }},
// X-Tenant: {{ index .Headers "x-tenant-id" }} and X-Name: {{ .Record.name }}
// and forwards the record headers authorization and x-tenant-id.
//
// Invariants:
//   - render never panics;
//   - an error wraps ErrRender;
//   - for a JSON content_type, a body it returns is json.Valid;
//   - no header value it returns holds CR, LF or NUL;
//   - the json func never needs a refusal: for the body template
//     {"name": {{ json .Record.name }}} alone (no header templates), any
//     string name renders, and the body decodes to it (invalid UTF-8 as
//     U+FFFD).
func FuzzRender(f *testing.F) {
	headers := map[string]string{
		"X-Plan":   `{{ .Record.plan }}`,
		"X-Tenant": `{{ index .Headers "x-tenant-id" }}`,
		"X-Name":   `{{ .Record.name }}`,
	}
	propagate := []string{"authorization", "x-tenant-id"}
	var sinks []*Sink
	for _, body := range renderTemplates {
		sinks = append(sinks, newTestSink(f, Config{URL: "http://127.0.0.1:1/", Headers: headers, Body: body, PropagateHeaders: propagate}))
	}
	textSink := newTestSink(f, Config{URL: "http://127.0.0.1:1/", ContentType: "text/plain", Headers: headers,
		Body: `name={{ .Record.name }} plan={{ .Record.plan }}`, PropagateHeaders: propagate})
	safe := newTestSink(f, Config{URL: "http://127.0.0.1:1/", Body: renderTemplates[0]})

	// Seeds: the records and headers of the render and body tests.
	for _, s := range []struct {
		tmpl, nameKind, planKind byte
		name, plan, tenant, auth string
	}{
		{0, 0, 0, `x", "admin": true, "y": "`, "pro", "acme", "Bearer abc"},
		{1, 0, 0, `x", "admin": true, "y": "`, "pro", "acme", ""},
		{1, 0, 0, `x"y`, "free", "", ""},
		{1, 0, 0, "Ann", "pro", "t1", ""},
		{2, 1, 2, "", "", "acme\r\nX-Evil: 1", "Bearer a\x00b"},
		{3, 3, 4, "\xff\xfe\u2028</script>", "\x00\x1f\x7f", "\xff", "Basic x"},
		{4, 5, 6, `\"}`, "\t", "a\tb", "\n"},
		{5, 7, 4, "{{ .ID }}", "nan", "", ""},
		{2, 4, 4, "", "", "", ""},
		{0, 6, 7, "bytes\x00", "true", "x-tenant", "Bearer t"},
	} {
		f.Add(s.tmpl, s.nameKind, s.planKind, s.name, s.plan, uint64(0x7ff8000000000001), s.tenant, []byte(s.auth), "evt-1", "user.registered")
	}
	f.Fuzz(func(t *testing.T, tmpl, nameKind, planKind byte, name, plan string, bits uint64, tenant string, auth []byte, id, typ string) {
		rec := map[string]any{"name": fuzzValue(nameKind, name, bits), "plan": fuzzValue(planKind, plan, bits), "n": int64(bits)}
		hs := []Header{{Key: "x-tenant-id", Value: []byte("first")}, {Key: "x-tenant-id", Value: []byte(tenant)}, {Key: "authorization", Value: auth}}
		ev := Event{ID: id, Type: typ, Record: rec, Headers: hs}
		check := func(s *Sink, jsonBody bool) {
			h, body, err := s.render(ev)
			if err != nil {
				if !errors.Is(err, ErrRender) {
					t.Fatalf("render with body template %q: error %v does not wrap ErrRender", s.cfg.Body, err)
				}
				return
			}
			if jsonBody && !json.Valid(body) {
				t.Fatalf("render with body template %q of %#v gave a body that is not valid JSON: %q", s.cfg.Body, rec, body)
			}
			for k, vs := range h {
				for _, v := range vs {
					if strings.ContainsAny(v, "\r\n\x00") {
						t.Fatalf("render of %#v, headers %q: header %s is %q", rec, hs, k, v)
					}
				}
			}
		}
		check(sinks[int(tmpl)%len(sinks)], true)
		check(textSink, false)

		if id == "" || !validHeaderValue(typ) {
			return
		}
		ev = Event{ID: id, Type: typ, Record: map[string]any{"name": name}}
		_, body, err := safe.render(ev)
		if err != nil {
			t.Fatalf("render of name %q with the json func: %v", name, err)
		}
		var got struct{ Name string }
		if err := json.Unmarshal(body, &got); err != nil || got.Name != jsonDecoded(name) {
			t.Fatalf("render of name %q with the json func: body %q decodes to %q (%v)", name, body, got.Name, err)
		}
	})
}

// fuzzValue is a record value of the kind k picks, made of s and bits.
func fuzzValue(k byte, s string, bits uint64) any {
	switch k % 8 {
	case 0:
		return s
	case 1:
		return nil
	case 2:
		return map[string]any{"first": s, "none": nil, s: []any{s, nil}}
	case 3:
		return []any{s, 1.5, nil, map[string]any{"k": s}}
	case 4:
		return math.Float64frombits(bits) // NaN and ±Inf too
	case 5:
		return int64(bits)
	case 6:
		return []byte(s)
	default:
		return len(s)%2 == 0
	}
}
