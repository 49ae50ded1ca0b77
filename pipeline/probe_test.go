package pipeline

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/sink"
)

// claimSignal is the in-memory store, telling on claims of one key.
type claimSignal struct {
	dedupe.Store
	key    string
	claims chan struct{}
	n      atomic.Int64 // claims of key so far
}

func (s *claimSignal) Claim(ctx context.Context, key, token string, lease time.Duration) (dedupe.Outcome, error) {
	out, err := s.Store.Claim(ctx, key, token, lease)
	if key == s.key {
		s.n.Add(1)
		select {
		case s.claims <- struct{}{}:
		default:
		}
	}
	return out, err
}

// lockedBuffer is a log sink safe to read while handlers write.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A record whose claim must wait (another owner's live lease) does not keep
// the half-open breaker's only probe slot meanwhile: another record probes,
// the breaker closes. The wait is counted and logged once, with the key.
func TestHalfOpenProbeNotHeldByWaitingClaim(t *testing.T) {
	c := codec(t)
	a := newAPI(t, 200)
	s, err := sink.New(sink.Config{Name: "profile", URL: a.srv.URL, Attempts: 1,
		Breaker: &sink.BreakerConfig{ConsecutiveFailures: 1, OpenFor: 50 * time.Millisecond, Probes: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	busyKey := dedupe.Key("profile", "6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a") // userDoc's id
	store := &claimSignal{Store: dedupe.NewMemory(), key: busyKey, claims: make(chan struct{}, 1)}
	var logs lockedBuffer
	h, err := New(Config{Sink: "profile", Dedupe: true}, c, store, HTTPSink(s), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := store.Store.Claim(context.Background(), busyKey, "other-owner", time.Minute); err != nil || out != dedupe.Claimed {
		t.Fatalf("the other owner's claim: %v %v", out, err)
	}
	br := s.Breaker()
	tk, _, _ := br.Allow()
	br.Done(tk, false) // one failure opens it
	deadline := time.Now().Add(5 * time.Second)
	for br.State() != sink.HalfOpen {
		if time.Now().After(deadline) {
			t.Fatalf("breaker %v, want half-open after open_for", br.State())
		}
		time.Sleep(5 * time.Millisecond)
	}

	waiting := make(chan consumer.Outcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		waiting <- h.Handle(ctx, record(t, c, "user.registered", userDoc))
	}()
	<-store.claims // the waiting record was admitted and found the claim busy

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	other := record(t, c, "user.registered", strings.Replace(userDoc, "6f1c5c1e", "7f1c5c1e", 1))
	if out := h.Handle(ctx, other); out.Verdict != consumer.Done {
		t.Fatalf("another record while one waits for a claim: %s (%v), want done: the waiting record kept the only probe slot", out.Verdict, out.Err)
	}
	if st := br.State(); st != sink.Closed {
		t.Fatalf("breaker %v after a successful probe, want closed", st)
	}

	// The other owner finishes once the record has found it busy a few
	// times: the waiting record finds the event done.
	for deadline := time.Now().Add(5 * time.Second); store.n.Load() < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("the waiting record claimed %d times, want 3", store.n.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := store.Store.Done(context.Background(), busyKey, time.Hour); err != nil {
		t.Fatal(err)
	}
	if out := <-waiting; out.Verdict != consumer.Done || a.requests.Load() != 1 {
		t.Fatalf("the waiting record: %s (%v), %d requests; want done as a duplicate, 1 request", out.Verdict, out.Err, a.requests.Load())
	}
	if n := h.Stats().ClaimBusyWaits; n != 1 {
		t.Errorf("ClaimBusyWaits = %d, want 1 (one record waited)", n)
	}
	if n := strings.Count(logs.String(), "key="+busyKey); n != 1 {
		t.Errorf("the wait was logged %d times with its key, want once:\n%s", n, logs.String())
	}
}
