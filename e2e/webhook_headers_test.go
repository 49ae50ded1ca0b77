package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// produceWithHeaders produces the scenario's events (encoded with the builtin
// codec, keyed and with event-id as fanout emit does) with extra Kafka
// headers per event; fanout emit sets no headers of its own choosing.
func (s *scenario) produceWithHeaders(headers func(i int) []kgo.RecordHeader) {
	s.t.Helper()
	s.fanout("topics", "ensure", "-c", s.cfg, "--partitions", "3")
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr), kgo.DefaultProduceTopic(s.topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	codec := builtinCodec(s.t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var recs []*kgo.Record
	for i, doc := range s.docs {
		value, _, err := codec.EncodeJSON(ctx, "user.registered", doc)
		if err != nil {
			s.t.Fatalf("event %d: %v", i, err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(s.ids[i]), Value: value,
			Headers: append([]kgo.RecordHeader{{Key: "event-id", Value: []byte(s.ids[i])}}, headers(i)...)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		s.t.Fatalf("produce: %v", err)
	}
}

// waitSettled waits until each sink's group has committed the topic's end:
// every event is then accepted or parked.
func (s *scenario) waitSettled(p *proc, timeout time.Duration, sinks ...string) {
	s.t.Helper()
	for _, name := range sinks {
		waitFor(s.t, timeout, "sink "+name+" committed the end offsets", func() (bool, string) {
			p.mustRun(s.t)
			return s.committedAtEnd(name)
		})
	}
}

// mustRun ends the test at once if fanout run has exited (a config it
// refuses, say) instead of waiting out a deadline.
func (p *proc) mustRun(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("fanout run exited:\n%s", tail(p.out.String(), 20))
	default:
	}
}

// seenHeaders is what an API saw of the headers of each event's requests.
type seenHeaders struct {
	auth, tenant, echo string
	secret             []string // any header that carries the internal one
	requests           int
}

// A sink forwards the allow-listed Kafka record headers (authorization,
// x-tenant-id) of each record as its request's headers, and a header
// template reads one; a record header off the list (x-secret-internal) never
// reaches the API. The API rejects an expired propagated token with 401:
// that event is parked with class propagated-auth-rejected, the others are
// delivered with their own record's values.
func TestSinkPropagateHeaders(t *testing.T) {
	const n = 200
	start := time.Now()
	s := newScenario(t, "propagate", n)
	expired := map[string]bool{}
	for i, id := range s.ids {
		if i%10 == 3 {
			expired[id] = true
		}
	}
	var mu sync.Mutex
	seen := map[string]*seenHeaders{}
	tg := newTarget(t, 0, nil)
	serveThrough(t, tg, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := r.Header.Get("Idempotency-Key")
			mu.Lock()
			sh := seen[key]
			if sh == nil {
				sh = &seenHeaders{}
				seen[key] = sh
			}
			sh.requests++
			sh.auth, sh.tenant, sh.echo = r.Header.Get("Authorization"), r.Header.Get("X-Tenant-Id"), r.Header.Get("X-Tenant-Echo")
			for k, vs := range r.Header {
				for _, v := range vs {
					if strings.Contains(strings.ToLower(k), "secret") || strings.Contains(v, "internal-only") {
						sh.secret = append(sh.secret, k)
					}
				}
			}
			mu.Unlock()
			// The API takes only its live tokens.
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok-") {
				io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, "token expired")
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	s.writeConfig(sinkSpec{name: "tenants", target: tg, extra: `ordering: unordered
max_in_flight: 16
propagate_headers: [authorization, x-tenant-id]
headers:
  X-Tenant-Echo: '{{ index .Headers "x-tenant-id" }}'`})
	s.produceWithHeaders(func(i int) []kgo.RecordHeader {
		auth := fmt.Sprintf("Bearer tok-%d", i)
		if expired[s.ids[i]] {
			auth = fmt.Sprintf("Bearer expired-%d", i)
		}
		return []kgo.RecordHeader{
			{Key: "x-tenant-id", Value: fmt.Appendf(nil, "tenant-%d", i)},
			{Key: "authorization", Value: []byte(auth)},
			{Key: "x-secret-internal", Value: fmt.Appendf(nil, "internal-only-%d", i)},
		}
	})
	p := s.start()
	s.waitSettled(p, 3*time.Minute, "tenants")
	p.term(t)
	// The forwarded tokens and the internal header are secrets: fanout's
	// output holds none of them.
	for _, sec := range []string{"tok-", "expired-", "internal-only-"} {
		if strings.Contains(p.out.String(), sec) {
			t.Errorf("fanout's output holds a record header value (%s…)", sec)
		}
	}

	var good []string
	for _, id := range s.ids {
		if !expired[id] {
			good = append(good, id)
		}
	}
	checkAccepted(t, "tenants", tg, good, 0)
	mu.Lock()
	bad := 0
	for i, id := range s.ids {
		sh := seen[id]
		wantAuth := fmt.Sprintf("Bearer tok-%d", i)
		if expired[id] {
			wantAuth = fmt.Sprintf("Bearer expired-%d", i)
		}
		wantTenant := fmt.Sprintf("tenant-%d", i)
		switch {
		case sh == nil:
			bad++
			t.Errorf("event %d: no request reached the API", i)
		case sh.auth != wantAuth || sh.tenant != wantTenant || sh.echo != wantTenant:
			if bad++; bad <= 5 {
				t.Errorf("event %d: Authorization %q, X-Tenant-Id %q, X-Tenant-Echo %q; want %q, %q, %q",
					i, sh.auth, sh.tenant, sh.echo, wantAuth, wantTenant, wantTenant)
			}
		case len(sh.secret) > 0:
			if bad++; bad <= 5 {
				t.Errorf("event %d: the record header off the allow-list arrived as %v", i, sh.secret)
			}
		}
	}
	requests := 0
	for _, sh := range seen {
		requests += sh.requests
	}
	mu.Unlock()
	if bad > 0 {
		t.Errorf("%d of %d events arrived without their own propagated headers or with one off the list", bad, n)
	}

	parked := map[string]bool{}
	for _, r := range readTopic(t, s.topic+".tenants.dlq") {
		id := header(r, "event-id")
		parked[id] = true
		if !expired[id] || header(r, "fanout-error-class") != "propagated-auth-rejected" || header(r, "fanout-http-status") != "401" {
			t.Errorf("parked event %s: class %q status %q error %q; want only the expired-token events, class propagated-auth-rejected, 401",
				id, header(r, "fanout-error-class"), header(r, "fanout-http-status"), header(r, "fanout-error"))
		}
	}
	for id := range expired {
		if !parked[id] {
			t.Errorf("event %s with an expired propagated token was not parked", id)
		}
	}
	t.Logf("%d events, %d requests, %d parked with an expired token; took %s", n, requests, len(parked), time.Since(start).Round(time.Millisecond))
}

// injection is the example: a name that closes its JSON string and
// adds a field when a template pastes it between quotes. The rendered body
// is syntactically valid JSON that names "admin" twice (a parser that keeps
// the first name reads admin true). broken is a name whose quote leaves the
// body syntactically invalid.
const (
	injection = `x", "admin": true, "y": "`
	broken    = `say "hi"`
)

// The injection example: a body template that pastes the name
// between quotes renders a body that names "admin" twice for it, and another
// name renders invalid JSON; both are parked as render failures before any
// request. The same events through a template that uses the json function
// arrive with their names intact and admin false.
func TestSinkBodyInjection(t *testing.T) {
	const n = 20
	start := time.Now()
	s := newScenario(t, "inject", n)
	evil := map[string]string{} // event id → its name
	for i, name := range map[int]string{7: injection, 13: broken} {
		var doc map[string]any
		if err := json.Unmarshal(s.docs[i], &doc); err != nil {
			t.Fatal(err)
		}
		doc["name"] = name
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		s.docs[i] = b
		evil[s.ids[i]] = name
	}

	raw, safe := newTarget(t, 0, nil), newTarget(t, 0, nil)
	s.writeConfig(
		sinkSpec{name: "raw", target: raw, extra: `body: '{"name": "{{ .Record.name }}", "admin": false}'`},
		sinkSpec{name: "safe", target: safe, extra: `body: '{"name": {{ json .Record.name }}, "admin": false}'`},
	)
	s.emitAll()
	p := s.start()
	s.waitSettled(p, 3*time.Minute, "raw", "safe")
	p.term(t)

	var good []string
	for _, id := range s.ids {
		if evil[id] == "" {
			good = append(good, id)
		}
	}
	// raw: every harmless name delivered; the two others never sent.
	checkAccepted(t, "raw", raw, good, 0)
	raw.mu.Lock()
	for id := range evil {
		if n := raw.attempts[id]; n != 0 {
			t.Errorf("raw: the API got %d requests for event %s (body %s), want none", n, id, raw.bodies[id])
		}
	}
	for id, body := range raw.bodies {
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil || got["admin"] != false || len(got) != 2 {
			t.Errorf("raw: event %s arrived as %s, want a name and admin false", id, body)
		}
	}
	raw.mu.Unlock()
	parked := map[string]bool{}
	for _, r := range readTopic(t, s.topic+".raw.dlq") {
		id := header(r, "event-id")
		parked[id] = true
		class, msg := header(r, "fanout-error-class"), header(r, "fanout-error")
		var want []string
		switch evil[id] {
		case injection:
			want = []string{`"admin" twice`, "json func"}
		case broken:
			want = []string{"not valid JSON", "json func"}
		default:
			t.Errorf("raw: harmless event %s parked: %s", id, msg)
			continue
		}
		for _, w := range want {
			if class != "render-failed" || !strings.Contains(msg, w) {
				t.Errorf("raw: event %s (name %q) parked with class %q, error %q; want render-failed and an error saying %s",
					id, evil[id], class, msg, w)
			}
		}
		if !bytes.Contains(r.Value, []byte(evil[id])) {
			t.Errorf("raw: the record parked for %s is not the original event", id)
		}
	}
	for id, name := range evil {
		if !parked[id] {
			t.Errorf("raw: event %s (name %q) not parked", id, name)
		}
	}

	// safe: everything delivered, the names intact, admin false.
	checkAccepted(t, "safe", safe, s.ids, 0)
	if recs := readTopic(t, s.topic+".safe.dlq"); len(recs) != 0 {
		t.Errorf("safe: %d records parked, want 0 (first: %s)", len(recs), header(recs[0], "fanout-error"))
	}
	safe.mu.Lock()
	defer safe.mu.Unlock()
	for id, name := range evil {
		body := safe.bodies[id]
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("safe: event %s arrived as %s, not JSON: %v", id, body, err)
			continue
		}
		if got["name"] != name || got["admin"] != false || len(got) != 2 {
			t.Errorf("safe: event %s arrived as %s; want name %q and admin false only", id, body, name)
		}
	}
	t.Logf("took %s", time.Since(start).Round(time.Millisecond))
}
