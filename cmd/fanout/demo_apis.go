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

// counts returns the keys accepted and how many of them were accepted twice or more.
func (a *demoAPI) counts() (accepted, twice int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.accepted {
		if n > 1 {
			twice++
		}
	}
	return len(a.accepted), twice
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
