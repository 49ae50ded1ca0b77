package demo

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/schemas"
)

func codec(t *testing.T) *schemas.Codec {
	t.Helper()
	reg, err := schemas.NewLocal(schemas.Builtin(), schemas.BuiltinSubjects)
	if err != nil {
		t.Fatal(err)
	}
	return schemas.NewCodec(reg)
}

// The three APIs answer as the worked example says, over HTTP, and count
// what they accepted per Idempotency-Key.
func TestAPIsAnswerByBehaviour(t *testing.T) {
	apis, err := StartAPIs()
	if err != nil {
		t.Fatal(err)
	}
	defer CloseAPIs(apis)
	post := func(a *API, key, body string) int {
		req, _ := http.NewRequest(http.MethodPost, a.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if names := []string{apis[0].Name, apis[1].Name, apis[2].Name}; !slices.Equal(names, []string{"profile", "email", "analytics"}) {
		t.Fatalf("APIs in order %v", names)
	}
	if got := post(apis[0], "a", `{"email":"a@example.com"}`); got != http.StatusCreated {
		t.Errorf("profile, good address: %d, want 201", got)
	}
	if got := post(apis[0], "b", `{"email":"b.example.com"}`); got != http.StatusUnprocessableEntity {
		t.Errorf("profile, address without @: %d, want 422", got)
	}
	if got := post(apis[0], "a", `{"email":"a@example.com"}`); got != http.StatusCreated {
		t.Errorf("profile, a again: %d, want 201", got)
	}
	if acc, twice, reqs := apis[0].Counts(); acc != 1 || twice != 1 || reqs != 3 {
		t.Errorf("profile counts: accepted %d twice %d requests %d, want 1 1 3", acc, twice, reqs)
	}
	if got := post(apis[2], "c", `{}`); got != http.StatusNoContent {
		t.Errorf("analytics: %d, want 204", got)
	}
	codes := map[int]int{}
	for range 200 {
		codes[post(apis[1], "d", `{}`)]++
	}
	if len(codes) != 2 || codes[http.StatusAccepted] == 0 || codes[http.StatusServiceUnavailable] == 0 {
		t.Errorf("email over 200 requests: %v, want both 202 and 503", codes)
	}
}

var uuid4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// Every example user is a user.registered event the shipped schema takes,
// with a fresh UUIDv4 id.
func TestExampleUserIsAnEvent(t *testing.T) {
	c := codec(t)
	seen := map[string]bool{}
	for n := 1; n <= 300; n++ {
		_, rec, err := c.EncodeJSON(context.Background(), "user.registered", ExampleUser(n))
		if err != nil {
			t.Fatalf("user %d: %v", n, err)
		}
		id, _ := rec.Field("id")
		if !uuid4.MatchString(id) || seen[id] {
			t.Fatalf("user %d: id %q is not a fresh UUIDv4", n, id)
		}
		seen[id] = true
		if email, _ := rec.Field("email"); email != fmt.Sprintf("user%d@example.com", n) && email != fmt.Sprintf("user%d.example.com", n) {
			t.Fatalf("user %d: email %q", n, email)
		}
	}
}

// The config parses, and the in-process Kafka holds every topic it names.
func TestConfigTopicsAreSeeded(t *testing.T) {
	apis, err := StartAPIs()
	if err != nil {
		t.Fatal(err)
	}
	defer CloseAPIs(apis)
	cluster, err := StartKafka(apis)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cfg, err := config.Parse("demo", []byte(Config(cluster.ListenAddrs(), apis)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	have, err := kadm.NewClient(cl).ListTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	need := []string{cfg.Kafka.Topic}
	for i, s := range cfg.Sinks {
		if s.Name != apis[i].Name || s.URL != apis[i].URL {
			t.Errorf("sink %d is %s at %s, want %s at %s", i, s.Name, s.URL, apis[i].Name, apis[i].URL)
		}
		need = append(append(need, s.DLQTopic), s.Retry.TierTopics...)
	}
	for _, topic := range need {
		if !have.Has(topic) {
			t.Errorf("the config names topic %s; the in-process Kafka lacks it", topic)
		}
	}
	if len(cfg.Sinks) != 3 || cfg.Sinks[2].Batch.MaxEvents != 16 {
		t.Errorf("sinks %d, analytics batch %d: want 3 sinks, analytics batching 16", len(cfg.Sinks), cfg.Sinks[2].Batch.MaxEvents)
	}
}

// With no sinks Run is the producer alone: it publishes for ProduceFor, is
// caught up as soon as the producer is done, and reports what it produced.
func TestRunProducesAndStops(t *testing.T) {
	cluster, err := StartKafka(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	var ticks int
	rep, results, err := Run(context.Background(), Options{
		Start: time.Now(), Duration: 3 * time.Second, Rate: 100, Codec: codec(t), Brokers: cluster.ListenAddrs(),
		Tick: func(time.Duration, int64) { ticks++ },
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Produced == 0 || rep.Repeated > rep.Produced || len(results) != 0 || ticks == 0 {
		t.Fatalf("report %+v, %d results, %d ticks", rep, len(results), ticks)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), Topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	if n != rep.Produced {
		t.Errorf("%d records on %s, report says %d produced", n, Topic, rep.Produced)
	}
}
