package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/letter"
	"github.com/fanout-dev/fanout/redact"
	"github.com/fanout-dev/fanout/schemas"
	"github.com/fanout-dev/fanout/sink"
	"github.com/fanout-dev/fanout/tracing"
)

// Config is one sink's per-record policy. Every field's comment states its default.
type Config struct {
	Sink          string        // required: the sink's name (dedupe keys, logs)
	IDField       string        // default "id": the Avro field holding the event id
	Types         []string      // default all: event types (schemas.Record.Type) delivered; others are skipped
	Dedupe        bool          // false: deliver without claiming (no dedupe)
	FailOpen      bool          // false = fail-closed: hold records while the store is unreachable
	DoneTTL       time.Duration // default 168h: how long a delivered id is remembered
	Lease         time.Duration // default 30s: how long a claim blocks other owners; renewed every Lease/3 while delivering
	MaxEventBytes int           // default 1 MiB: larger records are dead letters
	// MaxEventAge dead-letters records whose original timestamp is older
	// (reason too-old): an event stale enough is worth less than the lag it
	// costs. Default 0: no limit.
	MaxEventAge time.Duration
	// KeyOrder keeps a key's order across retry tiers: while a key has a
	// record parked in a tier, its later records are parked behind it (into
	// the same or the next tier) instead of being delivered ahead. Needs
	// Barriers and Tiers > 0; records without a key are not ordered.
	KeyOrder bool
	// Tiers is the number of retry tiers the sink's consumers park into.
	Tiers int
	// BarrierTTL is how long a record's membership in a tier lasts after it
	// entered (each member expires on its own; other records' entries never
	// extend it), so a membership left behind (a crash, a failed park, a
	// release that never got through) blocks its key for at most this long;
	// a record still in its tier past it may be overtaken. Default 1h;
	// fanout sets twice the sum of the sink's retry.tiers delays plus 10
	// minutes (app/build.go, barrierTTL).
	BarrierTTL time.Duration
	// Redact hides secrets in the error text and response excerpt of an
	// outcome before anything records them (a parked record's headers, the
	// process span, a log line): an API may echo the request's credentials.
	// Default nil: nothing hidden.
	Redact func(string) string
}

// Stats are a sink's running counts.
type Stats struct {
	Delivered    int64 // accepted by the API (2xx)
	Retried      int64 // extra attempts beyond the first, over all records
	DeadLettered int64 // handed to the consumer to park
	Duplicates   int64 // suppressed by dedupe (already done)
	Skipped      int64 // not of this sink's types
	Unprotected  int64 // delivered without a claim under fail-open
	StoreErrors  int64 // dedupe store calls that failed
	BreakerWaits int64 // times a record waited for the circuit breaker
	ParkedBehind int64 // records parked behind an earlier record of their key
	// Unordered counts records handled without key order because the order
	// store was unavailable under fail-open: not checked against their key's
	// tiers, or parked into a tier without a membership.
	Unordered int64
	// ClaimBusyWaits counts records that found their event claimed by
	// another owner's live lease and waited for it (once per record).
	ClaimBusyWaits int64
}

// Handler implements consumer.Handler for one sink.
type Handler struct {
	cfg      Config
	codec    *schemas.Codec
	store    dedupe.Store
	barriers dedupe.Barriers
	sink     Sink
	log      *slog.Logger
	types    map[string]bool

	delivered, retried, dead, dups, skipped, unprotected, storeErrs, held, behind, unordered, busyWaits atomic.Int64

	warnedUntyped atomic.Bool // see skips

	// Claim tokens are tokenPrefix (random per Handler) and a sequence
	// number: unique per owner like dedupe.NewToken, without reading
	// crypto/rand for every record.
	tokenPrefix string
	tokenSeq    atomic.Uint64
}

