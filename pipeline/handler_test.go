package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/letter"
	"github.com/fanout-dev/fanout/schemas"
	"github.com/fanout-dev/fanout/sink"
)

const userDoc = `{"id":"6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a","email":"ada@example.com","name":"Ada","plan":"PRO","created_at":"2026-11-27T10:00:00.000Z","referrer":null,"metadata":{}}`

func codec(t testing.TB) *schemas.Codec {
	t.Helper()
	reg, err := schemas.NewLocal(schemas.Builtin(), schemas.BuiltinSubjects)
	if err != nil {
		t.Fatal(err)
	}
	return schemas.NewCodec(reg)
}

func record(t testing.TB, c *schemas.Codec, subject, doc string) *kgo.Record {
	t.Helper()
	v, _, err := c.EncodeJSON(context.Background(), subject, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: "events", Partition: 1, Offset: 42, Value: v}
}

// api is a real HTTP server answering status and counting requests.
type api struct {
	srv      *httptest.Server
	status   atomic.Int64
	requests atomic.Int64
	lastKey  atomic.Value
}

func newAPI(t testing.TB, status int) *api {
	a := &api{}
	a.status.Store(int64(status))
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		a.requests.Add(1)
		a.lastKey.Store(r.Header.Get("Idempotency-Key"))
		w.WriteHeader(int(a.status.Load()))
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func newHandler(t testing.TB, cfg Config, store dedupe.Store, url string) *Handler {
	t.Helper()
	s, err := sink.New(sink.Config{Name: "profile", URL: url, Attempts: 2, BackoffBase: time.Millisecond, BackoffCap: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	cfg.Sink = "profile"
	h, err := New(cfg, codec(t), store, HTTPSink(s), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHandleVerdicts(t *testing.T) {
	c := codec(t)
	good := record(t, c, "user.registered", userDoc)
	order := record(t, c, "order.placed", `{"id":"7f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a","user_id":"u1","amount":"12.50","currency":"EUR","items":[],"placed_at":"2026-11-27T10:00:00.000Z"}`)
	tests := []struct {
		name    string
		rec     *kgo.Record
		status  int
		cfg     Config
		verdict consumer.Verdict
		reason  letter.Reason
		calls   int64
	}{
		{"delivered", good, 201, Config{Dedupe: true}, consumer.Done, "", 1},
		{"permanent", good, 400, Config{Dedupe: true}, consumer.DeadLetter, "permanent", 1},
		{"retries spent", good, 503, Config{Dedupe: true}, consumer.DeadLetter, "retries-exhausted", 2},
		{"bad magic", &kgo.Record{Value: []byte(`{"json":true}`)}, 200, Config{Dedupe: true}, consumer.DeadLetter, "undecodable", 0},
		{"unknown schema id", &kgo.Record{Value: []byte{0, 0, 0, 0, 99, 2}}, 200, Config{Dedupe: true}, consumer.DeadLetter, "undecodable", 0},
		{"truncated", &kgo.Record{Value: good.Value[:len(good.Value)-3]}, 200, Config{Dedupe: true}, consumer.DeadLetter, "undecodable", 0},
		{"too large", good, 200, Config{Dedupe: true, MaxEventBytes: 10}, consumer.DeadLetter, "too-large", 0},
		{"other type skipped", order, 200, Config{Dedupe: true, Types: []string{"user.registered"}}, consumer.Done, "", 0},
		{"type kept", order, 200, Config{Dedupe: true, Types: []string{"order.placed"}}, consumer.Done, "", 1},
		{"no dedupe", good, 200, Config{}, consumer.Done, "", 1},
		{"too old", &kgo.Record{Value: good.Value, Timestamp: time.Now().Add(-2 * time.Hour)}, 200, Config{MaxEventAge: time.Hour}, consumer.DeadLetter, "too-old", 0},
		{"young enough", &kgo.Record{Value: good.Value, Timestamp: time.Now().Add(-time.Minute)}, 200, Config{MaxEventAge: time.Hour}, consumer.Done, "", 1},
		{"too old by its original time, back from a tier", &kgo.Record{Value: good.Value, Timestamp: time.Now(), Headers: []kgo.RecordHeader{
			{Key: letter.HeaderTimestamp, Value: []byte(time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339Nano))}}}, 200, Config{MaxEventAge: time.Hour}, consumer.DeadLetter, "too-old", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAPI(t, tt.status)
			h := newHandler(t, tt.cfg, dedupe.NewMemory(), a.srv.URL)
			out := h.Handle(context.Background(), tt.rec)
			if out.Verdict != tt.verdict || out.Reason != tt.reason {
				t.Fatalf("outcome %+v, want %s/%q", out, tt.verdict, tt.reason)
			}
			if n := a.requests.Load(); n != tt.calls {
				t.Fatalf("API called %d times, want %d", n, tt.calls)
			}
			if out.Verdict == consumer.DeadLetter && out.Err == nil {
				t.Fatal("dead letter without an error")
			}
		})
	}
}

// A delivered event is not delivered again; a failed one is released so the
// next attempt (redrive, next owner) can deliver it.
func TestDedupeAcrossRedeliveries(t *testing.T) {
	c := codec(t)
	rec := record(t, c, "user.registered", userDoc)
	store := dedupe.NewMemory()
	a := newAPI(t, 500)
	h := newHandler(t, Config{Dedupe: true}, store, a.srv.URL)
	if out := h.Handle(context.Background(), rec); out.Verdict != consumer.DeadLetter {
		t.Fatalf("first: %+v", out)
	}
	a.status.Store(200)
	for i := range 3 {
		if out := h.Handle(context.Background(), rec); out.Verdict != consumer.Done {
			t.Fatalf("redelivery %d: %+v", i, out)
		}
	}
	if n := a.requests.Load(); n != 3 { // 2 failed attempts + 1 success
		t.Fatalf("API saw %d requests, want 3", n)
	}
	if s := h.Stats(); s.Delivered != 1 || s.Duplicates != 2 {
		t.Fatalf("stats %+v", s)
	}
	if got := a.lastKey.Load(); got != "6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a" {
		t.Fatalf("Idempotency-Key %v, want the event id", got)
	}
}

// A claim held by a live owner is waited for, never delivered concurrently.
func TestBusyClaimWaits(t *testing.T) {
	c := codec(t)
	rec := record(t, c, "user.registered", userDoc)
	store := dedupe.NewMemory()
	key := dedupe.Key("profile", "6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a")
	if _, err := store.Claim(context.Background(), key, "other-owner", time.Minute); err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, 200)
	h := newHandler(t, Config{Dedupe: true}, store, a.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if out := h.Handle(ctx, rec); out.Verdict != consumer.Abandon {
		t.Fatalf("outcome %+v, want abandon after waiting", out)
	}
	if a.requests.Load() != 0 {
		t.Fatal("delivered while another owner held the claim")
	}
	// The other owner finishes: the event is a duplicate now.
	if err := store.Done(context.Background(), key, time.Hour); err != nil {
		t.Fatal(err)
	}
	if out := h.Handle(context.Background(), rec); out.Verdict != consumer.Done || a.requests.Load() != 0 {
		t.Fatalf("outcome %+v requests %d", out, a.requests.Load())
	}
}

// unreachableStore is the real Redis store pointed at a port nothing listens on.
func unreachableStore(t *testing.T) dedupe.Store {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	client := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 50 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	return dedupe.NewRedis(client, "t:")
}

func TestRedisDownPolicy(t *testing.T) {
	c := codec(t)
	rec := record(t, c, "user.registered", userDoc)
	t.Run("fail-closed holds the record", func(t *testing.T) {
		a := newAPI(t, 200)
		h := newHandler(t, Config{Dedupe: true}, unreachableStore(t), a.srv.URL)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		out := h.Handle(ctx, rec)
		if out.Verdict != consumer.Abandon || a.requests.Load() != 0 {
			t.Fatalf("outcome %+v, %d requests; want abandon and no delivery", out, a.requests.Load())
		}
		if !errors.Is(out.Err, context.DeadlineExceeded) || !strings.Contains(out.Err.Error(), "unavailable") {
			t.Fatalf("error %v should name the deadline and the store outage", out.Err)
		}
		if h.Stats().StoreErrors < 2 {
			t.Fatalf("store retried %d times, want backoff retries", h.Stats().StoreErrors)
		}
	})
	t.Run("fail-open delivers unprotected", func(t *testing.T) {
		a := newAPI(t, 200)
		h := newHandler(t, Config{Dedupe: true, FailOpen: true}, unreachableStore(t), a.srv.URL)
		out := h.Handle(context.Background(), rec)
		if out.Verdict != consumer.Done || a.requests.Load() != 1 || h.Stats().Unprotected != 1 {
			t.Fatalf("outcome %+v requests %d stats %+v", out, a.requests.Load(), h.Stats())
		}
	})
}

func TestEventID(t *testing.T) {
	c := codec(t)
	rec := record(t, c, "user.registered", userDoc)
	decoded, err := c.Decode(context.Background(), rec.Value)
	if err != nil {
		t.Fatal(err)
	}
	hdr := &kgo.Record{Topic: "events", Partition: 2, Offset: 7, Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("from-header")}}}
	bare := &kgo.Record{Topic: "events", Partition: 2, Offset: 7}
	for _, tt := range []struct {
		name  string
		rec   *schemas.Record
		r     *kgo.Record
		field string
		want  string
	}{
		{"field", decoded, hdr, "id", "6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a"},
		{"other field", decoded, hdr, "email", "ada@example.com"},
		{"null field falls back to header", decoded, hdr, "referrer", "from-header"},
		{"header", nil, hdr, "id", "from-header"},
		{"coordinates", nil, bare, "id", "events/2/7"},
		{"original coordinates of a parked record", nil, &kgo.Record{Topic: "events.profile.retry.1", Partition: 0, Offset: 3, Headers: []kgo.RecordHeader{
			{Key: letter.HeaderTopic, Value: []byte("events")}, {Key: letter.HeaderPartition, Value: []byte("2")}, {Key: letter.HeaderOffset, Value: []byte("7")}}}, "id", "events/2/7"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := EventID(tt.rec, tt.r, tt.field); got != tt.want {
				t.Fatalf("EventID = %q, want %q", got, tt.want)
			}
		})
	}
}

