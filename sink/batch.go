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
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanout-dev/fanout/internal/jsontext"
	"github.com/fanout-dev/fanout/tracing"
)

// BatchConfig turns on batching: concurrent deliveries of one sink share a
// request. The zero value (MaxEvents 0 or 1) sends one event per request.
//
// A batch is a CloudEvents JSON batch (Content-Type
// application/cloudevents-batch+json): an array with one structured
// CloudEvent per event, holding its id, type, source "fanout/<sink>",
// datacontenttype, traceparent/tracestate and data (the rendered body; raw
// JSON when ContentType is JSON, else a string).
//
// The API answers for the batch as a whole or per event. A non-2xx status
// applies to every event. A 2xx whose body is a JSON array with one element
// per event, in order, each {"status": <code>, "error": "<text>"} (or a bare
// number), gives each event its own status; any other 2xx body means every
// event was accepted. A 2xx array of the wrong length is an error and every
// event is retried. Retries, tiers and dead letters stay per event: a failed
// event is retried alone or in a later batch.
//
// A batch refused as a whole is not the last word for its events: a 413 is
// split in halves, each sent as its own request (down to single events), and
// any other permanent answer for a batch of several events is followed by one
// request per event, a batch of one, so that one bad event does not condemn
// its batch-mates. An event's answer alone is final. These requests belong to
// the same attempt (Result.Attempts counts attempts, not requests); each takes
// its events' rate-limit tokens again and is counted as a request.
type BatchConfig struct {
	// MaxEvents is the most events one request carries. 0 or 1: no batching;
	// at most 1000.
	MaxEvents int
	// MaxWait is how long a batch that is not full may wait for more events
	// before it is sent. Default 0: it is sent as soon as a request slot is
	// free, so batches grow only while requests are in flight (no added
	// latency when the API keeps up).
	MaxWait time.Duration
	// MaxBytes is the most bytes of a request body: a batch is closed when
	// the next event would take it over, and an event larger than MaxBytes
	// on its own goes alone. Default 1 MiB (DefaultBatchMaxBytes); at most
	// 64 MiB.
	MaxBytes int
}

// DefaultBatchMaxBytes is BatchConfig.MaxBytes' default: 1 MiB, the request
// body limit of a default nginx (client_max_body_size 1m), the most common
// proxy in front of an API, and the size of one event at fanout's default
// max_event_bytes. A larger batch saves little (per-request cost is spread
// over hundreds of events already) and risks a whole-batch 413.
const DefaultBatchMaxBytes = 1 << 20

// maxBatchBytes bounds BatchConfig.MaxBytes: each request slot holds its body
// in memory.
const maxBatchBytes = 64 << 20

// maxBatchEvents bounds BatchConfig.MaxEvents.
const maxBatchEvents = 1000

// maxBatchResponse bounds how much of a 2xx batch response is read for the
// per-event results.
const maxBatchResponse = 4 << 20

// contentTypeBatch is the media type of a batch request.
const contentTypeBatch = "application/cloudevents-batch+json"

func (b BatchConfig) enabled() bool { return b.MaxEvents > 1 }

func (b BatchConfig) validate(name string) error {
	switch {
	case b.MaxEvents < 0 || b.MaxEvents > maxBatchEvents:
		return configError(name, "batch.max_events", "%d is not within 0..%d", b.MaxEvents, maxBatchEvents)
	case b.MaxWait < 0:
		return configError(name, "batch.max_wait", "must not be negative, got %s", b.MaxWait)
	case b.MaxBytes < 0 || b.MaxBytes > maxBatchBytes:
		return configError(name, "batch.max_bytes", "%d is not within 0..%d (0: %d)", b.MaxBytes, maxBatchBytes, DefaultBatchMaxBytes)
	}
	return nil
}

// batchItem is one event's attempt waiting in, or riding on, a batch.
type batchItem struct {
	ctx    context.Context
	id     string
	elem   []byte       // its CloudEvent, encoded: one element of the batch array
	at     time.Time    // when it joined the queue
	queued bool         // in batcher.pending; under batcher.mu
	done   chan outcome // buffered 1
}

// maxAutoLinger caps how long a batch that is not full waits when MaxWait is
// 0 and another request is in flight.
const maxAutoLinger = 5 * time.Millisecond