// New returns the Handler of one sink. store may be nil only if cfg.Dedupe is false.
func New(cfg Config, codec *schemas.Codec, store dedupe.Store, s Sink, logger *slog.Logger) (*Handler, error) {
	if cfg.Sink == "" {
		return nil, errors.New("pipeline: Sink is required")
	}
	if codec == nil || s == nil {
		return nil, errors.New("pipeline: codec and sink are required")
	}
	if cfg.Dedupe && store == nil {
		return nil, errors.New("pipeline: Dedupe needs a store")
	}
	if cfg.IDField == "" {
		cfg.IDField = "id"
	}
	if cfg.DoneTTL <= 0 {
		cfg.DoneTTL = dedupe.DefaultDoneTTL
	}
	if cfg.Lease <= 0 {
		cfg.Lease = dedupe.DefaultLease
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = 1 << 20
	}
	if cfg.BarrierTTL <= 0 {
		cfg.BarrierTTL = time.Hour
	}
	if logger == nil {
		logger = slog.Default()
	}
	h := &Handler{cfg: cfg, codec: codec, store: store, sink: s, log: logger.With("sink", cfg.Sink), tokenPrefix: dedupe.NewToken() + "-"}
	if len(cfg.Types) > 0 {
		h.types = map[string]bool{}
		for _, t := range cfg.Types {
			h.types[t] = true
		}
	}
	return h, nil
}

// Stats returns the running counts.
func (h *Handler) Stats() Stats {
	return Stats{
		Delivered: h.delivered.Load(), Retried: h.retried.Load(), DeadLettered: h.dead.Load(),
		Duplicates: h.dups.Load(), Skipped: h.skipped.Load(), Unprotected: h.unprotected.Load(),
		StoreErrors: h.storeErrs.Load(), BreakerWaits: h.held.Load(), ParkedBehind: h.behind.Load(),
		Unordered: h.unordered.Load(), ClaimBusyWaits: h.busyWaits.Load(),
	}
}

// WithBarriers gives the handler the per-key tier memberships KeyOrder needs.
func (h *Handler) WithBarriers(b dedupe.Barriers) *Handler {
	h.barriers = b
	return h
}

// Handle decodes, filters, claims, delivers and reports one record; for a
// key-ordered sink it first parks the record behind an earlier one of its key.
func (h *Handler) Handle(ctx context.Context, r *kgo.Record) (out consumer.Outcome) {
	ctx, span := tracing.StartProcess(ctx, h.cfg.Sink, r)
	defer func() { out = h.scrub(out); endProcess(span, out) }()
	if !h.cfg.KeyOrder || h.cfg.Tiers == 0 || h.barriers == nil || len(r.Key) == 0 {
		return h.handle(ctx, r)
	}
	tier := tierOf(r)
	key := dedupe.Key(h.cfg.Sink, string(r.Key))
	// A record's own membership in a higher tier (left by an earlier
	// attempt whose park failed) counts too: it then parks where its
	// membership says it is, which makes the membership true.
	behind, err := h.isBehind(ctx, key, tier)
	if err != nil {
		return consumer.Outcome{Verdict: consumer.Abandon, Err: err}
	}
	if behind {
		h.behind.Add(1)
		out = consumer.Outcome{Verdict: consumer.DeadLetter, Retryable: true, Reason: letter.ReasonBehindKey,
			Err: errors.New("parked behind an earlier event of the same key that is in a retry tier")}
	} else {
		out = h.handle(ctx, r)
	}
	return h.account(ctx, key, consumer.Origin(r), tier, out)
}

// scrub applies cfg.Redact to out's error text and excerpt. The error keeps
// its chain (errors.Is/As still classify it); only its text changes.
func (h *Handler) scrub(out consumer.Outcome) consumer.Outcome {
	if h.cfg.Redact == nil {
		return out
	}
	out.Excerpt = h.cfg.Redact(out.Excerpt)
	out.Err = redact.Error(out.Err, h.cfg.Redact)
	return out
}

// endProcess records a record's outcome on its process span and ends it. A
// record handed back to be parked (a retry tier or the DLQ) marks the span
// as an error with the reason; an abandoned one (shutdown, revoke, store
// down) is not an error: the record is delivered later.
func endProcess(span trace.Span, out consumer.Outcome) {
	if span.IsRecording() {
		span.SetAttributes(attribute.String("fanout.outcome", out.Verdict.String()))
		if out.Verdict == consumer.DeadLetter {
			span.SetAttributes(attribute.String("fanout.error.class", string(out.Reason)), attribute.Bool("fanout.retryable", out.Retryable))
			if out.Attempts > 0 {
				span.SetAttributes(attribute.Int("fanout.attempts", out.Attempts))
			}
			msg := string(out.Reason)
			if out.Err != nil {
				msg += ": " + out.Err.Error()
			}
			span.SetStatus(codes.Error, msg)
		}
	}
	span.End()
}

