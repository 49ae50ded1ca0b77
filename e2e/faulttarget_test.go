package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/sinktest"
)

// faultTarget is a real HTTP API on 127.0.0.1 that misbehaves on purpose: a
// sinktest.API configured with fault modes (its Request and Answer hooks)
// and its ledger, served by an http.Server of the target's own so the
// listener can be closed and reopened. Latency (fixed + jitter), random 503s,
// connection resets, down windows (all 503, or connections refused), and slow
// (trickled) response bodies. The ledger records every request, so the
// checker can tell what the API accepted, when, from which fanout instance,
// and what it answered.
//
// Acceptance is decided when the request arrives, before any artificial delay,
// as sinktest.API does: a real API does the work even if the client goes away
// before the answer. A reset or a 503 is decided before that point, so it is
// never an acceptance.
type faultTarget struct {
	t    *testing.T
	name string // the sink it serves
	URL  string
	addr string
	api  *sinktest.API

	behaviour atomic.Pointer[faultBehaviour]
	down      atomic.Int32 // a downMode; 0 = up

	rngMu sync.Mutex
	rng   *rand.Rand

	mu     sync.Mutex
	srv    *http.Server
	ln     net.Listener // nil while refusing
	conns  map[net.Conn]http.ConnState
	closed bool
}

// faultBehaviour is how a faultTarget answers. The zero value answers 200 at once.
type faultBehaviour struct {
	Latency   time.Duration // added to every answer, after the decision
	Jitter    time.Duration // uniform [0, Jitter) on top of Latency
	ErrorRate float64       // share of requests answered 503 (no Retry-After)
	ResetRate float64       // share of requests whose connection is closed without an answer
	// SlowBodyRate is the share of 2xx answers whose body is trickled over
	// SlowBody (in 8 flushed chunks) after the header.
	SlowBodyRate float64
	SlowBody     time.Duration
	// Reject, if set, answers a permanent status for an event id (e.g. 422
	// for a poison subset); 0 means no opinion.
	Reject func(id string) int
	// LostRate is the share of accepted requests whose answer never reaches
	// fanout, in one of three ways picked at random: the connection is
	// dropped (RST) after the API decided; the answer is held for
	// SlowAnswer (set it above the sink's attempt timeout) so that fanout
	// gives up first; or, for a batch, the 2xx body with the per-event
	// results is cut off halfway. Each is recorded as a lost answer.
	LostRate   float64
	SlowAnswer time.Duration
}

// How an accepted request's answer is lost (faultBehaviour.LostRate).
const (
	loseNone  = iota
	loseDrop  // RST after the decision
	loseSlow  // answered after SlowAnswer (fanout's attempt timed out)
	loseCut   // batch only: a 2xx whose per-event body is cut off
	loseKinds // for a single request: drop or slow; for a batch: any of the three
)

type downMode int32

const (
	up         downMode = iota
	down503             // every request answered 503 with Retry-After: 1
	downRefuse          // the listener is closed: new connections refused, kept-alive ones reset
)

// faultRequest is one request as the API saw it.
type faultRequest struct {
	Seq      int    // arrival order at this API (decision order)
	Key      string // Idempotency-Key
	Instance string // X-Fanout-Instance: the fanout incarnation that sent it
	Trace    string // trace id from traceparent
	BodyHash [32]byte
	Arrived  time.Time // when the API decided
	Answered time.Time // when the answer was complete (a reset: just before it); zero if never
	Status   int       // 0 for a reset
	Accepted bool      // answered 2xx (decided at arrival)
	Slow     bool      // body trickled
	// Lost: the API accepted the request, but its answer never reached
	// fanout — dropped or cut off on purpose (LostRate), or the client had
	// gone away (closed the connection: an attempt timeout, a cancel at
	// drain_timeout or revoke_timeout, a dead process) before the answer
	// was written, or closed it right after the answer was written
	// (sinktest.Record.Closed: within 20ms, with no request after it on the
	// connection: an attempt that timed out just then). A client that goes
	// away later is not counted: it may have read the answer.
	Lost bool
	// Gone is when the client closed the connection while the API was
	// still handling the request (zero: it did not). A request whose client
	// has gone is no longer in flight for fanout.
	Gone time.Time
}

