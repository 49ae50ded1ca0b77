package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/sinktest"
)

// faultTarget is a real HTTP API on 127.0.0.1 that misbehaves on purpose
// (built on sinktest's batch parsing and failure modes, with a per-request
// ledger of its own for the checker):
// latency (fixed + jitter), random 503s, connection resets, down windows (all
// 503, or connections refused), and slow (trickled) response bodies. It records
// every request it sees, so the checker can tell what the API accepted, when,
// from which fanout instance, and what it answered.
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

	behaviour atomic.Pointer[faultBehaviour]
	down      atomic.Int32 // a downMode; 0 = up

	rngMu sync.Mutex
	rng   *rand.Rand

	inflight atomic.Int64

	mu       sync.Mutex
	srv      *http.Server
	ln       net.Listener // nil while refusing
	conns    map[net.Conn]http.ConnState
	reqs     []faultRequest
	accepted map[string]int // Idempotency-Key → acceptances
	closed   bool
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
	// was written. A client that goes away after the answer was written is
	// not counted: it may have read it.
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
		accepted: map[string]int{}, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
	ft.URL = "http://" + ft.addr + "/events"
	ft.behaviour.Store(&b)
	ft.srv = &http.Server{Handler: ft, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, ConnState: ft.connState}
	ft.ln = ln
	go ft.srv.Serve(ln)
	t.Cleanup(func() {
		ft.mu.Lock()
		ft.closed = true
		ft.mu.Unlock()
		ft.srv.Close()
	})
	return ft
}

// set replaces the behaviour for requests arriving from now on.
func (ft *faultTarget) set(b faultBehaviour) { ft.behaviour.Store(&b) }

