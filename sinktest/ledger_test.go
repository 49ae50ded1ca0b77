package sinktest

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// rawPost sends one single-event request on a new connection and returns
// the connection once the answer's status line has arrived (nil for gone:
// the client closes the connection after sending, without waiting).
func rawPost(t *testing.T, addr, key string, wait bool) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	req := "POST /events HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nIdempotency-Key: " + key + "\r\nContent-Length: 2\r\n\r\n{}"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if !wait {
		return c
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("%s: answer %q (%v)", key, line, err)
	}
	return c
}

// The ledger tells apart what became of each accepted answer: a client that
// closed the connection right after the answer was written (an attempt that
// timed out just then) is Closed; one that kept the connection past the
// grace and then closed it is not; one that went away before the answer is
// Lost, with the time it went.
func TestLedgerClassifiesClosedAnswers(t *testing.T) {
	api := New(Options{Ledger: true, CloseGrace: 100 * time.Millisecond, Answer: func(c Call) Answer {
		if c.Key == "gone" {
			return Answer{Delay: 5 * time.Second}
		}
		return Answer{}
	}})
	srv := httptest.NewUnstartedServer(api)
	srv.Config.ConnState = api.ConnState
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	rawPost(t, addr, "closed", true).Close() // at once: within the grace
	kept := rawPost(t, addr, "kept", true)
	gone := rawPost(t, addr, "gone", false)
	time.Sleep(50 * time.Millisecond) // the API has decided "gone" and waits
	gone.Close()
	time.Sleep(300 * time.Millisecond) // past the grace
	kept.Close()

	deadline := time.Now().Add(5 * time.Second)
	byKey := map[string]Record{}
	for {
		for _, r := range api.Records() {
			byKey[r.Key] = r
		}
		api.ledger.mu.Lock()
		open := len(api.ledger.conns)
		api.ledger.mu.Unlock()
		if open == 0 && !byKey["gone"].Answered.IsZero() || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for key, want := range map[string]struct{ closed, lost, gone bool }{
		"closed": {closed: true},
		"kept":   {},
		"gone":   {lost: true, gone: true},
	} {
		r, ok := byKey[key]
		if !ok {
			t.Fatalf("no record of %s: %+v", key, byKey)
		}
		if !r.Accepted || r.Status != http.StatusOK || r.Closed != want.closed || r.Lost != want.lost || r.Gone.IsZero() == want.gone || r.Answered.IsZero() {
			t.Errorf("%s: accepted %v status %d closed %v lost %v gone %v answered %v; want closed %v, lost %v, gone %v",
				key, r.Accepted, r.Status, r.Closed, r.Lost, !r.Gone.IsZero(), !r.Answered.IsZero(), want.closed, want.lost, want.gone)
		}
	}
}