func newFaultTarget(t *testing.T, name string, b faultBehaviour) *faultTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ft := &faultTarget{t: t, name: name, addr: ln.Addr().String(), conns: map[net.Conn]http.ConnState{},
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
	ft.URL = "http://" + ft.addr + "/events"
	ft.behaviour.Store(&b)
	ft.api = sinktest.New(sinktest.Options{Ledger: true, Request: ft.decideRequest, Answer: ft.decideEvent})
	ft.srv = &http.Server{Handler: ft.api, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, ConnState: ft.connState}
	ft.ln = ln
	go ft.srv.Serve(ln)
	t.Cleanup(func() {
		ft.mu.Lock()
		ft.closed = true
		ft.mu.Unlock()
		ft.srv.Close()
		if n := ft.api.Unreadable.Load(); n > 0 {
			t.Errorf("%s: %d batch requests that are not a JSON array of events", ft.name, n)
		}
	})
	return ft
}

// set replaces the behaviour for requests arriving from now on.
func (ft *faultTarget) set(b faultBehaviour) { ft.behaviour.Store(&b) }

func (ft *faultTarget) connState(c net.Conn, s http.ConnState) {
	ft.api.ConnState(c, s)
	ft.mu.Lock()
	defer ft.mu.Unlock()
	switch s {
	case http.StateClosed, http.StateHijacked:
		delete(ft.conns, c)
	default:
		ft.conns[c] = s
	}
}

