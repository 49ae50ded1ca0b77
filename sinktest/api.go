package sinktest

import (
	"cmp"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Call is one event as the API sees it: a single request, or one element of
// a CloudEvents batch.
type Call struct {
	Key         string      // the Idempotency-Key; a batch element's id
	Attempt     int         // 1 for the first request carrying Key, counted per key
	Batch       bool        // an element of a batch
	Body        []byte      // the request body; a batch element's data
	TraceParent string      // the traceparent header; a batch element's
	Header      http.Header // the request's headers (shared by a batch's elements)
	Received    time.Time   // when the request arrived, before its body was read
}

// Loss is how an accepted event's answer is lost on purpose.
type Loss int

const (
	Keep Loss = iota // the answer is written
	Drop             // the connection is reset after the API decided
	Cut              // batch only: a 2xx whose per-event results are cut off halfway
)

// Answer is the API's decision for one event, or (from Options.Request) for
// a request as a whole.
type Answer struct {
	Status int           // 0: 200
	Delay  time.Duration // added to API.Latency before the answer; a batch waits for its longest
	Lose   Loss          // a batch is lost if any of its events says so (the first wins)
	// Reset resets the connection instead of answering, as a crashed API
	// would; the event is not accepted (recorded with status 0).
	Reset bool
	// Trickle sends a 2xx answer's body in 8 flushed pieces over Trickle
	// (a batch's when every event is 2xx and its answer is kept).
	Trickle time.Duration
	// RetryAfter sets the Retry-After header, in whole seconds, of a single
	// event's answer or of a batch's status from Options.Request.
	RetryAfter time.Duration
}

// API is a fake webhook API. The zero value is not usable; call New.
//
// It decides an event when the request arrives and records it then, as a
// real API does the work even if the client goes away before the answer: a
// 2xx decision is an acceptance even if the answer is lost or late.
type API struct {
	latency  time.Duration
	answer   func(Call) Answer
	request  func(*http.Request) Answer
	observe  func(Call, Answer)
	noRecord bool
	badBatch int
	ledger   *ledger // nil unless Options.Ledger

	// Counters, readable at any time.
	Inflight   atomic.Int64 // requests being handled
	Requests   atomic.Int64 // requests, a single event or a batch each
	Batches    atomic.Int64 // of which CloudEvents batches
	Batched    atomic.Int64 // events in those batches
	Unreadable atomic.Int64 // batch requests whose body is no JSON array of events (answered 400)

	// Mu guards the per-key records below; hold it to read them.
	Mu       sync.Mutex
	Attempts map[string]int         // key → requests (batch elements) that carried it
	Accepted map[string]int         // key → 2xx decisions
	Bodies   map[string][]byte      // key → body (batch: data) of its last acceptance
	Traces   map[string]string      // key → traceparent of its last acceptance
	Headers  map[string]http.Header // key → request headers of its last acceptance
	Order    []string               // keys in the order they were accepted
}

// Options configure an API.
type Options struct {
	// Latency is added to every answer, after the decision (default 0).
	Latency time.Duration
	// Answer decides each event; nil answers 200 to all.
	Answer func(Call) Answer
	// Request, if set, decides for each request as a whole before its events
	// are decided. Its Reset or a non-zero Status is the answer to every
	// event of the request, and Answer is not asked (a batch then gets that
	// status alone, without per-event results). Otherwise Answer decides the
	// events, and the request's Delay is added to theirs, its Lose (if not
	// Keep) and Trickle apply to the request.
	Request func(*http.Request) Answer
	// Observe, if set, is called for each event right after its decision,
	// before any delay (the benchmark records arrival times with it).
	Observe func(Call, Answer)
	// NoRecord skips every per-key record (Call.Attempt is then 0): for load
	// runs that keep their own.
	NoRecord bool
	// UnreadableStatus answers a batch whose body is no JSON array of
	// events (default 400).
	UnreadableStatus int
	// Ledger keeps a Record of every event decided, with when it was
	// answered and whether its answer was lost (see Records and ConnState).
	Ledger bool
	// CloseGrace is how soon after an answer a client's closing of the
	// connection marks the answer Closed (default 20ms); with Ledger.
	CloseGrace time.Duration
}

// New returns an API; serve it with an http.Server, httptest or Listen.
func New(o Options) *API {
	a := &API{latency: o.Latency, answer: o.Answer, request: o.Request, observe: o.Observe, noRecord: o.NoRecord,
		badBatch: cmp.Or(o.UnreadableStatus, http.StatusBadRequest),
		Attempts: map[string]int{}, Accepted: map[string]int{}, Bodies: map[string][]byte{},
		Traces: map[string]string{}, Headers: map[string]http.Header{}}
	if o.Ledger {
		a.ledger = &ledger{grace: cmp.Or(o.CloseGrace, 20*time.Millisecond), conns: map[string]lastAnswer{}}
	}
	return a
}

// Statuses is an Answer func from a status func of key and attempt (nil: 200).
func Statuses(status func(key string, attempt int) int) func(Call) Answer {
	if status == nil {
		return nil
	}
	return func(c Call) Answer { return Answer{Status: status(c.Key, c.Attempt)} }
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	a.Inflight.Add(1)
	defer a.Inflight.Add(-1)
	a.Requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client went away mid-request: nothing was decided
	}
	batch := IsBatch(r)
	var calls []Call
	if batch {
		evs, err := ParseBatch(body)
		if err != nil {
			a.Unreadable.Add(1)
			http.Error(w, err.Error(), a.badBatch)
			return
		}
		a.Batches.Add(1)
		a.Batched.Add(int64(len(evs)))
		for _, ev := range evs {
			calls = append(calls, Call{Key: ev.ID, Batch: true, Body: ev.Data, TraceParent: ev.TraceParent, Header: r.Header, Received: now})
		}
	} else {
		calls = []Call{{Key: r.Header.Get("Idempotency-Key"), Body: body, TraceParent: r.Header.Get("traceparent"), Header: r.Header, Received: now}}
	}
	var whole Answer
	if a.request != nil {
		whole = a.request(r)
	}
	forced := whole.Reset || whole.Status != 0
	var recs []int // the ledger's records of r's events, for watchGone and answered
	defer a.ledger.watchGone(r, &recs)()

	statuses := make([]int, len(calls))
	ans := make([]Answer, len(calls))
	delay, lose, reset, trickle, allOK := time.Duration(0), whole.Lose, whole.Reset, whole.Trickle, true
	for i := range calls {
		var forcedAns *Answer
		if forced {
			forcedAns = &Answer{Status: whole.Status, Reset: whole.Reset}
		}
		ans[i] = a.decide(&calls[i], forcedAns)
		statuses[i] = ans[i].Status
		delay = max(delay, ans[i].Delay)
		reset = reset || ans[i].Reset
		if lose == Keep {
			lose = ans[i].Lose
		}
		trickle = max(trickle, ans[i].Trickle)
		allOK = allOK && !ans[i].Reset && ans[i].Status/100 == 2
		a.ledger.record(&recs, calls[i], ans[i], whole.Trickle)
	}
	if lose == Drop || lose == Cut && batch {
		a.ledger.lost(recs) // the accepted events' answers are lost on purpose
	}
	if reset || lose == Drop {
		a.ledger.answered(r, recs, false) // before the RST: the client may send its retry at once
		ResetConn(w)
		return
	}
	a.wait(r, whole.Delay+delay)
	written := lose != Cut || !batch // a cut answer is lost already
	if r.Context().Err() != nil {
		a.ledger.lost(recs) // the client went away before the answer was written
		written = false
	}
	status := statuses[0]
	if forced {
		status = whole.Status
	}
	if after := max(whole.RetryAfter, ans[0].RetryAfter); after > 0 && (forced || !batch) && status/100 != 2 {
		w.Header().Set("Retry-After", strconv.Itoa(int(after.Seconds())))
	}
	switch {
	case lose == Cut && batch:
		CutAnswer(w, statuses)
	case forced && batch:
		w.WriteHeader(status)
	case allOK && trickle > 0:
		w.WriteHeader(status)
		Trickle(w, trickle)
	case batch:
		WriteResults(w, statuses)
	default:
		w.WriteHeader(status)
		io.WriteString(w, http.StatusText(status))
	}
	a.ledger.answered(r, recs, written)
}