// batcher groups the concurrent attempts of one sink into requests: up to
// slots requests in flight, each with up to max events. See flushLocked for
// when a batch goes.
type batcher struct {
	s        *Sink
	max      int
	maxBytes int
	wait     time.Duration
	slots    int
	now      func() time.Time
	// jsonData: the sink's content_type is JSON, so each event's body goes
	// into the batch as raw JSON (and must be valid JSON); else as a string.
	jsonData bool

	mu       sync.Mutex
	pending  []*batchItem
	inflight int
	took     time.Duration // moving average of a request's duration
	timer    *time.Timer   // re-runs flushLocked when the oldest pending item is due
}

func newBatcher(s *Sink) *batcher {
	m := s.cfg.Batch.MaxEvents
	mb := s.cfg.Batch.MaxBytes
	if mb == 0 {
		mb = DefaultBatchMaxBytes
	}
	return &batcher{s: s, max: m, maxBytes: mb, wait: s.cfg.Batch.MaxWait, slots: max(1, (s.cfg.MaxConns+m-1)/m), now: time.Now,
		jsonData: isJSONType(s.cfg.ContentType)}
}

// attempt sends one event as part of a batch and returns its outcome. When
// ctx ends while the event waits, it leaves the batch; when the event is
// already on the wire, the request goes on for the others (it is cancelled
// only when every event in it is) and this event's outcome is unknown:
// Canceled, as for a single request.
func (b *batcher) attempt(ctx context.Context, id, typ string, body []byte) outcome {
	if b.jsonData && !json.Valid(body) {
		// Checked here, not when the batch is built: one bad event must not
		// fail its batch-mates.
		return outcome{err: fmt.Errorf("%w: body is not valid JSON (content_type %s), so it cannot be a batch's data", ErrRender, b.s.cfg.ContentType)}
	}
	// Encoded now, outside the lock: its size decides which batch it fits.
	it := &batchItem{ctx: ctx, id: id, elem: b.s.batchElement(ctx, id, typ, body), done: make(chan outcome, 1)}
	b.mu.Lock()
	it.at, it.queued = b.now(), true
	b.pending = append(b.pending, it)
	b.flushLocked()
	b.mu.Unlock()
	select {
	case o := <-it.done:
		return o
	case <-ctx.Done():
	}
	b.mu.Lock()
	if it.queued {
		it.queued = false
		for i, p := range b.pending {
			if p == it {
				b.pending = append(b.pending[:i], b.pending[i+1:]...)
				break
			}
		}
	}
	b.mu.Unlock()
	select {
	case o := <-it.done: // answered meanwhile
		return o
	default:
		return outcome{err: ctx.Err()}
	}
}

// linger is how long the oldest pending event of a batch that is not full
// waits for more. MaxWait when set; otherwise, while another request is in
// flight, an eighth of a request's recent duration (at most maxAutoLinger):
// the events of the request that just finished come back within that time,
// and a slot that took one event at once would be busy for a whole request.
// With nothing in flight a batch goes at once: an idle API costs no latency.
func (b *batcher) linger() time.Duration {
	if b.wait > 0 {
		return b.wait
	}
	if b.inflight == 0 {
		return 0
	}
	return min(b.took/8, maxAutoLinger)
}

// fitLocked returns how many pending events, from the oldest, the next batch
// takes: at most max, and no more than fit in maxBytes of body (but at least
// one: an event larger than maxBytes goes alone). full means nothing more
// could join that batch.
func (b *batcher) fitLocked() (n int, full bool) {
	size := 2 // [ ]
	for _, it := range b.pending {
		add := len(it.elem)
		if n > 0 {
			add++ // ,
		}
		if n == b.max || (n > 0 && size+add > b.maxBytes) {
			return n, true
		}
		size += add
		n++
	}
	return n, n == b.max || size+1+minBatchElement > b.maxBytes
}

// minBatchElement is a lower bound of an encoded batch element's size (see
// batchElement).
const minBatchElement = len(`{"specversion":"1.0","id":"","source":"fanout/","type":"","datacontenttype":"","data":""}`)

