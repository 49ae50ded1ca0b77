package sinktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"
)

// ContentTypeBatch is the media type of a CloudEvents JSON batch, a batched
// sink's request body.
const ContentTypeBatch = "application/cloudevents-batch+json"

// IsBatch reports whether r carries a CloudEvents batch (parameters such as
// charset are allowed).
func IsBatch(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == ContentTypeBatch
}

// Event is the part of a CloudEvents batch element a fake API reads.
type Event struct {
	ID          string          `json:"id"`
	TraceParent string          `json:"traceparent"`
	Data        json.RawMessage `json:"data"`
}

// ErrNotBatch is returned by ParseBatch for a body that is not a JSON array
// of events.
var ErrNotBatch = errors.New("batch body is not a JSON array of events")

// ParseBatch parses a CloudEvents batch body. An empty array is an error too:
// fanout never sends one.
func ParseBatch(body []byte) ([]Event, error) {
	var evs []Event
	if err := json.Unmarshal(body, &evs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotBatch, err)
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrNotBatch)
	}
	return evs, nil
}

// resultsBody is the per-event answer to a batch: one
// {"status": <code>, "error": "<text>"} per event, in order.
func resultsBody(statuses []int) []byte {
	type result struct {
		Status int    `json:"status"`
		Error  string `json:"error,omitempty"`
	}
	rs := make([]result, len(statuses))
	for i, st := range statuses {
		rs[i] = result{Status: st}
		if st/100 != 2 {
			rs[i].Error = http.StatusText(st)
		}
	}
	b, _ := json.Marshal(rs)
	return b
}

// WriteResults answers a batch: 200 with an empty body when every status is
// 2xx, else 200 with the per-event results.
func WriteResults(w http.ResponseWriter, statuses []int) {
	for _, st := range statuses {
		if st/100 != 2 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			w.Write(resultsBody(statuses))
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

// CutAnswer writes a 2xx with the per-event results, announces their full
// length, sends half of them and closes the connection: the client reads a
// body cut off (unexpected EOF).
func CutAnswer(w http.ResponseWriter, statuses []int) {
	body := resultsBody(statuses)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body[:len(body)/2])
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
		}
	}
}

// ResetConn ends the request with a TCP RST, as a crashed API would.
func ResetConn(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST, not FIN: a crashed API, not a polite close
			}
			c.Close()
		}
	}
}

// Trickle writes a body in 8 flushed pieces over d.
func Trickle(w http.ResponseWriter, d time.Duration) {
	fl, _ := w.(http.Flusher)
	for range 8 {
		io.WriteString(w, "slow ")
		if fl != nil {
			fl.Flush()
		}
		time.Sleep(d / 8)
	}
}
