package main

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/sinktest"
)

// demoAPI is one of the worked example's downstream APIs, served for real on
// loopback: a sinktest.API that decides each event (single or in a
// CloudEvents batch) by its data. It counts what it accepted per
// Idempotency-Key (a batch element's id) so the demo can show that nothing
// was accepted twice.
type demoAPI struct {
	name string
	url  string
	api  *sinktest.API
	srv  *sinktest.Server
}

// newDemoHandler is the API that answers by behave; record keeps the
// per-key records counts reads (demo-api, which runs for as long as the
// Compose stack, keeps none).
func newDemoHandler(behave func(ev map[string]any) (int, time.Duration), record bool) *sinktest.API {
	return sinktest.New(sinktest.Options{NoRecord: !record, Answer: func(c sinktest.Call) sinktest.Answer {
		var ev map[string]any
		if err := json.Unmarshal(c.Body, &ev); err != nil {
			return sinktest.Answer{Status: http.StatusBadRequest}
		}
		status, delay := behave(ev)
		return sinktest.Answer{Status: status, Delay: delay}
	}})
}

func newDemoAPI(name string, behave func(ev map[string]any) (int, time.Duration)) (*demoAPI, error) {
	api := newDemoHandler(behave, true)
	srv, err := sinktest.Listen("127.0.0.1:0", "/"+name, api)
	if err != nil {
		return nil, err
	}
	return &demoAPI{name: name, url: srv.URL, api: api, srv: srv}, nil
}

// counts returns the keys accepted, how many of them were accepted twice or
// more, and the requests answered.
func (a *demoAPI) counts() (accepted, twice, requests int) { return a.api.Counts() }

func (a *demoAPI) close() { a.srv.Shutdown(2 * time.Second) }

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
