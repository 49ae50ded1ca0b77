package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/sink"
)

// admin is fanout run's operator endpoint (run.admin_addr or --admin):
//
//	GET /healthz       200 while the process runs (liveness)
//	GET /readyz        200 while consuming, 503 once draining (readiness)
//	GET /metrics       Prometheus text format, one series per sink (and tier)
//	GET /api/sinks     the same counts as JSON
//	    /debug/pprof/  Go's profiler (CPU, heap, goroutines), only with run.admin_pprof
//
// With run.admin_token set, everything but /healthz and /readyz needs
// "Authorization: Bearer <token>" (compared in constant time); without one it
// only binds a loopback address (serveAdmin refuses any other). Every body
// it writes passes through the secrets Redactor.
type admin struct {
	runners  []*runner
	started  time.Time
	draining atomic.Bool
	token    string // run.admin_token; "" = none (loopback only)
	pprof    bool   // run.admin_pprof
}

func (a *admin) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if a.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /metrics", a.auth(a.metrics))
	mux.HandleFunc("GET /api/sinks", a.auth(a.sinks))
	if a.pprof {
		mux.HandleFunc("/debug/pprof/", a.auth(pprof.Index))
		mux.HandleFunc("/debug/pprof/cmdline", a.auth(pprof.Cmdline))
		mux.HandleFunc("/debug/pprof/profile", a.auth(pprof.Profile))
		mux.HandleFunc("/debug/pprof/symbol", a.auth(pprof.Symbol))
		mux.HandleFunc("/debug/pprof/trace", a.auth(pprof.Trace))
	}
	return mux
}

