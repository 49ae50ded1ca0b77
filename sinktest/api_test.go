package sinktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, url, contentType, key, body string) (int, string, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("traceparent", "00-trace-"+key+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// A status sequence per key and attempt, the same for single requests and
// batch elements: the first attempt of "a" gets 503, later ones 200; "bad"
// always 422. Only 2xx decisions are recorded as acceptances.
func TestAPIAnswersPerKeyAndAttempt(t *testing.T) {
	status := func(key string, attempt int) int {
		switch {
		case key == "bad":
			return http.StatusUnprocessableEntity
		case strings.HasPrefix(key, "a") && attempt == 1:
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	api := New(Options{Answer: Statuses(status)})
	srv := httptest.NewServer(api)
	defer srv.Close()

	for _, tc := range []struct {
		key  string
		want int
	}{{"a1", 503}, {"a1", 200}, {"bad", 422}, {"b", 200}} {
		if st, _, err := post(t, srv.URL, "application/json", tc.key, `{"k":"`+tc.key+`"}`); err != nil || st != tc.want {
			t.Errorf("single %s: status %d (%v), want %d", tc.key, st, err, tc.want)
		}
	}
	batch := `[{"id":"a2","traceparent":"tp-a2","data":{"n":1}},{"id":"bad","data":{}},{"id":"c","traceparent":"tp-c","data":{"n":3}}]`
	st, body, err := post(t, srv.URL, ContentTypeBatch+"; charset=utf-8", "batch-1", batch)
	if err != nil || st != 200 {
		t.Fatalf("batch: status %d (%v)", st, err)
	}
	var results []struct {
		Status int `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &results); err != nil {
		t.Fatalf("batch answer %q: %v", body, err)
	}
	if len(results) != 3 || results[0].Status != 503 || results[1].Status != 422 || results[2].Status != 200 {
		t.Errorf("batch answer %s, want 503, 422, 200", body)
	}
	// A batch of only accepted events gets a bare 200.
	if st, body, _ := post(t, srv.URL, ContentTypeBatch, "batch-2", `[{"id":"a2","data":{}}]`); st != 200 || body != "" {
		t.Errorf("all-2xx batch: %d %q, want 200 and no body", st, body)
	}

	got := api.Snapshot()
	want := map[string]int{"a1": 1, "b": 1, "c": 1, "a2": 1}
	if len(got) != len(want) {
		t.Errorf("accepted %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("accepted %v, want %v", got, want)
		}
	}
	api.Mu.Lock()
	defer api.Mu.Unlock()
	if api.Attempts["bad"] != 2 || api.Attempts["a1"] != 2 || api.Attempts["a2"] != 2 {
		t.Errorf("attempts %v: want bad 2, a1 2, a2 2", api.Attempts)
	}
	if !bytes.Equal(api.Bodies["c"], []byte(`{"n":3}`)) || api.Traces["c"] != "tp-c" {
		t.Errorf("batch element c recorded body %s trace %q", api.Bodies["c"], api.Traces["c"])
	}
	if string(api.Bodies["b"]) != `{"k":"b"}` || api.Traces["b"] != "00-trace-b-01" || api.Headers["b"].Get("Idempotency-Key") != "b" {
		t.Errorf("single b recorded body %s trace %q headers %v", api.Bodies["b"], api.Traces["b"], api.Headers["b"])
	}
	if r, b, e := api.Requests.Load(), api.Batches.Load(), api.Batched.Load(); r != 6 || b != 2 || e != 4 {
		t.Errorf("requests %d, batches %d, batched %d; want 6, 2, 4", r, b, e)
	}
}

// Losses: a dropped answer is a connection reset, a cut batch answer an
// unexpected EOF; both were accepted. A loss asked for a refused event does
// not apply. An unreadable batch is a 400 and counted.
func TestAPILosesAnswersOnPurpose(t *testing.T) {
	api := New(Options{Answer: func(c Call) Answer {
		switch c.Key {
		case "drop", "d1":
			return Answer{Lose: Drop}
		case "cut":
			return Answer{Lose: Cut}
		case "refused":
			return Answer{Status: 503, Lose: Drop}
		}
		return Answer{}
	}})
	srv := httptest.NewServer(api)
	defer srv.Close()
	if _, _, err := post(t, srv.URL, "application/json", "drop", "{}"); err == nil {
		t.Error("dropped single answer: no error, want a reset")
	}
	if _, _, err := post(t, srv.URL, ContentTypeBatch, "b1", `[{"id":"ok","data":{}},{"id":"d1","data":{}}]`); err == nil {
		t.Error("dropped batch answer: no error, want a reset")
	}
	if st, _, err := post(t, srv.URL, ContentTypeBatch, "b2", `[{"id":"cut","data":{}},{"id":"x","data":{}}]`); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut batch answer: status %d, err %v; want unexpected EOF", st, err)
	}
	if st, _, err := post(t, srv.URL, "application/json", "refused", "{}"); err != nil || st != 503 {
		t.Errorf("refused event: %d %v, want a 503 answer", st, err)
	}
	if st, _, _ := post(t, srv.URL, ContentTypeBatch, "b3", `{"not":"an array"}`); st != 400 || api.Unreadable.Load() != 1 {
		t.Errorf("unreadable batch: %d, counted %d; want 400, 1", st, api.Unreadable.Load())
	}
	got := api.Snapshot()
	for _, k := range []string{"drop", "ok", "d1", "cut", "x"} {
		if got[k] != 1 {
			t.Errorf("%s accepted %d times, want 1 (an answer lost after the decision is an acceptance)", k, got[k])
		}
	}
	if got["refused"] != 0 {
		t.Errorf("refused accepted %d times", got["refused"])
	}
}

// A whole-request decision (Options.Request) answers a batch with its status
// alone and its Retry-After, without asking Answer; a reset is no
// acceptance; a single 2xx can be trickled. The ledger records each event
// with its status, and the answers lost on purpose as Lost.
func TestAPIRequestDecisionsAndLedger(t *testing.T) {
	asked := map[string]bool{}
	api := New(Options{Ledger: true,
		Request: func(r *http.Request) Answer {
			switch r.Header.Get("Idempotency-Key") {
			case "down":
				return Answer{Status: http.StatusServiceUnavailable, RetryAfter: time.Second}
			case "crash":
				return Answer{Reset: true}
			}
			return Answer{}
		},
		Answer: func(c Call) Answer {
			asked[c.Key] = true
			switch c.Key {
			case "slow":
				return Answer{Trickle: 40 * time.Millisecond}
			case "reset":
				return Answer{Reset: true}
			case "drop":
				return Answer{Lose: Drop}
			}
			return Answer{}
		}})
	srv := httptest.NewServer(api)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`[{"id":"w1","data":{}},{"id":"w2","data":{}}]`))
	req.Header.Set("Content-Type", ContentTypeBatch)
	req.Header.Set("Idempotency-Key", "down")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || len(body) != 0 {
		t.Errorf("batch while down: %d, Retry-After %q, body %q; want 503, 1, none", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if _, _, err := post(t, srv.URL, "application/json", "crash", "{}"); err == nil {
		t.Error("request reset as a whole: no error")
	}
	if _, _, err := post(t, srv.URL, "application/json", "reset", "{}"); err == nil {
		t.Error("event reset: no error")
	}
	if _, _, err := post(t, srv.URL, "application/json", "drop", "{}"); err == nil {
		t.Error("dropped answer: no error")
	}
	if st, b, err := post(t, srv.URL, "application/json", "slow", "{}"); err != nil || st != 200 || b != strings.Repeat("slow ", 8) {
		t.Errorf("trickled answer: %d %q %v", st, b, err)
	}
	if asked["w1"] || asked["w2"] || asked["crash"] {
		t.Errorf("Answer asked for events the request's decision answered: %v", asked)
	}
	type rec struct {
		status             int
		accepted, lost, sl bool
	}
	want := map[string]rec{"w1": {503, false, false, false}, "w2": {503, false, false, false}, "crash": {0, false, false, false},
		"reset": {0, false, false, false}, "drop": {200, true, true, false}, "slow": {200, true, false, true}}
	// Go's transport sends a request with an Idempotency-Key once more when
	// a reused connection is reset before any answer, so a reset key may
	// have two records.
	seen := map[string]bool{}
	for i, r := range api.Records() {
		seen[r.Key] = true
		if r.Seq != i || r.Arrived.IsZero() || r.Answered.IsZero() {
			t.Errorf("record %d: seq %d, arrived %v, answered %v", i, r.Seq, r.Arrived, r.Answered)
		}
		if got := (rec{r.Status, r.Accepted, r.Lost, r.Slow}); got != want[r.Key] {
			t.Errorf("%s: %+v, want %+v", r.Key, got, want[r.Key])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("records of %v, want one or more of each of %v", seen, want)
	}
}