// account keeps the key's tier memberships true to where its record is. A
// park into tier n+1 enters the record there before it is produced, so the key
// never looks free in between; it leaves its earlier tiers once that park is
// acknowledged, and every tier once it is delivered or parked on the DLQ.
// Both are idempotent (named by the record's origin), so a repeated write
// changes nothing; a membership whose park never happened is made true when
// the record is handled again (it parks behind it) or expires BarrierTTL after
// it was entered.
func (h *Handler) account(ctx context.Context, key, origin string, tier int, out consumer.Outcome) consumer.Outcome {
	leave := func(upTo int) func() {
		if upTo == 0 {
			return func() {} // a main-topic record: in no tier, no round trip
		}
		return func() {
			tiers := make([]int, upTo)
			for i := range tiers {
				tiers[i] = i + 1
			}
			// Bounded: a membership that cannot be removed now expires
			// on its own, BarrierTTL after it was entered.
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := h.leaveBarrier(lctx, key, origin, tiers); err != nil {
				h.log.Error("could not remove a record from its key's order barrier; it expires on its own", "key", key, "origin", origin, "err", err)
			}
		}
	}
	switch {
	case out.Verdict == consumer.Abandon:
	case out.Verdict == consumer.DeadLetter && out.Retryable && tier < h.cfg.Tiers:
		if err := h.enterBarrier(ctx, key, origin, tier+1); err != nil {
			return consumer.Outcome{Verdict: consumer.Abandon, Err: err}
		}
		out.OnParked = leave(tier)
	case out.Verdict == consumer.DeadLetter:
		out.OnParked = leave(h.finalTiers(tier))
	default:
		leave(h.finalTiers(tier))()
	}
	return out
}

// finalTiers is how many tiers a record handled from tier leaves when it is
// done with them all (delivered, or parked on the DLQ): every tier, also one
// entered by an earlier attempt whose park failed; none for a main-topic
// record, which keeps the hot path free of a round trip.
func (h *Handler) finalTiers(tier int) int {
	if tier == 0 {
		return 0
	}
	return h.cfg.Tiers
}

func (h *Handler) isBehind(ctx context.Context, key string, tier int) (bool, error) {
	var behind bool
	err := retry(ctx, func() (bool, error) {
		var err error
		behind, err = h.barriers.Behind(ctx, key, tier)
		if err == nil {
			return true, nil
		}
		h.storeErrs.Add(1)
		if h.cfg.FailOpen && errors.Is(err, dedupe.ErrUnavailable) {
			h.unordered.Add(1)
			h.log.Warn("order barrier unavailable; handling the record without key order (fail-open)", "key", key, "err", err)
			behind = false // at-least-once, order not guaranteed while the store is down
			return true, nil
		}
		h.log.Warn("order barrier unavailable; holding the record", "key", key, "err", err)
		return false, err
	})
	return behind, err
}

// enterBarrier enters the record at origin into tier of key, retrying until
// ctx ends; under fail-open a store outage parks the record without it.
func (h *Handler) enterBarrier(ctx context.Context, key, origin string, tier int) error {
	return retry(ctx, func() (bool, error) {
		err := h.barriers.Enter(ctx, key, tier, origin, h.cfg.BarrierTTL)
		if err == nil {
			return true, nil
		}
		h.storeErrs.Add(1)
		if h.cfg.FailOpen && errors.Is(err, dedupe.ErrUnavailable) {
			h.unordered.Add(1)
			h.log.Warn("order barrier unavailable; parking the record in its tier without key order (fail-open)", "key", key, "err", err)
			return true, nil
		}
		h.log.Warn("order barrier update failed; retrying", "key", key, "err", err)
		return false, err
	})
}

