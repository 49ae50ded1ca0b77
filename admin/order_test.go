package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// /metrics carries the handler's claim-wait and unordered counts per sink.
func TestAdminClaimAndOrderMetrics(t *testing.T) {
	yaml := `kafka: {brokers: [127.0.0.1:1], topic: events}
sinks:
  - {name: profile, url: "http://127.0.0.1:8081/users", ordering: key, retry: {tiers: [1s]}}
`
	runners := testRunners(t, yaml)
	srv := httptest.NewServer((&Server{Runners: runners, Started: time.Now()}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		"# TYPE fanout_dedupe_claim_busy_waits_total counter\n",
		`fanout_dedupe_claim_busy_waits_total{sink="profile"} 0` + "\n",
		"# TYPE fanout_events_unordered_total counter\n",
		`fanout_events_unordered_total{sink="profile"} 0` + "\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, b)
		}
	}
}
