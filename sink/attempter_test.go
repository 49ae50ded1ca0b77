package sink

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// mailbox is a non-HTTP attempter: it "sends" an attempt into an
// in-process mailbox that is closed for its first refusals, answering like a
// failing API (500 with a Retry-After), then accepts.
type mailbox struct {
	mu       sync.Mutex
	refusals int
	got      []request
}

func (m *mailbox) attempt(_ context.Context, r request) outcome {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, r)
	if m.refusals > 0 {
		m.refusals--
		return outcome{status: 500, err: &StatusError{Code: 500, RetryAfter: 2 * time.Second, Excerpt: "mailbox closed"},
			retryAfter: 2 * time.Second, hasRetryAfter: true}
	}
	return outcome{status: 202}
}

// Deliver's policy runs over any attempter: in-line retries, the Retry-After
// (capped at RetryAfterCap) as the wait, Attempts, and the excerpt of the
// last refusal, without any HTTP.
func TestPolicyOverNonHTTPAttempter(t *testing.T) {
	var waits []time.Duration
	s, err := New(Config{Name: "mail", URL: "http://127.0.0.1:1/", Attempts: 3, RetryAfterCap: time.Second}, nil,
		WithSleep(func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	m := &mailbox{refusals: 2}
	s.send = m
	res := s.Deliver(context.Background(), Event{ID: "e1", Type: "user.registered", Body: []byte(`{"a":1}`)})
	if res.Class != Done || res.Attempts != 3 || res.Status != 202 || res.Err != nil {
		t.Fatalf("result %+v, want Done after 3 attempts", res)
	}
	if len(waits) != 2 || waits[0] != time.Second || waits[1] != time.Second {
		t.Fatalf("waits %v, want the Retry-After capped at 1s twice", waits)
	}
	if len(m.got) != 3 || m.got[2].n != 3 || m.got[0].id != "e1" || string(m.got[0].body) != `{"a":1}` {
		t.Fatalf("attempts %+v", m.got)
	}

	m = &mailbox{refusals: 5}
	s.send = m
	res = s.Deliver(context.Background(), Event{ID: "e2", Type: "user.registered", Body: []byte(`{}`)})
	var se *StatusError
	if res.Class != Retryable || res.Attempts != 3 || res.Excerpt != "mailbox closed" || !errors.As(res.Err, &se) || res.RetryAfter != 2*time.Second {
		t.Fatalf("result %+v, want Retryable after 3 attempts with the excerpt and the uncapped Retry-After", res)
	}
}
