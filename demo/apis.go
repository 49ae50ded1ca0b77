package demo

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/sinktest"
)

// API is one of the worked example's downstream APIs, served for real on
// loopback: a sinktest.API that decides each event (single or in a
// CloudEvents batch) by its data. It counts what it accepted per
// Idempotency-Key (a batch element's id) so the demo can show that nothing
// was accepted twice.
type API struct {
	Name string
	URL  string
	api  *sinktest.API
	srv  *sinktest.Server
}

// Behave decides one event by its data: the status to answer and after how long.
type Behave func(ev map[string]any) (int, time.Duration)

// NewHandler is the API that answers by behave; record keeps the per-key
// records Counts reads (demo-api, which runs for as long as the Compose
// stack, keeps none).
func NewHandler(behave Behave, record bool) *sinktest.API {
	return sinktest.New(sinktest.Options{NoRecord: !record, Answer: func(c sinktest.Call) sinktest.Answer {
		var ev map[string]any
		if err := json.Unmarshal(c.Body, &ev); err != nil {
			return sinktest.Answer{Status: http.StatusBadRequest}
		}
		status, delay := behave(ev)
		return sinktest.Answer{Status: status, Delay: delay}
	}})
}

func newAPI(name string, behave Behave) (*API, error) {
	api := NewHandler(behave, true)
	srv, err := sinktest.Listen("127.0.0.1:0", "/"+name, api)
	if err != nil {
		return nil, err
	}
	return &API{Name: name, URL: srv.URL, api: api, srv: srv}, nil
}

// Counts returns the keys accepted, how many of them were accepted twice or
// more, and the requests answered.
func (a *API) Counts() (accepted, twice, requests int) { return a.api.Counts() }

// Close stops serving, waiting at most 2s for requests in flight.
func (a *API) Close() { a.srv.Shutdown(2 * time.Second) }

// Behaviours are the worked example's three APIs, by name.
func Behaviours() map[string]Behave {
	return map[string]Behave{
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

// StartAPIs starts the three APIs on loopback, in the demo's sink order.
// Close each when done (CloseAPIs).
func StartAPIs() ([]*API, error) {
	var apis []*API
	for _, name := range []string{"profile", "email", "analytics"} {
		a, err := newAPI(name, Behaviours()[name])
		if err != nil {
			CloseAPIs(apis)
			return nil, err
		}
		apis = append(apis, a)
	}
	return apis, nil
}

// CloseAPIs closes every API of apis.
func CloseAPIs(apis []*API) {
	for _, a := range apis {
		a.Close()
	}
}
