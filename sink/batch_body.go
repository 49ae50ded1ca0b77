package sink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fanout-dev/fanout/internal/jsontext"
	"github.com/fanout-dev/fanout/tracing"
)

// batchKey is the batch request's Idempotency-Key: a digest of its event
// ids in order, so a repeat of the same batch carries the same key. Each
// event's own id is in the batch.
func batchKey(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return "batch-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// batchBody joins items' elements into a CloudEvents JSON batch.
func batchBody(items []*batchItem) ([]byte, []string) {
	size := 1 + len(items)
	for _, it := range items {
		size += len(it.elem)
	}
	out := make([]byte, 0, size)
	ids := make([]string, len(items))
	out = append(out, '[')
	for i, it := range items {
		ids[i] = it.id
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, it.elem...)
	}
	return append(out, ']'), ids
}

// batchElement renders one event as a structured CloudEvent, an element of
// a batch. Every string is JSON-encoded by appendJSONString, so an id with
// any bytes in it keeps the batch valid JSON. The trace context is ctx's.
func (s *Sink) batchElement(ctx context.Context, id, typ string, body []byte) []byte {
	out := make([]byte, 0, len(body)+len(id)+len(typ)+len(s.cfg.Name)+len(s.cfg.ContentType)+256)
	out = append(out, `{"specversion":"1.0","id":`...)
	out = jsontext.AppendString(out, id)
	out = append(out, `,"source":`...)
	out = jsontext.AppendString(out, "fanout/"+s.cfg.Name)
	if typ != "" {
		out = append(out, `,"type":`...)
		out = jsontext.AppendString(out, typ)
	} else {
		out = append(out, `,"type":"unknown"`...)
	}
	out = append(out, `,"datacontenttype":`...)
	out = jsontext.AppendString(out, s.cfg.ContentType)
	tc := make(http.Header, 2)
	tracing.InjectHTTP(ctx, tc)
	for _, k := range []string{"traceparent", "tracestate"} {
		if v := tc.Get(k); v != "" {
			out = append(out, `,"`...)
			out = append(out, k...)
			out = append(out, `":`...)
			out = jsontext.AppendString(out, v)
		}
	}
	out = append(out, `,"data":`...)
	switch {
	case !s.batch.jsonData:
		out = jsontext.AppendString(out, string(body))
	case utf8.Valid(body): // valid JSON: checked by batcher.attempt
		out = append(out, body...)
	default:
		// Invalid UTF-8 can only be inside its strings (json.Valid
		// checks the rest); JSON text is UTF-8, so replace it, as
		// encoding/json does when it decodes.
		for len(body) > 0 {
			r, n := utf8.DecodeRune(body)
			if r == utf8.RuneError && n == 1 {
				out = utf8.AppendRune(out, utf8.RuneError) // per byte, as encoding/json reads it
			} else {
				out = append(out, body[:n]...)
			}
			body = body[n:]
		}
	}
	return append(out, '}')
}

// batchResult is one event's answer in a batch response.
type batchResult struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
}

func (r *batchResult) UnmarshalJSON(b []byte) error {
	type plain batchResult
	var p plain
	if n, err := strconv.Atoi(string(bytes.TrimSpace(b))); err == nil {
		p.Status = n
	} else if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.Status < 100 || p.Status > 599 {
		return fmt.Errorf("status %d is not an HTTP status", p.Status)
	}
	*r = batchResult(p)
	return nil
}

// parseBatchResults reads per-event results from a 2xx body: a JSON array
// of statuses or {"status", "error"} objects. isArray is false when the body
// is not a JSON array (the batch was accepted as a whole); err says why an
// array is not valid results.
func parseBatchResults(contentType string, raw []byte) (rs []batchResult, isArray bool, err error) {
	raw = bytes.Trim(raw, jsonSpace) // not TrimSpace: "\v[200]" is not JSON
	if len(raw) == 0 || raw[0] != '[' {
		return nil, false, nil
	}
	if mt, _, err := mime.ParseMediaType(contentType); contentType != "" && (err != nil || !isJSONMedia(mt)) {
		return nil, false, nil
	}
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil, true, fmt.Errorf("not per-event results: %w", err)
	}
	return rs, true, nil
}

// jsonSpace is JSON's whitespace (RFC 8259 §2).
const jsonSpace = " \t\r\n"

func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && isJSONMedia(mt)
}

func isJSONMedia(mt string) bool {
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
