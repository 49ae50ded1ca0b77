package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRegistryEventTypes: events produced by a third-party producer
// (confluent-kafka's Python client with its AvroSerializer, registering
// user.registered under TopicNameStrategy and order.placed under
// RecordNameStrategy) through a Schema Registry reach the sinks whose types
// name them, with X-Fanout-Event-Type, under schemas.type_from: subject and
// record; and run refuses at start a type that can never match. Before
// fanout asked the registry for the subjects of a schema id, the typed sinks
// skipped every event (delivered=0) and committed past them.
//
// The registry is a Go server in this test implementing the Confluent REST
// endpoints the client and fanout use (Karapace is not on PyPI, so it cannot
// be installed here).
func TestRegistryEventTypes(t *testing.T) {
	python := pythonClients(t)
	reg := newConfluentRegistry(t)
	const n = 150 // of each type
	s := newScenario(t, "registry", 0)
	user, order := "fanout.example.UserRegistered", "fanout.example.OrderPlaced"
	if _, err := admin(t).CreateTopic(context.Background(), 3, 1, nil, s.topic); err != nil {
		t.Fatal(err)
	}
	avscDir, _ := filepath.Abs("../schemas/avro")
	args, _ := json.Marshal(map[string]any{"bootstrap": kafka.Addr, "registry": reg.URL, "topic": s.topic, "n": n,
		"user_avsc": filepath.Join(avscDir, "user.registered.avsc"), "order_avsc": filepath.Join(avscDir, "order.placed.avsc")})
	out, err := exec.Command(python, "python/produce_avro.py", string(args)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(2*n) {
		t.Fatalf("confluent-kafka producer: %v\n%s", err, out)
	}
	if got, want := reg.subjectList(), []string{order, s.topic + "-value"}; !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Fatalf("the AvroSerializer registered subjects %q", got)
	}
	var users, orders []string
	for i := range n {
		users = append(users, fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
		orders = append(orders, fmt.Sprintf("00000000-0000-4000-9000-%012d", i))
	}
	top := func(typeFrom string) string {
		return fmt.Sprintf("schemas: {registry_url: %q, type_from: %s}", reg.URL, typeFrom)
	}

	// A type no event can have under type_from: subject: refused at start.
	s.top = top("subject")
	s.writeConfig(sinkSpec{name: "users", target: &target{URL: "http://127.0.0.1:1/"}, extra: "types: [user.registered]"})
	if out, err := exec.Command(fanoutBin, "run", "-c", s.cfg).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), `sinks[0].types[0]: sink "users": type "user.registered" is not a subject in the schema registry`) {
		t.Fatalf("run with an impossible type: %v\n%s", err, out)
	}

	// type_from: subject. The user schema's id is registered under
	// <topic>-value, the order schema's under its record name.
	us, ords, all := newTypedTarget(t), newTypedTarget(t), newTypedTarget(t)
	s.writeConfig(
		sinkSpec{name: "users", target: &target{URL: us.URL}, extra: "types: [" + s.topic + "-value]"},
		sinkSpec{name: "orders", target: &target{URL: ords.URL}, extra: "types: [" + order + "]"},
		sinkSpec{name: "all", target: &target{URL: all.URL}},
	)
	s.fanout("topics", "ensure", "-c", s.cfg, "--partitions", "3")
	before := reg.hits("/schemas/ids/")
	p := s.start()
	want := func(ids []string, typ string) map[string]string {
		m := map[string]string{}
		for _, id := range ids {
			m[id] = typ
		}
		return m
	}
	wantAll := want(users, s.topic+"-value")
	for id, typ := range want(orders, order) {
		wantAll[id] = typ
	}
	s.waitTyped(p, map[string]*typedTarget{"users": us, "orders": ords, "all": all}, map[string]map[string]string{
		"users": want(users, s.topic+"-value"), "orders": want(orders, order), "all": wantAll})
	// Two ids, each asked for its schema and its subjects once (cached,
	// concurrent misses collapsed), and one subjects lookup by the start check.
	if got := reg.hits("/schemas/ids/") - before; got > 5 {
		t.Errorf("fanout asked the registry %d times for schemas by id and their subjects, want at most 5 (cached)", got)
	}

	// type_from: record, in new sinks (own groups and dedupe keys): the
	// record's full name, whatever the subject.
	s.top = top("record")
	us, ords = newTypedTarget(t), newTypedTarget(t)
	s.writeConfig(
		sinkSpec{name: "users-rec", target: &target{URL: us.URL}, extra: "types: [" + user + "]"},
		sinkSpec{name: "orders-rec", target: &target{URL: ords.URL}, extra: "types: [" + order + "]"},
	)
	s.fanout("topics", "ensure", "-c", s.cfg, "--partitions", "3")
	p = s.start()
	s.waitTyped(p, map[string]*typedTarget{"users-rec": us, "orders-rec": ords}, map[string]map[string]string{
		"users-rec": want(users, user), "orders-rec": want(orders, order)})
	if bad := reg.unknownRequests(); len(bad) > 0 {
		t.Errorf("requests the registry does not serve: %q", bad)
	}
}

