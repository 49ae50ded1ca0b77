package pipeline

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/e2e/services"
	"github.com/fanout-dev/fanout/letter"
	"github.com/fanout-dev/fanout/sink"
)

// Key order across retry tiers, against a real redis-server. The Redis
// client talks to it through cutProxy, which can let one command take effect
// and then cut the connection before its reply: the client sees EOF and
// sends the command again (go-redis's MaxRetries), or reports ErrUnavailable
// and the handler retries it — both re-apply a write that already happened.

// cutProxy relays TCP between a Redis client and a real redis-server.
type cutProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Int32 // commands whose reply is still to be cut
	cuts   atomic.Int32 // replies cut so far
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.relay(c) }()
		}
	}()
	return p
}

// cutNext makes the next command sent through the proxy take effect on the
// server with its reply lost (the connection is closed instead).
func (p *cutProxy) cutNext() { p.armed.Add(1) }

func (p *cutProxy) relay(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	var cut atomic.Bool // set before the command reaches the server
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer server.Close() // the client left: so does the server side
		buf := make([]byte, 64<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				if a := p.armed.Load(); a > 0 && p.armed.CompareAndSwap(a, a-1) {
					cut.Store(true)
				}
				if _, werr := server.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if cut.Load() { // the server has run the command: lose its reply
				p.cuts.Add(1)
				client.Close()
				server.Close()
				break
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	client.Close()
	<-done
}

// orderAPI answers by event id: 503 for the ids in fail, 200 otherwise, and
// calls onRequest (if set) before answering.
type orderAPI struct {
	srv       *httptest.Server
	mu        sync.Mutex
	fail      map[string]bool
	onRequest func(id string)
	delivered []string
}

func newOrderAPI(t *testing.T) *orderAPI {
	a := &orderAPI{fail: map[string]bool{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		id := r.Header.Get("Idempotency-Key")
		a.mu.Lock()
		fail, on := a.fail[id], a.onRequest
		if !fail {
			a.delivered = append(a.delivered, id)
		}
		a.mu.Unlock()
		if on != nil {
			on(id)
		}
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *orderAPI) set(fn func(a *orderAPI)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn(a)
}

// keyed is one record of a key-ordered sink: event id n, record key key, at
// offset n of events partition 0 (tier 0), or read back from tier (tier > 0)
// with the headers the consumer parks it with.
type keyed struct {
	t     *testing.T
	h     *Handler
	key   string
	tiers int
}

func eventIDOf(n int) string {
	return "00000000-0000-4000-8000-" + strings.Repeat("0", 12-len(strconv.Itoa(n))) + strconv.Itoa(n)
}

func (k keyed) record(n, tier int) *kgo.Record {
	k.t.Helper()
	c := k.h.codec
	doc := strings.Replace(userDoc, "6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a", eventIDOf(n), 1)
	v, _, err := c.EncodeJSON(context.Background(), "user.registered", []byte(doc))
	if err != nil {
		k.t.Fatal(err)
	}
	r := &kgo.Record{Topic: "events", Partition: 0, Offset: int64(n), Key: []byte(k.key), Value: v, Timestamp: time.Now()}
	if tier == 0 {
		return r
	}
	// As consumer.ParkedRecord writes it.
	return consumer.ParkedRecord("events.profile.retry."+strconv.Itoa(tier), "profile", r,
		consumer.Outcome{Verdict: consumer.DeadLetter, Retryable: true, Reason: "retries-exhausted"}, time.Now(),
		&consumer.Tier{Number: tier, Topic: "events.profile.retry." + strconv.Itoa(tier)})
}

// handle runs record n (from tier) through the handler as the consumer
// would; parked says whether its park is acknowledged (OnParked called).
func (k keyed) handle(n, tier int, parked bool) consumer.Outcome {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := k.h.Handle(ctx, k.record(n, tier))
	if parked && out.OnParked != nil {
		out.OnParked()
	}
	return out
}

// want checks that record n from tier ends as verdict (and, for a dead
// letter, with reason).
func (k keyed) want(n, tier int, parked bool, verdict consumer.Verdict, reason letter.Reason) {
	k.t.Helper()
	out := k.handle(n, tier, parked)
	if out.Verdict != verdict || (verdict == consumer.DeadLetter && out.Reason != reason) {
		k.t.Fatalf("event %d from tier %d: outcome %s/%q (%v), want %s/%q", n, tier, out.Verdict, out.Reason, out.Err, verdict, reason)
	}
}

// newKeyOrderHandler is a key-ordered handler (2 tiers, no dedupe, one
// attempt in-line) whose barriers live on redis at addr.
func newKeyOrderHandler(t *testing.T, addr string, maxRetries int, cfg Config, url string) *Handler {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, DialerRetries: 1, ReadTimeout: time.Second,
		MaxRetries: maxRetries, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	s, err := sink.New(sink.Config{Name: "profile", URL: url, Attempts: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	cfg.Sink, cfg.KeyOrder, cfg.Tiers = "profile", true, 2
	h, err := New(cfg, codec(t), nil, HTTPSink(s), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return h.WithBarriers(dedupe.NewRedisBarriers(client, "t:"+dedupe.NewToken()[:8]+":"))
}

// A barrier write applied twice — go-redis re-sending it after an EOF, or the
// handler retrying after ErrUnavailable — changes nothing.
func TestKeyOrderBarrierWriteAppliedTwice(t *testing.T) {
	srv := services.NewRedis(t)
	for _, resend := range []struct {
		name       string
		maxRetries int
	}{{"go-redis re-sends", 2}, {"handler retries", -1}} {
		t.Run(resend.name, func(t *testing.T) {
			// A re-sent +1: A fails into tier 1 (the Enter is applied
			// twice), is delivered from there; the key is free again.
			t.Run("enter", func(t *testing.T) {
				p := newCutProxy(t, srv.Addr)
				a := newOrderAPI(t)
				k := keyed{t: t, h: newKeyOrderHandler(t, p.ln.Addr().String(), resend.maxRetries, Config{}, a.srv.URL), key: "k"}
				warmUp(k, a)
				a.set(func(a *orderAPI) {
					a.fail[eventIDOf(1)] = true
					a.onRequest = func(string) { p.cutNext() } // the next Redis command is A's park into tier 1
				})
				k.want(1, 0, true, consumer.DeadLetter, "retries-exhausted")
				a.set(func(a *orderAPI) { a.fail, a.onRequest = map[string]bool{}, nil })
				if p.cuts.Load() != 1 {
					t.Fatalf("%d replies cut, want 1", p.cuts.Load())
				}
				k.want(1, 1, true, consumer.Done, "")
				k.want(3, 0, true, consumer.Done, "") // no phantom left in tier 1
			})
			// A re-sent -1: A and B of one key are in tier 1; A leaves
			// (the Leave is applied twice); B still holds the key.
			t.Run("leave", func(t *testing.T) {
				p := newCutProxy(t, srv.Addr)
				a := newOrderAPI(t)
				k := keyed{t: t, h: newKeyOrderHandler(t, p.ln.Addr().String(), resend.maxRetries, Config{}, a.srv.URL), key: "k"}
				warmUp(k, a)
				a.set(func(a *orderAPI) { a.fail[eventIDOf(1)] = true })
				k.want(1, 0, true, consumer.DeadLetter, "retries-exhausted")
				k.want(2, 0, true, consumer.DeadLetter, "behind-earlier-of-key")
				a.set(func(a *orderAPI) {
					a.fail = map[string]bool{}
					a.onRequest = func(id string) {
						if id == eventIDOf(1) {
							p.cutNext() // the next Redis command is A leaving tier 1
						}
					}
				})
				k.want(1, 1, true, consumer.Done, "")
				if p.cuts.Load() != 1 {
					t.Fatalf("%d replies cut, want 1", p.cuts.Load())
				}
				k.want(3, 0, true, consumer.DeadLetter, "behind-earlier-of-key") // B is still in tier 1
				k.want(2, 1, true, consumer.Done, "")
				k.want(3, 1, true, consumer.Done, "")
				k.want(4, 0, true, consumer.Done, "")
			})
		})
	}
}

// warmUp runs one record of another key through tier 1, so the store's
// scripts are loaded and the cut hits the command itself, not a NOSCRIPT
// round trip.
func warmUp(k keyed, a *orderAPI) {
	k.t.Helper()
	w := keyed{t: k.t, h: k.h, key: "warm-up"}
	a.set(func(a *orderAPI) { a.fail[eventIDOf(100)] = true })
	w.want(100, 0, true, consumer.DeadLetter, "retries-exhausted")
	a.set(func(a *orderAPI) { delete(a.fail, eventIDOf(100)) })
	w.want(100, 1, true, consumer.Done, "")
}

// A park that failed after its record entered the next tier (the consumer
// abandons the record, so the same record is handled again) does not leave
// a phantom: its own membership parks it into that tier, where it then
// leaves as usual.
func TestKeyOrderFailedParkHeals(t *testing.T) {
	srv := services.NewRedis(t)
	a := newOrderAPI(t)
	k := keyed{t: t, h: newKeyOrderHandler(t, srv.Addr, 2, Config{}, a.srv.URL), key: "k"}
	a.set(func(a *orderAPI) { a.fail[eventIDOf(1)] = true })
	k.want(1, 0, false, consumer.DeadLetter, "retries-exhausted") // entered tier 1; the park failed
	a.set(func(a *orderAPI) { a.fail = map[string]bool{} })
	k.want(1, 0, true, consumer.DeadLetter, "behind-earlier-of-key") // handled again: into tier 1 after all
	k.want(1, 1, true, consumer.Done, "")
	k.want(3, 0, true, consumer.Done, "") // nothing left behind
}

// A membership nothing removes (a park that failed and a record never seen
// again, a release that never got through) expires BarrierTTL after it was
// written, even while the key stays busy: its other records' parks do not
// keep it alive.
func TestKeyOrderPhantomExpiresOnBusyKey(t *testing.T) {
	const ttl = 300 * time.Millisecond
	srv := services.NewRedis(t)
	a := newOrderAPI(t)
	k := keyed{t: t, h: newKeyOrderHandler(t, srv.Addr, 2, Config{BarrierTTL: ttl}, a.srv.URL), key: "k"}
	a.set(func(a *orderAPI) { a.fail[eventIDOf(1)] = true })
	start := time.Now()
	k.want(1, 0, false, consumer.DeadLetter, "retries-exhausted") // the phantom
	a.set(func(a *orderAPI) { a.fail = map[string]bool{} })
	for n := 2; ; n++ {
		out := k.handle(n, 0, true)
		if out.Verdict == consumer.Done {
			t.Logf("event %d delivered straight %v after the phantom was written (ttl %v)", n, time.Since(start).Round(time.Millisecond), ttl)
			break
		}
		if out.Reason != "behind-earlier-of-key" {
			t.Fatalf("event %d: %+v", n, out)
		}
		k.want(n, 1, true, consumer.Done, "") // the key's traffic goes through tier 1 meanwhile
		if time.Since(start) > 20*ttl {
			t.Fatalf("the key is still held %v after a phantom with ttl %v was written", time.Since(start), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if time.Since(start) < ttl {
		t.Fatalf("the phantom was gone before its ttl")
	}
}

// Fail-open covers the order barriers too: with Redis unreachable a record
// failing into a tier is parked there without a membership (not held until
// revoke), later records are not checked, and leaving a tier does not hold
// the record's worker.
func TestKeyOrderFailOpen(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	a := newOrderAPI(t)
	for _, c := range []struct {
		name     string
		failOpen bool
		verdict  consumer.Verdict
	}{
		{"fail-open goes on without order", true, consumer.DeadLetter},
		{"fail-closed holds the record", false, consumer.Abandon},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newKeyOrderHandler(t, down, -1, Config{FailOpen: c.failOpen}, a.srv.URL)
			k := keyed{t: t, h: h, key: "k"}
			a.set(func(a *orderAPI) { a.fail[eventIDOf(1)] = true })
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			out := h.Handle(ctx, k.record(1, 0))
			if out.Verdict != c.verdict {
				t.Fatalf("a failing record with Redis down: %s (%v), want %s", out.Verdict, out.Err, c.verdict)
			}
			if !c.failOpen {
				return
			}
			if out.Reason != "retries-exhausted" || !out.Retryable {
				t.Fatalf("outcome %+v, want a retryable dead letter for the next tier", out)
			}
			a.set(func(a *orderAPI) { a.fail = map[string]bool{} })
			ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			out = h.Handle(ctx, k.record(1, 1)) // back from tier 1
			if out.Verdict != consumer.Done {
				t.Fatalf("from tier 1 with Redis down: %s (%v), want done", out.Verdict, out.Err)
			}
			if s := h.Stats(); s.Unordered < 3 { // 2 unchecked records + 1 park without membership
				t.Fatalf("Unordered = %d, want at least 3", s.Unordered)
			}
		})
	}
}
