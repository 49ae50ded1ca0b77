package sinktest

import (
	"context"
	"crypto/sha256"
	"net"
	"net/http"
	"sync"
	"time"
)

// Record is one event as a ledger keeps it (Options.Ledger): what the API
// decided, when, and what became of the answer.
type Record struct {
	Seq         int    // arrival order at this API (decision order)
	Key         string // Idempotency-Key; a batch element's id
	Batch       bool
	Header      http.Header // the request's headers (shared by a batch's elements)
	TraceParent string
	BodyHash    [32]byte  // SHA-256 of the body (a batch element's data)
	Arrived     time.Time // when the API decided
	// Answered is when the answer was complete (a reset: just before it);
	// zero if never.
	Answered time.Time
	Status   int  // 0 for a reset
	Accepted bool // a 2xx decision
	Slow     bool // accepted with a trickled body
	// Lost: the API accepted the event but its answer never reached the
	// client: dropped or cut off on purpose (Answer.Lose), or the client had
	// gone away (closed the connection: a timeout, a cancel, a dead process)
	// before the answer was written. A client that goes away after the
	// answer was written is not counted here; see Closed.
	Lost bool
	// Closed: the client closed the connection within Options.CloseGrace
	// after the answer was written, without sending another request on it:
	// an attempt that timed out on the client just as the answer was
	// written, whose answer the client may not have read. It needs the
	// server's ConnState hook (API.ConnState; Listen sets it).
	Closed bool
	// Gone is when the client closed the connection while the API was still
	// handling the request (zero: it did not).
	Gone time.Time
}

// ledger is the API's list of Records.
type ledger struct {
	grace time.Duration

	mu    sync.Mutex
	recs  []Record
	conns map[string]lastAnswer // remote address → the last answer written on it
}

// lastAnswer is the last answer written on a connection, until the client
// sends another request on it or closes it.
type lastAnswer struct {
	recs []int
	at   time.Time
}

// Records copies the ledger (Options.Ledger), in arrival order; nil without
// one.
func (a *API) Records() []Record {
	l := a.ledger
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Record(nil), l.recs...)
}

// ConnState is the http.Server ConnState hook the ledger needs to mark
// Closed answers; Listen sets it. Without a ledger it does nothing.
func (a *API) ConnState(c net.Conn, s http.ConnState) {
	l := a.ledger
	if l == nil {
		return
	}
	remote := c.RemoteAddr().String()
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch s {
	case http.StateActive: // another request on the connection: the last answer was read
		delete(l.conns, remote)
	case http.StateClosed, http.StateHijacked:
		if la, ok := l.conns[remote]; ok && now.Sub(la.at) <= l.grace {
			for _, i := range la.recs {
				if l.recs[i].Accepted {
					l.recs[i].Closed = true
				}
			}
		}
		delete(l.conns, remote)
	}
}

// record appends one decided event to the ledger and its index to *recs.
func (l *ledger) record(recs *[]int, c Call, ans Answer, trickle time.Duration) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	accepted := !ans.Reset && ans.Status/100 == 2
	l.recs = append(l.recs, Record{Seq: len(l.recs), Key: c.Key, Batch: c.Batch, Header: c.Header, TraceParent: c.TraceParent,
		BodyHash: sha256.Sum256(c.Body), Arrived: time.Now(), Status: ans.Status, Accepted: accepted,
		Slow: accepted && max(ans.Trickle, trickle) > 0})
	*recs = append(*recs, len(l.recs)-1)
}

// lost marks the accepted events of recs Lost.
func (l *ledger) lost(recs []int) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, i := range recs {
		if l.recs[i].Accepted {
			l.recs[i].Lost = true
		}
	}
}

// answered notes that r's answer is complete; written answers (not reset,
// cut off, or after the client went) are kept for a later ConnState.
func (l *ledger) answered(r *http.Request, recs []int, written bool) {
	if l == nil {
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, i := range recs {
		l.recs[i].Answered = now
	}
	if written {
		l.conns[r.RemoteAddr] = lastAnswer{recs: recs, at: now}
	}
}

// watchGone records when r's client closes the connection while the
// handler still runs, for each record in *recs (read under l.mu). The
// returned func stops watching; call it before the handler returns (the
// server cancels r's context then too).
func (l *ledger) watchGone(r *http.Request, recs *[]int) func() {
	if l == nil {
		return func() {}
	}
	stop := context.AfterFunc(r.Context(), func() {
		now := time.Now()
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, i := range *recs {
			if l.recs[i].Gone.IsZero() {
				l.recs[i].Gone = now
			}
		}
	})
	return func() { stop() }
}
