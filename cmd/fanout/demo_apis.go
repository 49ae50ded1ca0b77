package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// demoAPI is one of the worked example's downstream APIs, served for real on
// loopback. It counts what it accepted per Idempotency-Key so the demo can show
// that nothing was accepted twice.
type demoAPI struct {
	name   string
	srv    *http.Server
	url    string
	behave func(ev map[string]any) (status int, delay time.Duration)

	mu       sync.Mutex
	accepted map[string]int
	requests int
}

func newDemoAPI(name string, behave func(ev map[string]any) (int, time.Duration)) (*demoAPI, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &demoAPI{name: name, behave: behave, accepted: map[string]int{}, url: "http://" + ln.Addr().String() + "/" + name}
	a.srv = &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	go a.srv.Serve(ln)
	return a, nil
}

func (a *demoAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if r.Header.Get("Content-Type") == "application/cloudevents-batch+json" {
		a.serveBatch(w, r, body, err)
		return
	}
	var ev map[string]any
	if err == nil {
		err = json.Unmarshal(body, &ev)
	}
	if err != nil {
		http.Error(w, "body is not JSON", http.StatusBadRequest)
		return
	}
	status, delay := a.behave(ev)
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	a.mu.Lock()
	a.requests++
	if status/100 == 2 {
		a.accepted[r.Header.Get("Idempotency-Key")]++
	}
	a.mu.Unlock()
	w.WriteHeader(status)
}

// serveBatch takes a CloudEvents batch as an API that accepts arrays would:
// each event is judged on its own, the request takes as long as its slowest
// event, and the answer lists each event's status.
func (a *demoAPI) serveBatch(w http.ResponseWriter, r *http.Request, body []byte, err error) {
	var evs []struct {
		ID   string         `json:"id"`
		Data map[string]any `json:"data"`
	}
	if err == nil {
		err = json.Unmarshal(body, &evs)
	}
	if err != nil {
		http.Error(w, "body is not a JSON array of events", http.StatusBadRequest)
		return
	}
	results := make([]map[string]any, len(evs))
	var longest time.Duration
	for i, ev := range evs {
		status, delay := a.behave(ev.Data)
		longest = max(longest, delay)
		results[i] = map[string]any{"status": status}
	}
	select {
	case <-time.After(longest):
	case <-r.Context().Done():
		return
	}
	a.mu.Lock()
	a.requests++
	for i, ev := range evs {
		if st := results[i]["status"].(int); st/100 == 2 {
			a.accepted[ev.ID]++
		}
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(results)
}

// counts returns the keys accepted, how many of them were accepted twice or
// more, and the requests answered.
func (a *demoAPI) counts() (accepted, twice, requests int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.accepted {
		if n > 1 {
			twice++
		}
	}
	return len(a.accepted), twice, a.requests
}

func (a *demoAPI) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		a.srv.Close()
	}
}

// demoBehaviours are the worked example's three APIs.
func demoBehaviours() map[string]func(map[string]any) (int, time.Duration) {
	return map[string]func(map[string]any) (int, time.Duration){
		"profile": func(ev map[string]any) (int, time.Duration) {
			// The profile API validates: an address without @ is a permanent 422.
			if email, _ := ev["email"].(string); !strings.Contains(email, "@") {
				return http.StatusUnprocessableEntity, 0
			}
			return http.StatusCreated, time.Millisecond
		},
		"email": func(map[string]any) (int, time.Duration) {
			// The welcome-email API is flaky: one request in five gets a 503.
			if rand.IntN(5) == 0 {
				return http.StatusServiceUnavailable, 2 * time.Millisecond
			}
			return http.StatusAccepted, 5 * time.Millisecond
		},
		"analytics": func(map[string]any) (int, time.Duration) {
			// The analytics API is slow.
			return http.StatusNoContent, time.Duration(40+rand.IntN(80)) * time.Millisecond
		},
	}
}

// demoAPIs starts the three APIs on loopback, in the demo's sink order.
func demoAPIs() ([]*demoAPI, error) {
	var apis []*demoAPI
	for _, name := range []string{"profile", "email", "analytics"} {
		a, err := newDemoAPI(name, demoBehaviours()[name])
		if err != nil {
			for _, x := range apis {
				x.close()
			}
			return nil, err
		}
		apis = append(apis, a)
	}
	return apis, nil
}