// waitTyped waits until each sink got exactly its events, each with its
// X-Fanout-Event-Type, and committed the end offsets; then stops p.
func (s *scenario) waitTyped(p *proc, sinks map[string]*typedTarget, want map[string]map[string]string) {
	s.t.Helper()
	for name, tg := range sinks {
		w := want[name]
		waitFor(s.t, 2*time.Minute, "sink "+name+" got its events", func() (bool, string) {
			got := tg.snapshot()
			return len(got) >= len(w), fmt.Sprintf("%d of %d events", len(got), len(w))
		})
		waitFor(s.t, time.Minute, "sink "+name+" committed the end offsets", func() (bool, string) { return s.committedAtEnd(name) })
	}
	p.term(s.t)
	for name, tg := range sinks {
		got, bad := tg.snapshot(), 0
		for id, typ := range want[name] {
			if got[id] != typ {
				if bad++; bad <= 3 {
					s.t.Errorf("sink %s: event %s arrived with X-Fanout-Event-Type %q, want %q", name, id, got[id], typ)
				}
			}
		}
		for id, typ := range got {
			if _, ok := want[name][id]; !ok {
				if bad++; bad <= 6 {
					s.t.Errorf("sink %s: got event %s (type %q) it should have skipped", name, id, typ)
				}
			}
		}
		if bad > 0 {
			s.t.Errorf("sink %s: %d events wrong of %d", name, bad, len(want[name]))
		}
	}
	if out := p.out.String(); strings.Contains(out, "type is unknown") {
		s.t.Errorf("fanout warned about events of unknown type:\n%s", tail(out, 20))
	}
}

// pythonClients returns the Python of the venv e2e/install.sh fills with
// the third-party clients of e2e/python/requirements.txt.
func pythonClients(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("FANOUT_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(home, ".cache", "fanout")
	}
	venv := filepath.Join(cache, "pyclients")
	if _, err := os.Stat(filepath.Join(venv, ".fanout-complete")); err != nil {
		t.Fatalf("the Python Kafka clients are not installed in %s: run bash e2e/install.sh", venv)
	}
	return filepath.Join(venv, "bin", "python")
}

// typedTarget is a real HTTP API recording each event's (Idempotency-Key)
// X-Fanout-Event-Type.
type typedTarget struct {
	URL   string
	mu    sync.Mutex
	types map[string]string
}

func newTypedTarget(t *testing.T) *typedTarget {
	tg := &typedTarget{types: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		tg.mu.Lock()
		tg.types[r.Header.Get("Idempotency-Key")] = r.Header.Get("X-Fanout-Event-Type")
		tg.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	tg.URL = srv.URL + "/events"
	return tg
}

func (tg *typedTarget) snapshot() map[string]string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	m := make(map[string]string, len(tg.types))
	for k, v := range tg.types {
		m[k] = v
	}
	return m
}

// confluentRegistry is an in-memory Schema Registry serving the Confluent
// REST endpoints the AvroSerializer and fanout use: register a schema under
// a subject (one id per distinct schema text, as Confluent and Karapace do),
// schemas by id and the subjects of an id, subjects and their versions.
type confluentRegistry struct {
	URL string
	t   *testing.T

	// user and pass, when set, are required as basic auth, as the
	// registry's basic auth extension does.
	user, pass string

	mu       sync.Mutex
	texts    []string          // id-1 → schema text
	refs     []json.RawMessage // id-1 → its schema references, as posted
	subjects map[string][]int  // subject → ids by version-1
	paths    map[string]int    // requests per path
	unknown  []string
}

