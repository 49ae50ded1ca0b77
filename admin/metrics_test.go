package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsTestConfig has a sink with a breaker and two tiers and one without.
const metricsTestConfig = `kafka: {brokers: [127.0.0.1:1], topic: events}
sinks:
  - {name: profile, url: "http://127.0.0.1:8081/users", retry: {tiers: [1s, 5s]}, breaker: {enabled: true}}
  - {name: email, url: "http://127.0.0.1:8082/welcome", retry: {tiers: []}, breaker: {enabled: false}}
`

// scrape GETs /metrics from a's handler with the given Accept-Encoding
// ("" = none) and returns the response and its body.
func scrape(t *testing.T, a *Server, acceptEncoding string) (*http.Response, string) {
	t.Helper()
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	if acceptEncoding != "" {
		// Set by hand, Go's transport leaves the body as it came.
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics = %d:\n%s", resp.StatusCode, b)
	}
	return resp, string(b)
}

// fanout's own families are the ones the hand-written exposition had, line
// for line: testdata/metrics.txt is its output for metricsTestConfig (sorted;
// client_golang orders families by name and series by label values), every
// name, type, label and HELP text. fanout_build_info is new.
func TestMetricsSameAsBefore(t *testing.T) {
	a := &Server{Runners: testRunners(t, metricsTestConfig), Started: time.Now()}
	_, body := scrape(t, a, "")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if !strings.Contains(line, "fanout_build_info") {
			got = append(got, line)
		}
	}
	slices.Sort(got)
	b, err := os.ReadFile("testdata/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range want {
		if !slices.Contains(got, l) {
			t.Errorf("/metrics lacks %q", l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			t.Errorf("/metrics has %q, which it did not have", l)
		}
	}
}

// fanout run's /metrics parses as the Prometheus text format and carries the
// standard go_* and process_* families and fanout_build_info (1, labelled
// version, go_version, revision) beside fanout's own.
func TestMetricsRuntimeFamilies(t *testing.T) {
	a := &Server{Runners: testRunners(t, metricsTestConfig), Started: time.Now(), RuntimeMetrics: true}
	resp, body := scrape(t, a, "")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q, want the text format 0.0.4", ct)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "go_gc_duration_seconds", "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "fanout_events_delivered_total", "fanout_consumer_in_flight", "fanout_breaker_state"} {
		if families[name] == nil {
			t.Errorf("/metrics lacks the %s family", name)
		}
	}
	if f := families["fanout_events_delivered_total"]; f != nil && (f.GetType() != dto.MetricType_COUNTER || len(f.GetMetric()) != 2) {
		t.Errorf("fanout_events_delivered_total: type %v, %d series; want a counter with one series per sink", f.GetType(), len(f.GetMetric()))
	}
	bi := families["fanout_build_info"]
	if bi == nil || bi.GetType() != dto.MetricType_GAUGE || len(bi.GetMetric()) != 1 {
		t.Fatalf("fanout_build_info = %v, want one gauge series", bi)
	}
	m := bi.GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if m.GetGauge().GetValue() != 1 || labels["go_version"] != runtime.Version() || labels["version"] == "" || len(labels) != 3 {
		t.Errorf("fanout_build_info = %v %v, want 1 labelled version, go_version=%s, revision", labels, m.GetGauge().GetValue(), runtime.Version())
	}
	if _, ok := labels["revision"]; !ok {
		t.Errorf("fanout_build_info has no revision label: %v", labels)
	}
}

// /metrics is never compressed, even when the scraper offers gzip or zstd:
// the body passes through the secrets Redactor, which must see the text.
func TestMetricsUncompressed(t *testing.T) {
	a := &Server{Runners: testRunners(t, metricsTestConfig), Started: time.Now(), RuntimeMetrics: true}
	resp, body := scrape(t, a, "gzip, zstd")
	if enc := resp.Header.Get("Content-Encoding"); enc != "" || !strings.Contains(body, `fanout_events_delivered_total{sink="profile"} 0`) {
		t.Errorf("/metrics with Accept-Encoding gzip: Content-Encoding %q, body starts %q; want plain text", enc, body[:min(len(body), 40)])
	}
}