// auth lets a request through to h when no token is configured or it
// carries "Authorization: Bearer <token>"; else 401, the same answer for a
// missing and a wrong token. h's body is written through the secrets
// Redactor.
func (a *admin) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.token != "" {
			scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="fanout admin"`)
				http.Error(w, "unauthorized: send Authorization: Bearer <run.admin_token>", http.StatusUnauthorized)
				return
			}
		}
		h(redactedResponse{ResponseWriter: w, w: secrets.Writer(w)}, r)
	}
}

// redactedResponse writes its body through a Redactor.
type redactedResponse struct {
	http.ResponseWriter
	w io.Writer
}

func (r redactedResponse) Write(p []byte) (int, error) { return r.w.Write(p) }

// serveAdmin listens on addr and serves a until the returned stop is called.
// A bad or busy address fails fanout run at start, naming it.
func serveAdmin(addr string, a *admin, log *slog.Logger) (stop func(), err error) {
	if err := config.AdminExposed(addr, a.token); err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "err", err)
		}
	}()
	log.Info("admin listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// sinkState is one sink in /api/sinks.
type sinkState struct {
	summary
	StoreErrors  int64           `json:"store_errors"`
	BreakerWaits int64           `json:"breaker_waits"`
	ParkedBehind int64           `json:"parked_behind"`
	Unordered    int64           `json:"unordered"`
	ClaimBusy    int64           `json:"claim_busy_waits"`
	Requests     int64           `json:"http_requests"`
	BatchedEvent int64           `json:"batched_events"`
	TokenRefresh int64           `json:"token_refreshes"`
	TokenErrors  int64           `json:"token_errors"`
	AuthRetries  int64           `json:"auth_retries"`
	Consumers    []consumerState `json:"consumers"`
}

// consumerState is the main consumer (tier 0) or one tier consumer of a sink.
type consumerState struct {
	Tier      int   `json:"tier"`
	Handled   int64 `json:"handled"`
	Abandoned int64 `json:"abandoned"`
	Commits   int64 `json:"commits"`
	InFlight  int   `json:"in_flight"`
	Buffered  int   `json:"buffered"`
	Paused    int   `json:"paused_partitions"`
	Resets    int64 `json:"offset_resets"`
}

func (a *admin) states() []sinkState {
	out := make([]sinkState, 0, len(a.runners))
	for _, r := range a.runners {
		h := r.handler.Stats()
		ss := r.sink.Stats()
		st := sinkState{summary: r.summary(), StoreErrors: h.StoreErrors, BreakerWaits: h.BreakerWaits, ParkedBehind: h.ParkedBehind,
			Requests: ss.Requests, BatchedEvent: ss.BatchedEvents, TokenRefresh: ss.TokenRefreshes, TokenErrors: ss.TokenErrors, AuthRetries: ss.AuthRetries}
		st.Unordered, st.ClaimBusy = h.Unordered, h.ClaimBusyWaits
		for tier, c := range r.consumers {
			s := c.Stats()
			st.Consumers = append(st.Consumers, consumerState{Tier: tier, Handled: s.Handled, Abandoned: s.Abandoned,
				Commits: s.Commits, InFlight: s.InFlight, Buffered: s.Buffered, Paused: s.Paused, Resets: s.OffsetResets})
		}
		out = append(out, st)
	}
	return out
}

func (a *admin) sinks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"uptime_seconds": int64(time.Since(a.started).Seconds()), "draining": a.draining.Load(), "sinks": a.states()})
}

// metrics writes the Prometheus text exposition format (version 0.0.4).
func (a *admin) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	states := a.states()
	var b strings.Builder
	family := func(name, typ, help string, each func(emit func(labels string, v int64))) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		each(func(labels string, v int64) {
			fmt.Fprintf(&b, "%s{%s} %d\n", name, labels, v)
		})
	}
	perSink := func(name, help string, f func(s sinkState) int64) {
		family(name, "counter", help, func(emit func(string, int64)) {
			for _, s := range states {
				emit(sinkLabel(s.Sink), f(s))
			}
		})
	}
	perConsumer := func(name, typ, help string, f func(c consumerState) int64) {
		family(name, typ, help, func(emit func(string, int64)) {
			for _, s := range states {
				for _, c := range s.Consumers {
					emit(sinkLabel(s.Sink)+`,tier="`+strconv.Itoa(c.Tier)+`"`, f(c))
				}
			}
		})
	}
	perSink("fanout_events_delivered_total", "Events the API accepted (2xx).", func(s sinkState) int64 { return s.Delivered })
	perSink("fanout_delivery_retries_total", "Attempts beyond the first, over all events.", func(s sinkState) int64 { return s.Retried })
	perSink("fanout_events_dead_lettered_total", "Events parked on the dead-letter topic.", func(s sinkState) int64 { return s.DeadLettered })
	perSink("fanout_events_tiered_total", "Events parked in a retry tier.", func(s sinkState) int64 { return s.Tiered })
	perSink("fanout_events_duplicate_total", "Events skipped because dedupe had them done already.", func(s sinkState) int64 { return s.Duplicates })
	perSink("fanout_events_skipped_total", "Events not of the sink's types.", func(s sinkState) int64 { return s.Skipped })
	perSink("fanout_events_unprotected_total", "Events delivered without a dedupe claim (fail-open, store down).", func(s sinkState) int64 { return s.Unprotected })
	perSink("fanout_events_parked_behind_total", "Events parked behind an earlier event of their key in a retry tier.", func(s sinkState) int64 { return s.ParkedBehind })
	perSink("fanout_dedupe_store_errors_total", "Dedupe or order-barrier store calls that failed.", func(s sinkState) int64 { return s.StoreErrors })
	perSink("fanout_http_requests_total", "HTTP requests sent to the API: one per attempt, or one per batch.", func(s sinkState) int64 { return s.Requests })
	perSink("fanout_batch_events_total", "Event attempts carried in batch requests (batch.max_events > 1).", func(s sinkState) int64 { return s.BatchedEvent })
	perSink("fanout_auth_token_refreshes_total", "Credentials renewed: OAuth2 tokens fetched, a bearer token file read again after it changed.", func(s sinkState) int64 { return s.TokenRefresh })
	perSink("fanout_auth_token_errors_total", "Token fetches that failed (endpoint down, slow or refusing); the events waiting are retried, never dead-lettered for it.", func(s sinkState) int64 { return s.TokenErrors })
	perSink("fanout_auth_retries_total", "401 answers followed by newer credentials and one more request.", func(s sinkState) int64 { return s.AuthRetries })
	perSink("fanout_breaker_waits_total", "Times an event waited for the circuit breaker.", func(s sinkState) int64 { return s.BreakerWaits })
	perSink("fanout_dedupe_claim_busy_waits_total", "Events that waited for another owner's live dedupe claim.", func(s sinkState) int64 { return s.ClaimBusy })
	perSink("fanout_events_unordered_total", "Events handled without key order across tiers (fail-open, order store down).", func(s sinkState) int64 { return s.Unordered })
	family("fanout_breaker_state", "gauge", "1 for the circuit breaker's current state (closed, open, half-open).", func(emit func(string, int64)) {
		for _, s := range states {
			if s.Breaker == "" {
				continue
			}
			for _, st := range []sink.State{sink.Closed, sink.Open, sink.HalfOpen} {
				v := int64(0)
				if st.String() == s.Breaker {
					v = 1
				}
				emit(sinkLabel(s.Sink)+`,state="`+st.String()+`"`, v)
			}
		}
	})
	perConsumer("fanout_consumer_records_total", "counter", "Records handled to the end (delivered, skipped, parked).", func(c consumerState) int64 { return c.Handled })
	perConsumer("fanout_consumer_abandoned_total", "counter", "Records left uncommitted (cancelled, revoked) for a later redelivery.", func(c consumerState) int64 { return c.Abandoned })
	perConsumer("fanout_consumer_commits_total", "counter", "Successful offset commits.", func(c consumerState) int64 { return c.Commits })
	perConsumer("fanout_offset_resets_total", "counter", "Partitions that resumed at the log start because retention took records never delivered (a commit or fetch position below the log start).", func(c consumerState) int64 { return c.Resets })
	perConsumer("fanout_consumer_in_flight", "gauge", "Records being handled now.", func(c consumerState) int64 { return int64(c.InFlight) })
	perConsumer("fanout_consumer_buffered", "gauge", "Records fetched and not finished now.", func(c consumerState) int64 { return int64(c.Buffered) })
	perConsumer("fanout_consumer_paused_partitions", "gauge", "Partitions whose fetching is paused now.", func(c consumerState) int64 { return int64(c.Paused) })
	_, _ = w.Write([]byte(b.String()))
}

// sinkLabel is the sink label; sink names are [a-z0-9_-], nothing to escape.
func sinkLabel(name string) string { return `sink="` + name + `"` }
