package admin

import (
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fanout-dev/fanout/sink"
)

// metricsHandler serves /metrics: the registry's families in the Prometheus
// text exposition format, negotiated by promhttp. Compression is off because
// the body passes through the secrets Redactor (auth), which must see text.
// A collector that fails (process_* on a system without /proc) costs its own
// families, not the scrape.
func (a *Server) metricsHandler() http.HandlerFunc {
	return promhttp.HandlerFor(a.registry(), promhttp.HandlerOpts{
		DisableCompression: true,
		ErrorHandling:      promhttp.ContinueOnError,
	}).ServeHTTP
}

// registry holds fanout's families (read from the runners at scrape time)
// and fanout_build_info; with RuntimeMetrics, also the standard go_* and
// process_* collectors.
func (a *Server) registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(fanoutCollector{a}, buildInfo())
	if a.RuntimeMetrics {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return reg
}

// buildInfo is fanout_build_info: 1, labelled with the module version, the Go
// version and the VCS revision the binary was built from ("" when unknown).
func buildInfo() prometheus.Collector {
	version, revision := "(unknown)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "fanout_build_info",
		Help:        "1, labelled with the version, Go version and VCS revision fanout was built from.",
		ConstLabels: prometheus.Labels{"version": version, "go_version": runtime.Version(), "revision": revision},
	})
	g.Set(1)
	return g
}

// fanoutCollector reads the same counts as /api/sinks (Server.states) at
// scrape time: the counters live in the runners, handlers, sinks and
// consumers, never a second time in the registry.
type fanoutCollector struct{ a *Server }

type sinkFamily struct {
	desc  *prometheus.Desc
	value func(sinkState) int64
}

type consumerFamily struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(consumerState) int64
}

func perSink(name, help string, value func(sinkState) int64) sinkFamily {
	return sinkFamily{prometheus.NewDesc(name, help, []string{"sink"}, nil), value}
}

func perConsumer(name string, typ prometheus.ValueType, help string, value func(consumerState) int64) consumerFamily {
	return consumerFamily{prometheus.NewDesc(name, help, []string{"sink", "tier"}, nil), typ, value}
}

// sinkFamilies are counters, one series per sink.
var sinkFamilies = []sinkFamily{
	perSink("fanout_events_delivered_total", "Events the API accepted (2xx).", func(s sinkState) int64 { return s.Delivered }),
	perSink("fanout_delivery_retries_total", "Attempts beyond the first, over all events.", func(s sinkState) int64 { return s.Retried }),
	perSink("fanout_events_dead_lettered_total", "Events parked on the dead-letter topic.", func(s sinkState) int64 { return s.DeadLettered }),
	perSink("fanout_events_tiered_total", "Events parked in a retry tier.", func(s sinkState) int64 { return s.Tiered }),
	perSink("fanout_events_duplicate_total", "Events skipped because dedupe had them done already.", func(s sinkState) int64 { return s.Duplicates }),
	perSink("fanout_events_skipped_total", "Events not of the sink's types.", func(s sinkState) int64 { return s.Skipped }),
	perSink("fanout_events_unprotected_total", "Events delivered without a dedupe claim (fail-open, store down).", func(s sinkState) int64 { return s.Unprotected }),
	perSink("fanout_events_parked_behind_total", "Events parked behind an earlier event of their key in a retry tier.", func(s sinkState) int64 { return s.ParkedBehind }),
	perSink("fanout_dedupe_store_errors_total", "Dedupe or order-barrier store calls that failed.", func(s sinkState) int64 { return s.StoreErrors }),
	perSink("fanout_http_requests_total", "HTTP requests sent to the API: one per attempt, or one per batch.", func(s sinkState) int64 { return s.Requests }),
	perSink("fanout_batch_events_total", "Event attempts carried in batch requests (batch.max_events > 1).", func(s sinkState) int64 { return s.BatchedEvent }),
	perSink("fanout_auth_token_refreshes_total", "Credentials renewed: OAuth2 tokens fetched, a bearer token file read again after it changed.", func(s sinkState) int64 { return s.TokenRefresh }),
	perSink("fanout_auth_token_errors_total", "Token fetches that failed (endpoint down, slow or refusing); the events waiting are retried, never dead-lettered for it.", func(s sinkState) int64 { return s.TokenErrors }),
	perSink("fanout_auth_retries_total", "401 answers followed by newer credentials and one more request.", func(s sinkState) int64 { return s.AuthRetries }),
	perSink("fanout_breaker_waits_total", "Times an event waited for the circuit breaker.", func(s sinkState) int64 { return s.BreakerWaits }),
	perSink("fanout_dedupe_claim_busy_waits_total", "Events that waited for another owner's live dedupe claim.", func(s sinkState) int64 { return s.ClaimBusy }),
	perSink("fanout_events_unordered_total", "Events handled without key order across tiers (fail-open, order store down).", func(s sinkState) int64 { return s.Unordered }),
}

// consumerFamilies have one series per sink and tier (0 = the main consumer).
var consumerFamilies = []consumerFamily{
	perConsumer("fanout_consumer_records_total", prometheus.CounterValue, "Records handled to the end (delivered, skipped, parked).", func(c consumerState) int64 { return c.Handled }),
	perConsumer("fanout_consumer_abandoned_total", prometheus.CounterValue, "Records left uncommitted (cancelled, revoked) for a later redelivery.", func(c consumerState) int64 { return c.Abandoned }),
	perConsumer("fanout_consumer_commits_total", prometheus.CounterValue, "Successful offset commits.", func(c consumerState) int64 { return c.Commits }),
	perConsumer("fanout_offset_resets_total", prometheus.CounterValue, "Partitions that resumed at the log start because retention took records never delivered (a commit or fetch position below the log start).", func(c consumerState) int64 { return c.Resets }),
	perConsumer("fanout_consumer_in_flight", prometheus.GaugeValue, "Records being handled now.", func(c consumerState) int64 { return int64(c.InFlight) }),
	perConsumer("fanout_consumer_buffered", prometheus.GaugeValue, "Records fetched and not finished now.", func(c consumerState) int64 { return int64(c.Buffered) }),
	perConsumer("fanout_consumer_paused_partitions", prometheus.GaugeValue, "Partitions whose fetching is paused now.", func(c consumerState) int64 { return int64(c.Paused) }),
}

// breakerState is 1 for a sink's breaker state and 0 for the two others;
// a sink without a breaker has no series.
var breakerState = prometheus.NewDesc("fanout_breaker_state", "1 for the circuit breaker's current state (closed, open, half-open).", []string{"sink", "state"}, nil)

func (fanoutCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range sinkFamilies {
		ch <- f.desc
	}
	for _, f := range consumerFamilies {
		ch <- f.desc
	}
	ch <- breakerState
}

func (c fanoutCollector) Collect(ch chan<- prometheus.Metric) {
	states := c.a.states()
	for _, f := range sinkFamilies {
		for _, s := range states {
			ch <- prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, float64(f.value(s)), s.Sink)
		}
	}
	for _, f := range consumerFamilies {
		for _, s := range states {
			for _, cs := range s.Consumers {
				ch <- prometheus.MustNewConstMetric(f.desc, f.typ, float64(f.value(cs)), s.Sink, strconv.Itoa(cs.Tier))
			}
		}
	}
	for _, s := range states {
		if s.Breaker == "" {
			continue
		}
		for _, st := range []sink.State{sink.Closed, sink.Open, sink.HalfOpen} {
			v := 0.0
			if st.String() == s.Breaker {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(breakerState, prometheus.GaugeValue, v, s.Sink, st.String())
		}
	}
}