// leaveBarrier removes the record at origin from tiers of key, retrying until
// ctx ends; under fail-open a store outage gives up at once (the membership
// expires on its own) instead of holding the record's worker.
func (h *Handler) leaveBarrier(ctx context.Context, key, origin string, tiers []int) error {
	return retry(ctx, func() (bool, error) {
		err := h.barriers.Leave(ctx, key, origin, tiers...)
		if err == nil {
			return true, nil
		}
		h.storeErrs.Add(1)
		if h.cfg.FailOpen && errors.Is(err, dedupe.ErrUnavailable) {
			return true, err
		}
		h.log.Warn("order barrier update failed; retrying", "key", key, "err", err)
		return false, err
	})
}

// originalTime is when the event entered fanout's topic: the record's own
// timestamp, or for a record back from a retry tier, the one it carries.
func originalTime(r *kgo.Record) time.Time {
	l, _ := letter.Parse(r) // r's own timestamp unless it is a letter
	return l.Timestamp
}

// eventHeaders are the record's own headers for the sink (templates,
// propagate_headers): fanout's park headers (fanout-*), which a record back
// from a retry tier carries too, are left out, so an event renders the same
// on every pass.
func eventHeaders(r *kgo.Record) []sink.Header {
	if len(r.Headers) == 0 {
		return nil
	}
	out := make([]sink.Header, 0, len(r.Headers))
	for _, hd := range r.Headers {
		if !strings.HasPrefix(hd.Key, letter.HeaderPrefix) {
			out = append(out, sink.Header{Key: hd.Key, Value: hd.Value})
		}
	}
	return out
}

// tierOf is the retry tier r was parked in, 0 for a record from the main
// topic (or the DLQ).
func tierOf(r *kgo.Record) int {
	l, _ := letter.Parse(r)
	return l.Tier
}

func (h *Handler) handle(ctx context.Context, r *kgo.Record) consumer.Outcome {
	if len(r.Value) > h.cfg.MaxEventBytes {
		return h.deadLetter(letter.ReasonTooLarge, fmt.Errorf("record of %d bytes exceeds max_event_bytes %d", len(r.Value), h.cfg.MaxEventBytes), 0, 0)
	}
	if h.cfg.MaxEventAge > 0 {
		if age := time.Since(originalTime(r)); age > h.cfg.MaxEventAge {
			return h.deadLetter(letter.ReasonTooOld, fmt.Errorf("event is %s old, over max_event_age %s", age.Round(time.Second), h.cfg.MaxEventAge), 0, 0)
		}
	}
	rec, err := h.decode(ctx, r)
	if err != nil {
		if ctx.Err() != nil {
			return consumer.Outcome{Verdict: consumer.Abandon, Err: err}
		}
		return h.deadLetter(letter.ReasonUndecodable, err, 0, 0)
	}
	if h.skips(rec) {
		return consumer.Outcome{Verdict: consumer.Done}
	}
	id := EventID(rec, r, h.cfg.IDField)
	ev := sink.Event{ID: id, Type: rec.Type, Body: rec.JSON, Record: rec.Fields, Headers: eventHeaders(r)}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.message.id", id), attribute.String("fanout.event.type", rec.Type))
	}

	// The breaker first: while the API is down, records wait here (holding
	// their lanes, so polling stops) instead of failing into the tiers, and
	// no dedupe lease is held meanwhile.
	fromTier := tierOf(r) > 0
	if !h.cfg.Dedupe {
		t, err := h.admit(ctx)
		if err != nil {
			return consumer.Outcome{Verdict: consumer.Abandon, Err: err}
		}
		t.fromTier = fromTier
		return h.deliver(ctx, ev, nil, t)
	}
	c := &claim{key: dedupe.Key(h.cfg.Sink, id), token: h.newToken()}
	t, out, err := h.admitClaim(ctx, c, fromTier)
	switch {
	case err != nil: // no ticket held
		return consumer.Outcome{Verdict: consumer.Abandon, Err: err}
	case out == dedupe.Duplicate:
		h.settle(t, sink.Canceled, 0)
		h.dups.Add(1)
		return consumer.Outcome{Verdict: consumer.Done}
	case out == dedupe.Claimed:
		return h.deliver(ctx, ev, c, t)
	default: // fail-open with the store down
		h.unprotected.Add(1)
		return h.deliver(ctx, ev, nil, t)
	}
}