// goDown starts a down window. downRefuse closes the listener and the idle
// kept-alive connections; requests already being answered finish.
func (ft *faultTarget) goDown(m downMode) {
	ft.down.Store(int32(m))
	if m != downRefuse {
		return
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if ft.ln != nil {
		ft.ln.Close()
		ft.ln = nil
	}
	for c, s := range ft.conns {
		if s == http.StateIdle || s == http.StateNew {
			c.Close()
		}
	}
}

// goUp ends a down window; after downRefuse it listens on the same address again.
func (ft *faultTarget) goUp() {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if ft.ln == nil && !ft.closed {
		var ln net.Listener
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; {
			if ln, err = net.Listen("tcp", ft.addr); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			ft.t.Errorf("target %s: listen again on %s: %v", ft.name, ft.addr, err)
		} else {
			ft.ln = ln
			go ft.srv.Serve(ln)
		}
	}
	ft.down.Store(int32(up))
}

// downFor runs a down window of d in the background, starting now.
func (ft *faultTarget) downFor(m downMode, d time.Duration) {
	ft.goDown(m)
	time.AfterFunc(d, ft.goUp)
}

func (ft *faultTarget) float() float64 {
	ft.rngMu.Lock()
	defer ft.rngMu.Unlock()
	return ft.rng.Float64()
}

// delay is the behaviour's latency and jitter, added to every answer that is
// not a reset.
func (ft *faultTarget) delay(b *faultBehaviour) time.Duration {
	d := b.Latency
	if b.Jitter > 0 {
		d += time.Duration(ft.float() * float64(b.Jitter))
	}
	return d
}

// down503Answer is every request's answer in a down503 window.
func (ft *faultTarget) down503Answer(b *faultBehaviour) sinktest.Answer {
	return sinktest.Answer{Status: http.StatusServiceUnavailable, RetryAfter: time.Second, Delay: ft.delay(b)}
}

// decideRequest is the API's Request hook: down modes for every request, and
// for a CloudEvents batch (a batched sink's request) what applies to the
// request as a whole: resets, lost answers, latency and slow bodies (when
// every element is accepted). Each element is then decided on its own by
// decideEvent (Reject, ErrorRate) and the answer lists each element's status.
func (ft *faultTarget) decideRequest(r *http.Request) sinktest.Answer {
	b := ft.behaviour.Load()
	mode := downMode(ft.down.Load())
	switch {
	case mode == down503:
		return ft.down503Answer(b)
	case mode == downRefuse:
		return sinktest.Answer{Reset: true} // a kept-alive connection reaching a "down" API
	case !sinktest.IsBatch(r):
		return sinktest.Answer{} // decideEvent decides it all
	case ft.float() < b.ResetRate:
		return sinktest.Answer{Reset: true}
	}
	ans := sinktest.Answer{Delay: ft.delay(b)}
	ft.loseOrSlow(&ans, b, loseKinds)
	return ans
}

// decideEvent is the API's Answer hook: a single request's decision (Reject,
// then one draw for a reset or a 503, then how an accepted answer is lost or
// slowed), or a batch element's (Reject, ErrorRate).
func (ft *faultTarget) decideEvent(c sinktest.Call) sinktest.Answer {
	b := ft.behaviour.Load()
	status := http.StatusOK
	if b.Reject != nil {
		if s := b.Reject(c.Key); s != 0 {
			status = s
		}
	}
	if c.Batch {
		if status == http.StatusOK && ft.float() < b.ErrorRate {
			status = http.StatusServiceUnavailable
		}
		return sinktest.Answer{Status: status}
	}
	if status == http.StatusOK {
		switch x := ft.float(); {
		case x < b.ResetRate:
			return sinktest.Answer{Reset: true}
		case x < b.ResetRate+b.ErrorRate:
			status = http.StatusServiceUnavailable
		}
	}
	ans := sinktest.Answer{Status: status, Delay: ft.delay(b)}
	if status/100 == 2 {
		ft.loseOrSlow(&ans, b, loseCut)
	}
	return ans
}

// loseOrSlow picks how an accepted answer is lost (at LostRate; kinds bounds
// the choice: loseCut: drop or slow, loseKinds: also cut), or else whether
// its body is trickled (at SlowBodyRate).
func (ft *faultTarget) loseOrSlow(ans *sinktest.Answer, b *faultBehaviour, kinds int) {
	switch ft.lose(b, kinds) {
	case loseDrop:
		ans.Lose = sinktest.Drop
	case loseCut:
		ans.Lose = sinktest.Cut
	case loseSlow:
		ans.Delay += b.SlowAnswer // answered after fanout's attempt timed out
	default:
		if b.SlowBodyRate > 0 && ft.float() < b.SlowBodyRate {
			ans.Trickle = b.SlowBody
		}
	}
}

// lose picks how an accepted answer is lost (loseNone for most), at
// LostRate; kinds bounds the choice (loseCut: drop or slow, loseKinds: also
// cut).
func (ft *faultTarget) lose(b *faultBehaviour, kinds int) int {
	if b.LostRate == 0 || ft.float() >= b.LostRate {
		return loseNone
	}
	k := loseDrop + int(ft.float()*float64(kinds-loseDrop))
	if k == loseSlow && b.SlowAnswer == 0 {
		k = loseDrop
	}
	return k
}

// requests copies every request seen so far, in arrival order, from the
// API's ledger. An answer the client closed the connection on right after
// it was written (sinktest.Record.Closed: an attempt that timed out just
// then) counts as lost.
func (ft *faultTarget) requests() []faultRequest {
	recs := ft.api.Records()
	rs := make([]faultRequest, len(recs))
	for i, r := range recs {
		rs[i] = faultRequest{Seq: r.Seq, Key: r.Key, Instance: r.Header.Get("X-Fanout-Instance"), Trace: traceID(r.TraceParent),
			BodyHash: r.BodyHash, Arrived: r.Arrived, Answered: r.Answered, Status: r.Status, Accepted: r.Accepted,
			Slow: r.Slow, Lost: r.Lost || r.Closed, Gone: r.Gone}
	}
	return rs
}

// missing counts the ids not accepted yet.
func (ft *faultTarget) missing(ids []string) int {
	ft.api.Mu.Lock()
	defer ft.api.Mu.Unlock()
	n := 0
	for _, id := range ids {
		if ft.api.Accepted[id] == 0 {
			n++
		}
	}
	return n
}

// distinct is the number of ids accepted at least once.
func (ft *faultTarget) distinct() int { return ft.api.AcceptedCount() }

// counts summarises what the API answered, for logs.
func (ft *faultTarget) counts() string {
	reqs := ft.requests()
	var ok, e503, reset, other, slow, lost int
	for _, r := range reqs {
		if r.Lost {
			lost++
		}
		switch {
		case r.Accepted:
			ok++
		case r.Status == 0:
			reset++
		case r.Status == http.StatusServiceUnavailable:
			e503++
		default:
			other++
		}
		if r.Slow {
			slow++
		}
	}
	return fmt.Sprintf("%d requests: %d accepted (%d slow bodies, %d answers lost), %d×503, %d resets, %d other", len(reqs), ok, slow, lost, e503, reset, other)
}
