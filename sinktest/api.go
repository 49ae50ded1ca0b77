package sinktest

import (
	"cmp"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
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

// Answer is the API's decision for one event.
type Answer struct {
	Status int           // 0: 200
	Delay  time.Duration // added to API.Latency before the answer; a batch waits for its longest
	Lose   Loss          // a batch is lost if any of its events says so (the first wins)
}

// API is a fake webhook API. The zero value is not usable; call New.
//
// It decides an event when the request arrives and records it then, as a
// real API does the work even if the client goes away before the answer: a
// 2xx decision is an acceptance even if the answer is lost or late.
type API struct {
	latency  time.Duration
	answer   func(Call) Answer
	observe  func(Call, Answer)
	noRecord bool
	badBatch int

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
	// Observe, if set, is called for each event right after its decision,
	// before any delay (the benchmark records arrival times with it).
	Observe func(Call, Answer)
	// NoRecord skips every per-key record (Call.Attempt is then 0): for load
	// runs that keep their own.
	NoRecord bool
	// UnreadableStatus answers a batch whose body is no JSON array of
	// events (default 400).
	UnreadableStatus int
}

// New returns an API; serve it with an http.Server, httptest or Listen.
func New(o Options) *API {
	return &API{latency: o.Latency, answer: o.Answer, observe: o.Observe, noRecord: o.NoRecord,
		badBatch: cmp.Or(o.UnreadableStatus, http.StatusBadRequest),
		Attempts: map[string]int{}, Accepted: map[string]int{}, Bodies: map[string][]byte{},
		Traces: map[string]string{}, Headers: map[string]http.Header{}}
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
	if IsBatch(r) {
		a.serveBatch(w, r, body, now)
		return
	}
	c := Call{Key: r.Header.Get("Idempotency-Key"), Body: body, TraceParent: r.Header.Get("traceparent"), Header: r.Header, Received: now}
	ans := a.decide(&c)
	if ans.Lose == Drop {
		ResetConn(w)
		return
	}
	a.wait(r, ans.Delay)
	w.WriteHeader(ans.Status)
	io.WriteString(w, http.StatusText(ans.Status))
}

// serveBatch answers a CloudEvents batch like an API that takes arrays: each
// event is decided on its own, the request takes as long as its slowest
// event, and the answer lists each event's status when any is not 2xx.
func (a *API) serveBatch(w http.ResponseWriter, r *http.Request, body []byte, now time.Time) {
	evs, err := ParseBatch(body)
	if err != nil {
		a.Unreadable.Add(1)
		http.Error(w, err.Error(), a.badBatch)
		return
	}
	a.Batches.Add(1)
	a.Batched.Add(int64(len(evs)))
	statuses := make([]int, len(evs))
	var longest time.Duration
	lose := Keep
	for i, ev := range evs {
		c := Call{Key: ev.ID, Batch: true, Body: ev.Data, TraceParent: ev.TraceParent, Header: r.Header, Received: now}
		ans := a.decide(&c)
		statuses[i] = ans.Status
		longest = max(longest, ans.Delay)
		if lose == Keep {
			lose = ans.Lose
		}
	}
	if lose == Drop {
		ResetConn(w)
		return
	}
	a.wait(r, longest)
	if lose == Cut {
		CutAnswer(w, statuses)
		return
	}
	WriteResults(w, statuses)
}

// decide counts the attempt, asks Answer and records an acceptance.
func (a *API) decide(c *Call) Answer {
	if !a.noRecord {
		a.Mu.Lock()
		a.Attempts[c.Key]++
		c.Attempt = a.Attempts[c.Key]
		a.Mu.Unlock()
	}
	var ans Answer
	if a.answer != nil {
		ans = a.answer(*c)
	}
	if ans.Status == 0 {
		ans.Status = http.StatusOK
	}
	if ans.Status/100 != 2 {
		ans.Lose = Keep // only an accepted event's answer can be lost
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