// flushLocked sends batches while a request slot is free and pending events
// are due: a full batch at once, a partial one when its oldest event has
// lingered. Otherwise it arms the timer for when the oldest will be due.
func (b *batcher) flushLocked() {
	for b.inflight < b.slots && len(b.pending) > 0 {
		n, full := b.fitLocked()
		if !full {
			if wait := b.pending[0].at.Add(b.linger()).Sub(b.now()); wait > 0 {
				if b.timer == nil {
					b.timer = time.AfterFunc(wait, b.tick)
				} else {
					b.timer.Reset(wait)
				}
				return
			}
		}
		items := make([]*batchItem, n)
		copy(items, b.pending)
		for _, it := range items {
			it.queued = false
		}
		b.pending = append(b.pending[:0], b.pending[n:]...)
		b.inflight++
		go b.send(items)
	}
}

// tick re-checks the queue when the oldest event is due. A stale tick (the
// queue changed meanwhile) only re-checks.
func (b *batcher) tick() {
	b.mu.Lock()
	b.flushLocked()
	b.mu.Unlock()
}

// send delivers items as one request and hands each its outcome.
func (b *batcher) send(items []*batchItem) {
	began := b.now()
	outs := b.s.deliverBatch(items)
	for i, it := range items {
		it.done <- outs[i]
	}
	took := b.now().Sub(began)
	b.mu.Lock()
	b.inflight--
	if b.took == 0 {
		b.took = took
	} else {
		b.took += (took - b.took) / 8
	}
	b.flushLocked()
	b.mu.Unlock()
}

// batchContext returns a context for a request carrying items: it ends
// after Config.Timeout, or when every item's context has ended.
func batchContext(items []*batchItem, timeout time.Duration) (context.Context, func()) {
	ctx, stop := untilAllDone(items)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return ctx, func() {
		cancel()
		stop()
	}
}