// decode reads the record; registry outages are retried until ctx ends,
// undecodable data is returned as an error at once.
func (h *Handler) decode(ctx context.Context, r *kgo.Record) (*schemas.Record, error) {
	var rec *schemas.Record
	err := retry(ctx, func() (bool, error) {
		var err error
		rec, err = h.codec.Decode(ctx, r.Value)
		if err == nil || isDataError(err) {
			return true, err
		}
		h.log.Warn("schema lookup failed; retrying", "partition", r.Partition, "offset", r.Offset, "err", err)
		return false, err
	})
	return rec, err
}

// isDataError reports whether err condemns the record itself (a poison record:
// bad framing, unknown schema id, undecodable Avro) rather than a lookup that
// may succeed later (registry down, context ended).
func isDataError(err error) bool {
	var de *schemas.DecodeError
	return errors.As(err, &de)
}

// deliver sends ev and settles the claim c (nil: unclaimed).
//
// A retryable failure after which the breaker is no longer closed is the API's
// state, not the event's: the record keeps its claim, waits for the breaker
// like every other record of the sink, and is delivered again, instead of
// spending a retry tier on every failed probe and ending in the DLQ during a
// long outage.
func (h *Handler) deliver(ctx context.Context, ev sink.Event, c *claim, t ticket) consumer.Outcome {
	stop := h.keepClaim(c)
	var res sink.Result
	attempts := 0
	for {
		res = h.sink.Deliver(ctx, ev)
		attempts += res.Attempts
		h.settle(t, res.Class, res.Attempts)
		if res.Class != sink.Retryable || !h.breakerTripped() {
			break
		}
		next, err := h.admit(ctx)
		if err != nil {
			res = sink.Result{Class: sink.Canceled, Err: err, Status: res.Status}
			break
		}
		next.fromTier = t.fromTier
		t = next
	}
	stop()
	res.Attempts = attempts
	if res.Attempts > 1 {
		h.retried.Add(int64(res.Attempts - 1))
	}
	switch res.Class {
	case sink.Done:
		h.delivered.Add(1)
		if c != nil {
			h.markDone(ctx, c)
		}
		return consumer.Outcome{Verdict: consumer.Done, Status: res.Status, Attempts: res.Attempts}
	case sink.Canceled:
		h.release(c)
		return consumer.Outcome{Verdict: consumer.Abandon, Err: res.Err, Status: res.Status, Attempts: res.Attempts}
	case sink.Permanent:
		h.release(c)
		// Why the event cannot be delivered: it could not be rendered, the
		// API refused the token forwarded with it, or the API refused it.
		var out consumer.Outcome
		switch {
		case res.RenderFailed:
			out = h.deadLetter(letter.ReasonRenderFailed, res.Err, res.Status, res.Attempts)
		case res.PropagatedAuthRejected:
			out = h.deadLetter(letter.ReasonPropagatedAuth, res.Err, res.Status, res.Attempts)
		default:
			out = h.deadLetter(letter.ReasonPermanent, res.Err, res.Status, res.Attempts)
		}
		out.Excerpt = res.Excerpt
		return out
	default:
		h.release(c)
		out := h.deadLetter(letter.ReasonRetriesExhausted, res.Err, res.Status, res.Attempts)
		out.Retryable, out.Excerpt = true, res.Excerpt
		return out
	}
}

func (h *Handler) deadLetter(reason letter.Reason, err error, status, attempts int) consumer.Outcome {
	h.dead.Add(1)
	return consumer.Outcome{Verdict: consumer.DeadLetter, Reason: reason, Err: err, Status: status, Attempts: attempts}
}

// EventID is an event's identity: the configured Avro field, else the event-id
// header, else topic/partition/offset.
func EventID(rec *schemas.Record, r *kgo.Record, field string) string {
	if rec != nil {
		if v, ok := rec.Field(field); ok && v != "" {
			return v
		}
	}
	for _, hd := range r.Headers {
		if hd.Key == "event-id" && len(hd.Value) > 0 {
			return string(hd.Value)
		}
	}
	// A record back from a retry tier or the DLQ names the original.
	return consumer.Origin(r)
}

// retry calls fn until it reports done or ctx ends, backing off from 50ms to 2s.
func retry(ctx context.Context, fn func() (done bool, err error)) error {
	backoff := 50 * time.Millisecond
	for {
		done, err := fn()
		if done {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			if err == nil {
				err = ctx.Err()
			}
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}
