package schemas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// confluent is a small in-memory Schema Registry serving the Confluent
// REST endpoints fanout reads: schemas by id and their subjects, subjects,
// their versions. A schema text registered under several subjects keeps one
// id, as in Confluent's and Karapace's registries. noVersions makes it an
// older registry without GET /schemas/ids/{id}/versions.
type confluent struct {
	t          *testing.T
	noVersions bool
	gate       chan struct{} // if set, /versions waits for it

	mu       sync.Mutex
	texts    []string         // id-1 → schema text
	subjects map[string][]int // subject → ids by version-1
	hits     map[string]int   // path → requests
}

func newConfluent(t *testing.T) (*confluent, *httptest.Server) {
	c := &confluent{t: t, subjects: map[string][]int{}, hits: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /schemas/ids/{id}", func(w http.ResponseWriter, r *http.Request) {
		text, ok := c.text(r.PathValue("id"))
		if !ok {
			c.reply(w, 404, map[string]any{"error_code": 40403, "message": "Schema not found"})
			return
		}
		c.reply(w, 200, map[string]any{"schema": text})
	})
	mux.HandleFunc("GET /schemas/ids/{id}/versions", func(w http.ResponseWriter, r *http.Request) {
		if c.noVersions {
			http.NotFound(w, r)
			return
		}
		if c.gate != nil {
			<-c.gate
		}
		id, _ := strconv.Atoi(r.PathValue("id"))
		if _, ok := c.text(r.PathValue("id")); !ok {
			c.reply(w, 404, map[string]any{"error_code": 40403, "message": "Schema not found"})
			return
		}
		c.mu.Lock()
		out := []map[string]any{}
		for subject, ids := range c.subjects {
			for v, got := range ids {
				if got == id {
					out = append(out, map[string]any{"subject": subject, "version": v + 1})
				}
			}
		}
		c.mu.Unlock()
		c.reply(w, 200, out)
	})
	mux.HandleFunc("GET /subjects", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		out := []string{}
		for s := range c.subjects {
			out = append(out, s)
		}
		c.mu.Unlock()
		c.reply(w, 200, out)
	})
	mux.HandleFunc("GET /subjects/{subject}/versions", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		ids, ok := c.subjects[r.PathValue("subject")]
		c.mu.Unlock()
		if !ok {
			c.reply(w, 404, map[string]any{"error_code": 40401, "message": "Subject not found"})
			return
		}
		var vs []int
		for v := range ids {
			vs = append(vs, v+1)
		}
		c.reply(w, 200, vs)
	})
	mux.HandleFunc("GET /subjects/{subject}/versions/{version}", func(w http.ResponseWriter, r *http.Request) {
		subject := r.PathValue("subject")
		c.mu.Lock()
		ids, ok := c.subjects[subject]
		c.mu.Unlock()
		if !ok {
			c.reply(w, 404, map[string]any{"error_code": 40401, "message": "Subject not found"})
			return
		}
		v := len(ids)
		if s := r.PathValue("version"); s != "latest" {
			v, _ = strconv.Atoi(s)
		}
		if v < 1 || v > len(ids) {
			c.reply(w, 404, map[string]any{"error_code": 40402, "message": "Version not found"})
			return
		}
		text, _ := c.text(strconv.Itoa(ids[v-1]))
		c.reply(w, 200, map[string]any{"subject": subject, "version": v, "id": ids[v-1], "schema": text})
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.hits[r.URL.EscapedPath()]++
		c.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return c, srv
}

func (c *confluent) text(idStr string) (string, bool) {
	id, err := strconv.Atoi(idStr)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil || id < 1 || id > len(c.texts) {
		return "", false
	}
	return c.texts[id-1], true
}

func (c *confluent) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		c.t.Error(err)
	}
}

// register adds text as the next version of subject and returns its id.
func (c *confluent) register(subject, text string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := slices.Index(c.texts, text) + 1
	if id == 0 {
		c.texts = append(c.texts, text)
		id = len(c.texts)
	}
	c.subjects[subject] = append(c.subjects[subject], id)
	return id
}

func (c *confluent) hitCount(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits[path]
}