// untilAllDone returns a context that ends when every item's context has
// ended.
func untilAllDone(items []*batchItem) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	left := int64(len(items))
	stops := make([]func() bool, len(items))
	for i, it := range items {
		stops[i] = context.AfterFunc(it.ctx, func() {
			if atomic.AddInt64(&left, -1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// deliverBatch sends items as one request and returns one outcome per item,
// in order. When the API refuses several events as a whole, their outcome is
// not final yet: a 413 is split in halves, each delivered the same way (down
// to single events), and any other permanent answer is followed by one
// request per event, so that one bad event does not condemn its
// batch-mates. An event's answer alone is final, so each event is tried
// alone at most once per attempt.
func (s *Sink) deliverBatch(items []*batchItem) []outcome {
	outs, whole := s.sendBatch(items)
	if !whole || len(items) == 1 {
		return outs
	}
	o := outs[0]
	switch {
	case o.status == http.StatusRequestEntityTooLarge:
		s.log.Debug("batch too large; splitting it", "events", len(items), "status", o.status)
		h := len(items) / 2
		s.resend(items[:h], outs[:h])
		s.resend(items[h:], outs[h:])
	case s.Classify(o.status, o.err) == Permanent:
		s.log.Debug("batch refused as a whole; trying its events alone", "events", len(items), "status", o.status)
		// Concurrently, within the slot's share of the connections
		// (a slot stands for max_events of max_in_flight).
		sem := make(chan struct{}, max(1, s.cfg.MaxConns/s.batch.slots))
		var wg sync.WaitGroup
		for i := range items {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				s.resend(items[i:i+1], outs[i:i+1])
			})
		}
		wg.Wait()
	}
	return outs
}

// resend delivers items again within their attempt, writing their outcomes
// into outs: like any send it first takes their rate-limit tokens (and
// honours a pause). An item whose context has ended is not sent again and
// reports Canceled: the batch that carried it was refused, so it was not
// delivered, and its record stays uncommitted.
func (s *Sink) resend(items []*batchItem, outs []outcome) {
	live := make([]*batchItem, 0, len(items))
	at := make([]int, 0, len(items))
	ctx, stop := untilAllDone(items)
	defer stop()
	for i, it := range items {
		if err := it.ctx.Err(); err != nil {
			outs[i] = outcome{err: err}
			continue
		}
		if err := s.limit.Wait(ctx); err != nil {
			for j := i; j < len(items); j++ {
				outs[j] = outcome{err: context.Canceled}
			}
			return
		}
		live = append(live, it)
		at = append(at, i)
	}
	if len(live) == 0 {
		return
	}
	for j, o := range s.deliverBatch(live) {
		outs[at[j]] = o
	}
}

// sendBatch sends items as one CloudEvents batch and returns one outcome
// per item, in order; whole reports that the API answered for the batch as
// a whole with a non-2xx status.
func (s *Sink) sendBatch(items []*batchItem) (outs []outcome, whole bool) {
	outs = make([]outcome, len(items))
	all := func(o outcome) ([]outcome, bool) {
		for i := range outs {
			outs[i] = o
		}
		return outs, false
	}
	body, ids := batchBody(items)
	ctx, done := batchContext(items, s.cfg.Timeout)
	defer done()
	// The request continues the first event's trace; its span (when spans
	// are recorded) links every event's. Each event carries its own
	// traceparent in the batch.
	ctx = trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(items[0].ctx))
	var opts []trace.SpanStartOption
	if tracing.Enabled() {
		links := make([]trace.Link, len(items))
		for i, it := range items {
			links[i] = trace.LinkFromContext(it.ctx)
		}
		opts = []trace.SpanStartOption{trace.WithLinks(links...), trace.WithAttributes(attribute.Int("fanout.batch.events", len(items)))}
	}
	ctx, span := tracing.StartHTTP(ctx, s.span, 1, opts...)
	var status int
	var reqErr error
	defer func() { tracing.EndHTTP(span, status, reqErr) }()
	req, err := http.NewRequestWithContext(ctx, s.cfg.Method, s.url, bytes.NewReader(body))
	if err != nil {
		return all(outcome{err: fmt.Errorf("%w: %w", ErrRender, s.redact(err))})
	}
	req.Header = make(http.Header, len(s.static)+5)
	req.Header[hdrUserAgent] = []string{UserAgent}
	for k, v := range s.static {
		req.Header[k] = []string{v}
	}
	key := batchKey(ids)
	req.Header[hdrIdempotencyKey] = []string{key}
	req.Header[hdrWebhookID] = []string{key}
	req.Header[hdrContentType] = []string{contentTypeBatch}
	tracing.InjectHTTP(ctx, req.Header)
	gen, secret, err := s.authorize(ctx, req.Header)
	if err != nil {
		return all(outcome{err: err})
	}
	if s.signer != nil {
		s.signer.sign(req.Header, s.now(), body)
	}
	defer func() {
		for i := range outs {
			outs[i].authGen = gen
		}
	}()

	s.requests.Add(1)
	s.batched.Add(int64(len(items)))
	resp, err := s.client.Do(req)
	if err != nil {
		err = s.explainTLS(s.redact(err))
		reqErr = err
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("attempt timed out after %s: %w", s.cfg.Timeout, err)
		}
		return all(outcome{err: err})
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		o := outcome{status: resp.StatusCode}
		o.retryAfter, o.hasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.now())
		excerpt := scrub(readExcerpt(resp.Body, s.cfg.MaxResponseBytes), secret)
		_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
		o.err = &StatusError{Code: o.status, RetryAfter: o.retryAfter, Excerpt: excerpt}
		all(o)
		return outs, true
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBatchResponse))
	if err != nil {
		// The API answered 2xx, but its per-event results were cut off:
		// whether each event was accepted is unknown, so retry them all.
		return all(outcome{err: fmt.Errorf("reading the batch response: %w", s.redact(err))})
	}
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	results, isArray, err := parseBatchResults(resp.Header.Get("Content-Type"), raw)
	switch {
	case !isArray:
		return all(outcome{status: resp.StatusCode})
	case err != nil:
		// An array that is not per-event results: which events were
		// accepted is unknown, so retry them all.
		return all(outcome{status: resp.StatusCode, err: fmt.Errorf("batch response: %w", err)})
	case len(results) != len(items):
		return all(outcome{status: resp.StatusCode, err: fmt.Errorf("batch response has %d results for %d events", len(results), len(items))})
	}
	for i, r := range results {
		outs[i] = outcome{status: r.Status}
		if r.Status < 200 || r.Status > 299 {
			outs[i].err = &StatusError{Code: r.Status, Excerpt: scrub(truncateUTF8(strings.TrimSpace(r.Error), int(s.cfg.MaxResponseBytes)), secret)}
		}
	}
	return outs, false
}

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