// A delivery slower than the lease keeps its claim: the lease is renewed, so
// no other owner can claim the event while the request is on the wire.
func TestClaimRenewedDuringSlowDelivery(t *testing.T) {
	c := codec(t)
	rec := record(t, c, "user.registered", userDoc)
	store := dedupe.NewMemory()
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.WriteHeader(200)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	s, err := sink.New(sink.Config{Name: "profile", URL: srv.URL, Timeout: 30 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const lease = 300 * time.Millisecond
	h, err := New(Config{Sink: "profile", Dedupe: true, Lease: lease}, c, store, HTTPSink(s), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan consumer.Outcome, 1)
	go func() { done <- h.Handle(context.Background(), rec) }()
	<-arrived // the claim is held and the request is on the wire
	key := dedupe.Key("profile", "6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a")
	for range 8 { // 8 × 200ms: over five leases long
		time.Sleep(200 * time.Millisecond)
		if out, err := store.Claim(context.Background(), key, "intruder", time.Minute); err != nil || out != dedupe.Busy {
			t.Fatalf("another owner's claim during the delivery: %v %v, want busy", out, err)
		}
	}
	release <- struct{}{}
	if out := <-done; out.Verdict != consumer.Done {
		t.Fatalf("outcome %+v", out)
	}
}

// A failure that trips the breaker holds its record (claim kept) until the API
// is back, instead of sending it down the retry tiers with every failed probe.
func TestBreakerHoldsInsteadOfEscalating(t *testing.T) {
	c := codec(t)
	var healed atomic.Bool
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if !healed.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	s, err := sink.New(sink.Config{Name: "profile", URL: srv.URL, Attempts: 1,
		Breaker: &sink.BreakerConfig{ConsecutiveFailures: 2, OpenFor: 100 * time.Millisecond, MaxOpenFor: 200 * time.Millisecond}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	h, err := New(Config{Sink: "profile", Dedupe: true}, c, dedupe.NewMemory(), HTTPSink(s), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	first := record(t, c, "user.registered", userDoc)
	if out := h.Handle(context.Background(), first); out.Verdict != consumer.DeadLetter || !out.Retryable {
		t.Fatalf("a failure with the breaker still closed: %+v, want a retryable dead letter (next tier)", out)
	}
	time.AfterFunc(700*time.Millisecond, func() { healed.Store(true) })
	second := record(t, c, "user.registered", strings.Replace(userDoc, "6f1c5c1e", "7f1c5c1e", 1))
	out := h.Handle(context.Background(), second)
	if out.Verdict != consumer.Done || out.Attempts < 3 {
		t.Fatalf("the failure that tripped the breaker: %+v, want held and delivered after probes", out)
	}
	if s.Breaker().State() != sink.Closed {
		t.Fatalf("breaker %v after the API healed", s.Breaker().State())
	}
}