func (ft *faultTarget) connState(c net.Conn, s http.ConnState) {
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

func (ft *faultTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ft.inflight.Add(1)
	defer ft.inflight.Add(-1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client went away mid-request: nothing was decided
	}
	b := ft.behaviour.Load()
	if sinktest.IsBatch(r) {
		ft.serveBatch(w, r, b, body)
		return
	}
	var idx []int // the requests recorded for r, set below
	stopGone := ft.watchGone(r, &idx)
	defer stopGone()
	req := faultRequest{
		Key:      r.Header.Get("Idempotency-Key"),
		Instance: r.Header.Get("X-Fanout-Instance"),
		Trace:    traceID(r.Header.Get("traceparent")),
		BodyHash: sha256.Sum256(body),
	}
	status := http.StatusOK
	reset := false
	switch downMode(ft.down.Load()) {
	case down503:
		status = http.StatusServiceUnavailable
	case downRefuse:
		reset = true // a kept-alive connection reaching a "down" API
	default:
		if b.Reject != nil {
			if s := b.Reject(req.Key); s != 0 {
				status = s
			}
		}
		if status == http.StatusOK {
			switch x := ft.float(); {
			case x < b.ResetRate:
				reset = true
			case x < b.ResetRate+b.ErrorRate:
				status = http.StatusServiceUnavailable
			}
		}
	}
	if reset {
		status = 0
	}
	req.Status, req.Accepted = status, status/100 == 2
	lose := ft.lose(req.Accepted, b, loseCut)
	req.Slow = req.Accepted && lose == loseNone && b.SlowBodyRate > 0 && ft.float() < b.SlowBodyRate
	req.Lost = lose == loseDrop
	i := ft.record(req)
	ft.mu.Lock()
	idx = []int{i}
	ft.mu.Unlock()

	if reset || lose == loseDrop {
		ft.answered(i) // before the RST: the client may send its retry at once
		sinktest.ResetConn(w)
		return
	}
	if lose == loseSlow {
		ft.holdAnswer(r, b.SlowAnswer)
	}
	ft.wait(b)
	if req.Accepted && r.Context().Err() != nil {
		ft.lost(i) // the client went away before the answer was written
	}
	if status == http.StatusServiceUnavailable && downMode(ft.down.Load()) == down503 {
		w.Header().Set("Retry-After", "1")
	}
	if req.Slow {
		w.WriteHeader(status)
		sinktest.Trickle(w, b.SlowBody)
	} else {
		w.WriteHeader(status)
		io.WriteString(w, http.StatusText(status))
	}
	ft.answered(i)
}

// wait sleeps the behaviour's latency and jitter.
func (ft *faultTarget) wait(b *faultBehaviour) {
	delay := b.Latency
	if b.Jitter > 0 {
		delay += time.Duration(ft.float() * float64(b.Jitter))
	}
	if delay > 0 {
		time.Sleep(delay)
	}
}

// serveBatch takes a CloudEvents batch (a batched sink's request) like an
// API that accepts arrays: each element is recorded as a request of its own
// (its id, trace and data), decided on its own (Reject, ErrorRate), and the
// answer lists each element's status. Down modes, resets, latency and slow
// bodies (when every element is accepted) apply to the request as a whole.
func (ft *faultTarget) serveBatch(w http.ResponseWriter, r *http.Request, b *faultBehaviour, body []byte) {
	evs, err := sinktest.ParseBatch(body)
	if err != nil {
		ft.t.Errorf("%s: a batch request that is not a JSON array of events: %v", ft.name, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	mode := downMode(ft.down.Load())
	whole := 0 // a status for the request as a whole; 0: per element
	switch {
	case mode == down503:
		whole = http.StatusServiceUnavailable
	case mode == downRefuse || ft.float() < b.ResetRate:
		whole = -1 // reset
	}
	statuses := make([]int, len(evs))
	idx := make([]int, 0, len(evs))
	stopGone := ft.watchGone(r, &idx)
	defer stopGone()
	lose := ft.lose(whole == 0, b, loseKinds)
	slow := whole == 0 && lose == loseNone && b.SlowBodyRate > 0 && ft.float() < b.SlowBodyRate
	allOK := true
	for i, ev := range evs {
		req := faultRequest{Key: ev.ID, Instance: r.Header.Get("X-Fanout-Instance"), Trace: traceID(ev.TraceParent), BodyHash: sha256.Sum256(ev.Data)}
		status := http.StatusOK
		switch {
		case whole == -1:
			status = 0
		case whole != 0:
			status = whole
		default:
			if b.Reject != nil {
				if s := b.Reject(req.Key); s != 0 {
					status = s
				}
			}
			if status == http.StatusOK && ft.float() < b.ErrorRate {
				status = http.StatusServiceUnavailable
			}
		}
		req.Status, req.Accepted = status, status/100 == 2
		req.Slow = slow && req.Accepted
		req.Lost = req.Accepted && (lose == loseDrop || lose == loseCut)
		statuses[i] = status
		allOK = allOK && req.Accepted
		j := ft.record(req)
		ft.mu.Lock()
		idx = append(idx, j)
		ft.mu.Unlock()
	}
	answered := func() {
		for _, i := range idx {
			ft.answered(i)
		}
	}
	if whole == -1 || lose == loseDrop {
		answered() // before the RST: the client may send its retry at once
		sinktest.ResetConn(w)
		return
	}
	if lose == loseSlow {
		ft.holdAnswer(r, b.SlowAnswer)
	}
	ft.wait(b)
	if r.Context().Err() != nil {
		for k, i := range idx {
			if statuses[k]/100 == 2 {
				ft.lost(i) // the client went away before the answer was written
			}
		}
	}
	switch {
	case lose == loseCut:
		sinktest.CutAnswer(w, statuses)
	case whole != 0:
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(whole)
	case allOK && slow:
		w.WriteHeader(http.StatusOK)
		sinktest.Trickle(w, b.SlowBody)
	case allOK:
		w.WriteHeader(http.StatusOK)
	default:
		sinktest.WriteResults(w, statuses)
	}
	answered()
}

// lose picks how an answer is lost (loseNone for most): only an accepted
// request's, at LostRate; kinds bounds the choice (loseCut: drop or slow,
// loseKinds: also cut).
func (ft *faultTarget) lose(accepted bool, b *faultBehaviour, kinds int) int {
	if !accepted || b.LostRate == 0 || ft.float() >= b.LostRate {
		return loseNone
	}
	k := loseDrop + int(ft.float()*float64(kinds-loseDrop))
	if k == loseSlow && b.SlowAnswer == 0 {
		k = loseDrop
	}
	return k
}

// holdAnswer waits d, or until the client has gone.
func (ft *faultTarget) holdAnswer(r *http.Request, d time.Duration) {
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
}

// watchGone records when r's client closes the connection while the
// handler still runs, for each request in *idx (read under ft.mu). The
// returned func stops watching; call it before the handler returns (the
// server cancels r's context then too).
func (ft *faultTarget) watchGone(r *http.Request, idx *[]int) func() {
	stop := context.AfterFunc(r.Context(), func() {
		now := time.Now()
		ft.mu.Lock()
		defer ft.mu.Unlock()
		for _, i := range *idx {
			if ft.reqs[i].Gone.IsZero() {
				ft.reqs[i].Gone = now
			}
		}
	})
	return func() { stop() }
}

func (ft *faultTarget) lost(i int) {
	ft.mu.Lock()
	ft.reqs[i].Lost = true
	ft.mu.Unlock()
}

func (ft *faultTarget) record(req faultRequest) int {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	req.Seq = len(ft.reqs)
	req.Arrived = time.Now()
	if req.Accepted {
		ft.accepted[req.Key]++
	}
	ft.reqs = append(ft.reqs, req)
	return req.Seq
}

func (ft *faultTarget) answered(i int) {
	ft.mu.Lock()
	ft.reqs[i].Answered = time.Now()
	ft.mu.Unlock()
}

// requests copies every request seen so far, in arrival order.
func (ft *faultTarget) requests() []faultRequest {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return append([]faultRequest(nil), ft.reqs...)
}

// missing counts the ids not accepted yet.
func (ft *faultTarget) missing(ids []string) int {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	n := 0
	for _, id := range ids {
		if ft.accepted[id] == 0 {
			n++
		}
	}
	return n
}

// distinct is the number of ids accepted at least once.
func (ft *faultTarget) distinct() int {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return len(ft.accepted)
}

// counts summarises what the API answered, for logs.
func (ft *faultTarget) counts() string {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	var ok, e503, reset, other, slow, lost int
	for _, r := range ft.reqs {
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
	return fmt.Sprintf("%d requests: %d accepted (%d slow bodies, %d answers lost), %d×503, %d resets, %d other", len(ft.reqs), ok, slow, lost, e503, reset, other)
}
