package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// newWebhookSecret is a Standard Webhooks secret: "whsec_" and 32 random
// bytes in base64, as Svix and the spec generate them.
func newWebhookSecret(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

// serveThrough points tg's URL at a new loopback server whose handler is
// wrap(tg): the wrapper sees every request before the recording target does.
// tg's own listener stays up, unused.
func serveThrough(t *testing.T, tg *target, wrap func(next http.Handler) http.Handler) {
	t.Helper()
	srv := httptest.NewServer(wrap(tg))
	t.Cleanup(srv.Close)
	tg.URL = srv.URL + "/events"
}

// keyPlan is which secret the receiving API verifies with: first until it has
// verified switchAfter events in the phase, then second (a receiver rotating
// mid-phase). second nil: first throughout.
type keyPlan struct {
	first, second         *standardwebhooks.Webhook
	firstName, secondName string
	switchAfter           int64
}

// signedAPI is a receiving API that verifies every request with the official
// Standard Webhooks Go library before the recording target sees it, and
// answers 401 to a request that does not verify.
type signedAPI struct {
	t       *testing.T
	batched bool
	plan    atomic.Pointer[keyPlan]
	phase   atomic.Int64 // events verified since the plan was set

	requests atomic.Int64 // every request that reached the API
	failures atomic.Int64 // requests that did not verify (answered 401)

	mu         sync.Mutex
	verifiedBy map[string]int // key name → requests it verified
	firstErr   string         // the first verification or webhook-id failure
	idWrong    int            // requests whose webhook-id is not what the spec says
}

func newSignedAPI(t *testing.T, batched bool) (*signedAPI, *target) {
	a := &signedAPI{t: t, batched: batched, verifiedBy: map[string]int{}}
	tg := newTarget(t, 0, nil)
	serveThrough(t, tg, a.wrap)
	return a, tg
}

// use sets the plan for the next phase and zeroes the phase's count.
func (a *signedAPI) use(p *keyPlan) {
	a.phase.Store(0)
	a.plan.Store(p)
}

func (a *signedAPI) note(format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.firstErr == "" {
		a.firstErr = fmt.Sprintf(format, args...)
	}
}

func (a *signedAPI) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		p := a.plan.Load()
		wh, name := p.first, p.firstName
		if p.second != nil && a.phase.Load() >= p.switchAfter {
			wh, name = p.second, p.secondName
		}
		if err := wh.Verify(body, r.Header); err != nil {
			a.failures.Add(1)
			a.note("request %s did not verify with the %s secret: %v", r.Header.Get("Idempotency-Key"), name, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		// webhook-id: the event id alone, the batch key (batch-…) batched;
		// either way the Idempotency-Key.
		id, key := r.Header.Get("webhook-id"), r.Header.Get("Idempotency-Key")
		events := int64(1)
		if a.batched {
			var evs []json.RawMessage
			if err := json.Unmarshal(body, &evs); err != nil {
				a.t.Errorf("batched request is not a JSON array: %v", err)
			}
			events = int64(len(evs))
			if !strings.HasPrefix(id, "batch-") || id != key {
				a.mu.Lock()
				a.idWrong++
				a.mu.Unlock()
				a.note("batch request: webhook-id %q, Idempotency-Key %q: want the batch key (batch-…) in both", id, key)
			}
		} else {
			var ev struct {
				ID string `json:"id"`
			}
			json.Unmarshal(body, &ev)
			if id == "" || id != ev.ID || id != key {
				a.mu.Lock()
				a.idWrong++
				a.mu.Unlock()
				a.note("request for event %q: webhook-id %q, Idempotency-Key %q: want the event id in both", ev.ID, id, key)
			}
		}
		a.phase.Add(events)
		a.mu.Lock()
		a.verifiedBy[name]++
		a.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// emitEvents replaces the scenario's events with events from..from+n-1 of
// the worked example (new ids: earlier ones are deduplicated) and emits them.
func (s *scenario) emitEvents(from, n int) {
	s.t.Helper()
	codec := builtinCodec(s.t)
	s.ids, s.docs, s.bodies = nil, nil, map[string][]byte{}
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		doc := userRegistered(i, id)
		_, rec, err := codec.EncodeJSON(context.Background(), "user.registered", doc)
		if err != nil {
			s.t.Fatalf("event %d: %v", i, err)
		}
		s.ids = append(s.ids, id)
		s.docs = append(s.docs, doc)
		s.bodies[id] = rec.JSON
	}
	s.emitAll()
}

// A plain and a batched sink sign every request with the Standard Webhooks
// scheme while the receiver rotates its secret, in three runs of fanout: the
// sinks sign with [old] and the API verifies with old; then [old, new] while
// the API switches from old to new halfway; then [new] against new. The API
// verifies every request with the official library: every event arrives,
// no request fails verification, nothing is dead-lettered, and the secrets
// (one from the environment, one from a file) appear in no output.
func TestSinkSigningRotation(t *testing.T) {
	const perPhase = 300
	start := time.Now()
	s := newScenario(t, "signing", 0)
	oldSecret, newSecret := newWebhookSecret(t), newWebhookSecret(t)
	t.Setenv("E2E_SIGNING_OLD", oldSecret)
	newFile := filepath.Join(s.dir, "signing-new")
	if err := os.WriteFile(newFile, []byte(newSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	oldRef, newRef := `"${E2E_SIGNING_OLD}"`, `"${file:`+newFile+`}"`
	oldWH, err := standardwebhooks.NewWebhook(oldSecret)
	if err != nil {
		t.Fatal(err)
	}
	newWH, err := standardwebhooks.NewWebhook(newSecret)
	if err != nil {
		t.Fatal(err)
	}

	plain, plainTg := newSignedAPI(t, false)
	batched, batchTg := newSignedAPI(t, true)
	apis := map[string]*signedAPI{"signed": plain, "signedbatch": batched}
	tgs := map[string]*target{"signed": plainTg, "signedbatch": batchTg}

	phases := []struct {
		name    string
		secrets string
		plan    func() *keyPlan
	}{
		{"a: [old], API old", oldRef, func() *keyPlan { return &keyPlan{first: oldWH, firstName: "old"} }},
		{"b: [old, new], API old then new", oldRef + ", " + newRef, func() *keyPlan {
			return &keyPlan{first: oldWH, firstName: "old", second: newWH, secondName: "new", switchAfter: perPhase / 2}
		}},
		{"c: [new], API new", newRef, func() *keyPlan { return &keyPlan{first: newWH, firstName: "new"} }},
	}
	var outputs strings.Builder
	for i, ph := range phases {
		phaseStart := time.Now()
		signing := "signing: {secrets: [" + ph.secrets + "]}"
		s.writeConfig(
			sinkSpec{name: "signed", target: plainTg, extra: "ordering: unordered\nmax_in_flight: 16\n" + signing},
			sinkSpec{name: "signedbatch", target: batchTg, extra: "ordering: unordered\nmax_in_flight: 64\nbatch: {max_events: 50}\n" + signing},
		)
		for _, a := range apis {
			a.use(ph.plan())
		}
		before := map[string]map[string]int{}
		for name, a := range apis {
			a.mu.Lock()
			before[name] = map[string]int{"old": a.verifiedBy["old"], "new": a.verifiedBy["new"]}
			a.mu.Unlock()
		}
		s.emitEvents(i*perPhase, perPhase)
		p := s.start()
		// Every event ends accepted or parked once both groups commit the
		// end; a failed verification is a 401, parked or retried, so stop
		// waiting early when one shows.
		for name, a := range apis {
			tg := tgs[name]
			waitFor(t, 3*time.Minute, "phase "+ph.name+": sink "+name+" done", func() (bool, string) {
				p.mustRun(t)
				if a.failures.Load() > 0 {
					return true, ""
				}
				got := tg.snapshot()
				missing := 0
				for _, id := range s.ids {
					if got[id] == 0 {
						missing++
					}
				}
				if missing > 0 {
					return false, fmt.Sprintf("%d of %d events not accepted yet", missing, len(s.ids))
				}
				return s.committedAtEnd(name)
			})
		}
		p.term(t)
		outputs.WriteString(p.out.String())

		for name, a := range apis {
			a.mu.Lock()
			usedOld, usedNew := a.verifiedBy["old"]-before[name]["old"], a.verifiedBy["new"]-before[name]["new"]
			firstErr, idWrong := a.firstErr, a.idWrong
			a.mu.Unlock()
			t.Logf("phase %s, sink %s: %d requests verified with old, %d with new, %d failed verification",
				ph.name, name, usedOld, usedNew, a.failures.Load())
			if n := a.failures.Load(); n > 0 {
				t.Fatalf("phase %s, sink %s: %d requests failed verification; first: %s", ph.name, name, n, firstErr)
			}
			if idWrong > 0 {
				t.Errorf("phase %s, sink %s: %d requests with a wrong webhook-id; first: %s", ph.name, name, idWrong, firstErr)
			}
			// The plan was followed: phase b verified with both secrets.
			switch {
			case i == 0 && (usedOld == 0 || usedNew != 0),
				i == 1 && (usedOld == 0 || usedNew == 0),
				i == 2 && (usedOld != 0 || usedNew == 0):
				t.Errorf("phase %s, sink %s: verified %d with old and %d with new, not what the phase plans", ph.name, name, usedOld, usedNew)
			}
		}
		t.Logf("phase %s took %s", ph.name, time.Since(phaseStart).Round(time.Millisecond))
	}

	// Each event of the three phases accepted once, every request that
	// reached an API verified, nothing dead-lettered.
	var all []string
	for i := range len(phases) * perPhase {
		all = append(all, fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
	}
	for name, tg := range tgs {
		checkAccepted(t, name, tg, all, 0)
		if recs := readTopic(t, s.topic+"."+name+".dlq"); len(recs) != 0 {
			t.Errorf("sink %s: %d records dead-lettered, want 0 (first: %s)", name, len(recs), header(recs[0], "fanout-error"))
		}
		a := apis[name]
		a.mu.Lock()
		verified := 0
		for _, n := range a.verifiedBy {
			verified += n
		}
		a.mu.Unlock()
		if int64(verified) != a.requests.Load() {
			t.Errorf("sink %s: %d requests reached the API, %d verified", name, a.requests.Load(), verified)
		}
		t.Logf("sink %s: %d requests, all verified", name, a.requests.Load())
	}
	if batchTg.batches.Load() == 0 || batchTg.requests.Load() != batchTg.batches.Load() {
		t.Errorf("batched sink: %d requests, %d of them batches: want only batches", batchTg.requests.Load(), batchTg.batches.Load())
	}

	// No secret in anything fanout printed: the whsec_ strings, nor their
	// base64 keys alone.
	out := outputs.String()
	for name, sec := range map[string]string{"old": oldSecret, "new": newSecret} {
		if strings.Contains(out, sec) || strings.Contains(out, strings.TrimPrefix(sec, "whsec_")) {
			t.Errorf("fanout's output holds the %s signing secret", name)
		}
	}
	t.Logf("TestSinkSigningRotation: %d events per phase, 3 phases, took %s", perPhase, time.Since(start).Round(time.Millisecond))
}