func newConfluentRegistry(t *testing.T) *confluentRegistry {
	r := &confluentRegistry{t: t, subjects: map[string][]int{}, paths: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /subjects/{subject}/versions", func(w http.ResponseWriter, q *http.Request) {
		var body struct {
			Schema     string          `json:"schema"`
			SchemaType string          `json:"schemaType"`
			References json.RawMessage `json:"references"`
		}
		if err := json.NewDecoder(q.Body).Decode(&body); err != nil || body.Schema == "" || body.SchemaType != "" && body.SchemaType != "AVRO" {
			r.reply(w, 422, map[string]any{"error_code": 42201, "message": "Invalid schema"})
			return
		}
		subject := q.PathValue("subject")
		r.mu.Lock()
		id := slices.Index(r.texts, body.Schema) + 1
		if id == 0 {
			r.texts = append(r.texts, body.Schema)
			r.refs = append(r.refs, body.References)
			id = len(r.texts)
		}
		if !slices.Contains(r.subjects[subject], id) {
			r.subjects[subject] = append(r.subjects[subject], id)
		}
		r.mu.Unlock()
		r.reply(w, 200, map[string]any{"id": id})
	})
	mux.HandleFunc("GET /schemas/ids/{id}", func(w http.ResponseWriter, q *http.Request) {
		if text, ok := r.text(q.PathValue("id")); ok {
			r.reply(w, 200, r.withRefs(q.PathValue("id"), map[string]any{"schema": text}))
			return
		}
		r.reply(w, 404, map[string]any{"error_code": 40403, "message": "Schema not found"})
	})
	mux.HandleFunc("GET /schemas/ids/{id}/versions", func(w http.ResponseWriter, q *http.Request) {
		if _, ok := r.text(q.PathValue("id")); !ok {
			r.reply(w, 404, map[string]any{"error_code": 40403, "message": "Schema not found"})
			return
		}
		id, _ := strconv.Atoi(q.PathValue("id"))
		out := []map[string]any{}
		r.mu.Lock()
		for subject, ids := range r.subjects {
			if v := slices.Index(ids, id); v >= 0 {
				out = append(out, map[string]any{"subject": subject, "version": v + 1})
			}
		}
		r.mu.Unlock()
		r.reply(w, 200, out)
	})
	mux.HandleFunc("GET /subjects", func(w http.ResponseWriter, q *http.Request) { r.reply(w, 200, r.subjectList()) })
	mux.HandleFunc("GET /subjects/{subject}/versions", func(w http.ResponseWriter, q *http.Request) {
		r.mu.Lock()
		ids, ok := r.subjects[q.PathValue("subject")]
		r.mu.Unlock()
		if !ok {
			r.reply(w, 404, map[string]any{"error_code": 40401, "message": "Subject not found"})
			return
		}
		vs := []int{}
		for v := range ids {
			vs = append(vs, v+1)
		}
		r.reply(w, 200, vs)
	})
	mux.HandleFunc("GET /subjects/{subject}/versions/{version}", func(w http.ResponseWriter, q *http.Request) {
		subject := q.PathValue("subject")
		r.mu.Lock()
		ids, ok := r.subjects[subject]
		r.mu.Unlock()
		if !ok {
			r.reply(w, 404, map[string]any{"error_code": 40401, "message": "Subject not found"})
			return
		}
		v := len(ids)
		if s := q.PathValue("version"); s != "latest" {
			v, _ = strconv.Atoi(s)
		}
		if v < 1 || v > len(ids) {
			r.reply(w, 404, map[string]any{"error_code": 40402, "message": "Version not found"})
			return
		}
		text, _ := r.text(strconv.Itoa(ids[v-1]))
		r.reply(w, 200, r.withRefs(strconv.Itoa(ids[v-1]), map[string]any{"subject": subject, "version": v, "id": ids[v-1], "schema": text}))
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
		r.mu.Lock()
		r.paths[q.URL.Path]++
		r.mu.Unlock()
		if user, pass, ok := q.BasicAuth(); r.user != "" && (!ok || user != r.user || pass != r.pass) {
			r.reply(w, http.StatusUnauthorized, map[string]any{"error_code": 40101, "message": "Unauthorized"})
			return
		}
		if _, pattern := mux.Handler(q); pattern == "" {
			r.mu.Lock()
			r.unknown = append(r.unknown, q.Method+" "+q.URL.Path)
			r.mu.Unlock()
		}
		mux.ServeHTTP(w, q)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *confluentRegistry) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (r *confluentRegistry) text(idStr string) (string, bool) {
	id, err := strconv.Atoi(idStr)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || id < 1 || id > len(r.texts) {
		return "", false
	}
	return r.texts[id-1], true
}

// withRefs adds the references schema id idStr was registered with to m.
func (r *confluentRegistry) withRefs(idStr string, m map[string]any) map[string]any {
	id, _ := strconv.Atoi(idStr)
	r.mu.Lock()
	defer r.mu.Unlock()
	if id >= 1 && id <= len(r.refs) && len(r.refs[id-1]) > 0 && string(r.refs[id-1]) != "null" {
		m["references"] = r.refs[id-1]
	}
	return m
}

func (r *confluentRegistry) subjectList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []string{}
	for s := range r.subjects {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// hits counts the requests for paths under prefix.
func (r *confluentRegistry) hits(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for p, c := range r.paths {
		if strings.HasPrefix(p, prefix) {
			n += c
		}
	}
	return n
}

func (r *confluentRegistry) unknownRequests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.unknown...)
}
