package admin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/redact"
)

// The admin endpoint serves every sink and tier consumer of the config, in
// the Prometheus text format and as JSON, plus health, readiness and pprof.
// (e2e TestTwoSinksDeliverEveryEventOnce checks the counts of a real run.)
func TestAdminEndpoints(t *testing.T) {
	yaml := `kafka: {brokers: [127.0.0.1:1], topic: events}
sinks:
  - {name: profile, url: "http://127.0.0.1:8081/users", retry: {tiers: [1s, 5s]}, breaker: {enabled: true}}
  - {name: email, url: "http://127.0.0.1:8082/welcome", retry: {tiers: []}, breaker: {enabled: false}}
`
	runners := testRunners(t, yaml)
	a := &Server{Runners: runners, Started: time.Now(), Pprof: true}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d while running, want 200", code)
	}
	code, metrics := get("/metrics")
	for _, want := range []string{
		"# TYPE fanout_events_delivered_total counter\n",
		`fanout_events_delivered_total{sink="profile"} 0` + "\n",
		`fanout_events_delivered_total{sink="email"} 0` + "\n",
		`fanout_breaker_state{sink="profile",state="closed"} 1` + "\n",
		`fanout_breaker_state{sink="profile",state="open"} 0` + "\n",
		`fanout_consumer_buffered{sink="profile",tier="2"} 0` + "\n",
		`fanout_consumer_in_flight{sink="email",tier="0"} 0` + "\n",
	} {
		if code != 200 || !strings.Contains(metrics, want) {
			t.Errorf("/metrics (%d) lacks %q:\n%s", code, want, metrics)
		}
	}
	if strings.Contains(metrics, `fanout_breaker_state{sink="email"`) {
		t.Errorf("/metrics has a breaker state for email, which has no breaker")
	}
	if strings.Contains(metrics, `sink="email",tier="1"`) {
		t.Errorf("/metrics has a tier consumer for email, which has no tiers")
	}
	// Every sample line is name{labels} integer.
	for _, line := range strings.Split(strings.TrimSpace(metrics), "\n") {
		if strings.HasPrefix(line, "# ") {
			continue
		}
		if name, rest, ok := strings.Cut(line, "{"); !ok || !strings.HasPrefix(name, "fanout_") || !strings.Contains(rest, "} ") {
			t.Errorf("malformed sample line %q", line)
		}
	}

	_, body := get("/api/sinks")
	var doc struct {
		Sinks []sinkState `json:"sinks"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("/api/sinks: %v\n%s", err, body)
	}
	if len(doc.Sinks) != 2 || doc.Sinks[0].Sink != "profile" || len(doc.Sinks[0].Consumers) != 3 || len(doc.Sinks[1].Consumers) != 1 {
		t.Errorf("/api/sinks = %+v, want profile with 3 consumers (main + 2 tiers) and email with 1", doc.Sinks)
	}
	if code, body := get("/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ = %d", code)
	}

	a.Draining.Store(true)
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d while draining, want 503", code)
	}
}

// A busy admin address stops fanout run at start, naming the address.
func TestAdminAddressInUse(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if _, err := Serve(addr, &Server{}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("serveAdmin on a busy address: %v, want an error naming %s", err, addr)
	}
}

// testRunners builds the sinks of the config yaml (in-memory store), as
// fanout run does, for admin endpoint tests.
func testRunners(t *testing.T, yaml string) []*app.Runner {
	t.Helper()
	cfg, err := config.Parse("fanout.yaml", []byte(yaml), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	codec, err := app.BuildCodec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	store, closeStore, err := app.BuildStore(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeStore)
	runners, err := app.BuildSinks(cfg, nil, codec, store, log)
	if err != nil {
		t.Fatal(err)
	}
	return runners
}

// Every body the endpoint writes passes through the Redactor it was given
// (fanout run gives it the process's secrets): here one that holds a sink's
// name, which then shows in neither /metrics nor /api/sinks.
func TestAdminRedactsBodies(t *testing.T) {
	runners := testRunners(t, metricsTestConfig)
	srv := httptest.NewServer((&Server{Runners: runners, Started: time.Now(), Redact: redact.New("profile")}).Handler())
	defer srv.Close()
	for _, path := range []string{"/metrics", "/api/sinks"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(string(b), "profile") || !strings.Contains(string(b), redact.Mask) {
			t.Errorf("%s (%d) shows the secret or no mask:\n%s", path, resp.StatusCode, b)
		}
	}
}