// decide counts the attempt, asks Answer (unless forced) and records an
// acceptance.
func (a *API) decide(c *Call, forced *Answer) Answer {
	if !a.noRecord {
		a.Mu.Lock()
		a.Attempts[c.Key]++
		c.Attempt = a.Attempts[c.Key]
		a.Mu.Unlock()
	}
	var ans Answer
	switch {
	case forced != nil:
		ans = *forced
	case a.answer != nil:
		ans = a.answer(*c)
	}
	if ans.Status == 0 {
		ans.Status = http.StatusOK
	}
	if ans.Reset {
		ans.Status = 0
	}
	if ans.Status/100 != 2 {
		ans.Lose, ans.Trickle = Keep, 0 // only an accepted event's answer can be lost or slow
	}
	if a.observe != nil {
		a.observe(*c, ans)
	}
	if ans.Status/100 == 2 && !a.noRecord {
		a.Mu.Lock()
		a.Accepted[c.Key]++
		a.Order = append(a.Order, c.Key)
		a.Bodies[c.Key] = c.Body
		a.Traces[c.Key] = c.TraceParent
		a.Headers[c.Key] = c.Header
		a.Mu.Unlock()
	}
	return ans
}

// wait sleeps Latency + d, or until the client has gone.
func (a *API) wait(r *http.Request, d time.Duration) {
	if d += a.latency; d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// Snapshot copies the per-key acceptance counts.
func (a *API) Snapshot() map[string]int {
	a.Mu.Lock()
	defer a.Mu.Unlock()
	return maps.Clone(a.Accepted)
}

// AcceptedCount is the number of keys accepted at least once.
func (a *API) AcceptedCount() int {
	a.Mu.Lock()
	defer a.Mu.Unlock()
	return len(a.Accepted)
}

// Counts returns the keys accepted, how many of them were accepted twice or
// more, and the requests received.
func (a *API) Counts() (accepted, twice, requests int) {
	a.Mu.Lock()
	defer a.Mu.Unlock()
	for _, n := range a.Accepted {
		if n > 1 {
			twice++
		}
	}
	return len(a.Accepted), twice, int(a.Requests.Load())
}

// Server is an API served on a listener, without httptest.
type Server struct {
	URL string // http://<addr><path>
	srv *http.Server
}

// Listen serves h on addr ("127.0.0.1:0" for a fresh loopback port); the
// URL ends in path. Close or Shutdown stops it.
func Listen(addr, path string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + ln.Addr().String() + path,
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}}
	if api, ok := h.(*API); ok {
		s.srv.ConnState = api.ConnState
	}
	go s.srv.Serve(ln) // ends with Close
	return s, nil
}

// Close closes the server and its connections at once.
func (s *Server) Close() { s.srv.Close() }

// Shutdown stops the server, waiting up to d for requests in flight, then
// closes what is left.
func (s *Server) Shutdown(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
}

// Serve serves h on ln until ctx ends (then shuts down as Close does);
// for a command that serves one API in the foreground.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	})
	defer stop()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