func avsc(t testing.TB, subject string) string {
	b, err := fs.ReadFile(Builtin(), subject+".avsc")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// encodeUser returns a user.registered event framed with schema id.
func encodeUser(t testing.TB, id int) []byte {
	t.Helper()
	b, _, err := testCodec(t).EncodeJSON(context.Background(), "user.registered",
		[]byte(`{"id":"6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a","email":"a@example.com","name":"A","plan":"PRO","created_at":"2026-11-27T10:00:00.000Z","referrer":null,"metadata":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	b[1], b[2], b[3], b[4] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
	return b
}

// TestRegistryEventTypes: with a registry, Decode learns the subjects of a
// schema id and names the event by the subject naming strategy in use, or
// by the record's full name. Before GET /schemas/ids/{id}/versions was
// asked, every event had the type "".
func TestRegistryEventTypes(t *testing.T) {
	c, srv := newConfluent(t)
	user, order := avsc(t, "user.registered"), avsc(t, "order.placed")
	topicID := c.register("events-value", user)                                   // TopicNameStrategy
	recordID := c.register("fanout.example.OrderPlaced", order)                   // RecordNameStrategy
	c.register("events-fanout.example.OrderPlaced", order)                        // TopicRecordNameStrategy, same id
	c.register("fanout.example.UserRegistered", user)                             // the user schema under two strategies
	otherID := c.register("other-fanout.example.UserRegistered", user+"\n\n\n\n") // another id, other topic's subject only
	c.register("other-value", user+"\n\n\n\n")

	reg := NewHTTPRegistry(srv.URL, srv.Client())
	userOn := func(id int) []byte { return encodeUser(t, id) }
	tests := []struct {
		from, topic string
		id          int
		want        string
	}{
		{TypeFromSubject, "events", topicID, "events-value"},
		{"", "events", topicID, "events-value"},
		{TypeFromSubject, "", topicID, "fanout.example.UserRegistered"}, // no topic: the record name's subject
		{TypeFromSubject, "events", otherID, "other-fanout.example.UserRegistered"},
		{TypeFromRecord, "events", topicID, "fanout.example.UserRegistered"},
		{TypeFromRecord, "events", otherID, "fanout.example.UserRegistered"},
	}
	for _, tc := range tests {
		codec := NewCodec(reg).WithEventTypes(EventTypes{From: tc.from, Topic: tc.topic})
		rec, err := codec.Decode(context.Background(), userOn(tc.id))
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if rec.Type != tc.want {
			t.Errorf("type_from %q, topic %q, schema id %d: type %q, want %q", tc.from, tc.topic, tc.id, rec.Type, tc.want)
		}
	}

	// The order schema is under its record name and <topic>-<record name>.
	b, _, err := testCodec(t).EncodeJSON(context.Background(), "order.placed",
		[]byte(`{"id":"0b7d3c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a","user_id":"u","amount":"1.00","currency":"EUR","items":[],"placed_at":"2026-11-27T10:00:00.000Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	b[4] = byte(recordID)
	for topic, want := range map[string]string{"events": "events-fanout.example.OrderPlaced", "orders": "fanout.example.OrderPlaced"} {
		rec, err := NewCodec(reg).WithEventTypes(EventTypes{Topic: topic}).Decode(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type != want || rec.Subject != want {
			t.Errorf("order on topic %s: type %q subject %q, want %q", topic, rec.Type, rec.Subject, want)
		}
	}
	// Subjects are cached like schemas: each id's were asked once.
	for _, id := range []int{topicID, recordID, otherID} {
		if n := c.hitCount(fmt.Sprintf("/schemas/ids/%d/versions", id)); n != 1 {
			t.Errorf("schema id %d: %d requests for its subjects, want 1", id, n)
		}
	}
}

// TestLocalEventTypes: local schemas keep their subject as the type, or
// name the record by its full name.
func TestLocalEventTypes(t *testing.T) {
	b := encodeUser(t, 1)
	for from, want := range map[string]string{"": "user.registered", TypeFromSubject: "user.registered", TypeFromRecord: "fanout.example.UserRegistered"} {
		rec, err := testCodec(t).WithEventTypes(EventTypes{From: from, Topic: "events"}).Decode(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type != want || rec.Subject != "user.registered" {
			t.Errorf("type_from %q: type %q subject %q, want %q", from, rec.Type, rec.Subject, want)
		}
		_, enc, err := testCodec(t).WithEventTypes(EventTypes{From: from}).EncodeJSON(context.Background(), "user.registered",
			[]byte(`{"id":"6f1c5c1e-6a43-4d1e-9a7e-4b0e8e1d2c3a","email":"a@example.com","name":"A","plan":"PRO","created_at":"2026-11-27T10:00:00.000Z","referrer":null,"metadata":{}}`))
		if err != nil || enc.Type != want {
			t.Errorf("type_from %q: EncodeJSON type %q (%v), want %q", from, enc.Type, err, want)
		}
	}
}

// TestRegistrySubjectsCollapse: concurrent misses for one id's subjects
// make one request.
func TestRegistrySubjectsCollapse(t *testing.T) {
	c, srv := newConfluent(t)
	id := c.register("events-value", avsc(t, "user.registered"))
	c.gate = make(chan struct{})
	reg := NewHTTPRegistry(srv.URL, srv.Client())
	const n = 20
	var wg sync.WaitGroup
	var got [n][]string
	var errs [n]error
	for i := range n {
		wg.Go(func() { got[i], errs[i] = reg.SubjectsOf(context.Background(), id) })
	}
	path := fmt.Sprintf("/schemas/ids/%d/versions", id)
	for deadline := time.Now().Add(5 * time.Second); c.hitCount(path) == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others reach the wait
	close(c.gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || !slices.Equal(got[i], []string{"events-value"}) {
			t.Fatalf("caller %d: %v %v", i, got[i], errs[i])
		}
	}
	if h := c.hitCount(path); h != 1 {
		t.Errorf("%d concurrent SubjectsOf: %d requests, want 1", n, h)
	}
}

// TestRegistryWithoutVersions: a registry that predates
// /schemas/ids/{id}/versions (a bare 404) leaves the type empty instead of
// failing or holding the record, and is not asked again for other ids.
func TestRegistryWithoutVersions(t *testing.T) {
	c, srv := newConfluent(t)
	c.noVersions = true
	id1 := c.register("events-value", avsc(t, "user.registered"))
	id2 := c.register("events-value", avsc(t, "user.registered")+" ")
	reg := NewHTTPRegistry(srv.URL, srv.Client())
	codec := NewCodec(reg).WithEventTypes(EventTypes{Topic: "events"})
	for _, id := range []int{id1, id2} {
		rec, err := codec.Decode(context.Background(), encodeUser(t, id))
		if err != nil {
			t.Fatalf("schema id %d: %v", id, err)
		}
		if rec.Type != "" || rec.Name != "fanout.example.UserRegistered" {
			t.Errorf("schema id %d: type %q name %q, want no type", id, rec.Type, rec.Name)
		}
	}
	if _, err := reg.SubjectsOf(context.Background(), id1); !errors.Is(err, ErrNoSubjects) {
		t.Errorf("SubjectsOf: %v, want ErrNoSubjects", err)
	}
	if n := c.hitCount(fmt.Sprintf("/schemas/ids/%d/versions", id2)); n != 0 {
		t.Errorf("asked %d times for id %d after the endpoint was found missing", n, id2)
	}
	// Under type_from: record the registry is not asked at all.
	rec, err := NewCodec(reg).WithEventTypes(EventTypes{From: TypeFromRecord}).Decode(context.Background(), encodeUser(t, id1))
	if err != nil || rec.Type != "fanout.example.UserRegistered" {
		t.Errorf("type_from record: %v %v", rec, err)
	}
}

// TestRegistrySubjectsError: a registry that fails to list an id's
// subjects (5xx) holds the record like any registry error: not a
// DecodeError, and not a record without a type.
func TestRegistrySubjectsError(t *testing.T) {
	c, srv := newConfluent(t)
	id := c.register("events-value", avsc(t, "user.registered"))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /schemas/ids/{id}/versions", func(w http.ResponseWriter, r *http.Request) {
		c.reply(w, 500, map[string]any{"error_code": 50001, "message": "Error in the backend data store"})
	})
	mux.Handle("/", srv.Config.Handler)
	broken := httptest.NewServer(mux)
	t.Cleanup(broken.Close)
	_, err := NewCodec(NewHTTPRegistry(broken.URL, broken.Client())).Decode(context.Background(), encodeUser(t, id))
	var de *DecodeError
	if err == nil || errors.As(err, &de) {
		t.Fatalf("registry 500 on /versions: %v; want a retryable error", err)
	}
}

// TestRegistryStartLookups: the lists fanout run checks the sinks' types
// against.
func TestRegistryStartLookups(t *testing.T) {
	c, srv := newConfluent(t)
	c.register("events-value", avsc(t, "user.registered"))
	c.register("events-value", avsc(t, "order.placed"))
	c.register("events-key", avsc(t, "user.registered"))
	reg := NewHTTPRegistry(srv.URL, srv.Client())
	subjects, err := reg.Subjects(context.Background())
	if err != nil || !slices.Equal(subjects, []string{"events-key", "events-value"}) {
		t.Errorf("Subjects: %v %v", subjects, err)
	}
	names, err := reg.RecordNames(context.Background(), "events-value")
	if err != nil || !slices.Equal(names, []string{"fanout.example.OrderPlaced", "fanout.example.UserRegistered"}) {
		t.Errorf("RecordNames: %v %v", names, err)
	}
	if _, err := reg.RecordNames(context.Background(), "nope-value"); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("RecordNames of a missing subject: %v", err)
	}
}

func TestPickSubject(t *testing.T) {
	const n = "ns.Rec"
	tests := []struct {
		subjects []string
		topic    string
		want     string
	}{
		{nil, "events", ""},
		{[]string{"ns.Rec", "events-ns.Rec", "events-value"}, "events", "events-value"},
		{[]string{"ns.Rec", "events-ns.Rec"}, "events", "events-ns.Rec"},
		{[]string{"ns.Rec", "other-value"}, "events", "ns.Rec"},
		{[]string{"other-value", "a-key"}, "events", "other-value"},
		{[]string{"b-key", "a-key"}, "events", "a-key"},
		{[]string{"z", "events-value"}, "", "events-value"}, // no topic: byte order
	}
	for _, tc := range tests {
		if got := PickSubject(tc.subjects, tc.topic, n); got != tc.want {
			t.Errorf("PickSubject(%v, %q): %q, want %q", tc.subjects, tc.topic, got, tc.want)
		}
	}
}
