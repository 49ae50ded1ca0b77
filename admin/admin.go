package admin

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
	"strings"
	"sync/atomic"
	"time"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/redact"
)

// Server is fanout run's operator endpoint (run.admin_addr or --admin):
//
//	GET /healthz       200 while the process runs (liveness)
//	GET /readyz        200 while consuming, 503 once draining (readiness)
//	GET /metrics       Prometheus text format, one series per sink (and tier)
//	GET /api/sinks     the same counts as JSON
//	    /debug/pprof/  Go's profiler (CPU, heap, goroutines), only with run.admin_pprof
//
// With run.admin_token set, everything but /healthz and /readyz needs
// "Authorization: Bearer <token>" (compared in constant time); without one it
// only binds a loopback address (Serve refuses any other). Every body
// it writes passes through the secrets Redactor.
type Server struct {
	Runners  []*app.Runner
	Started  time.Time
	Draining atomic.Bool      // /readyz answers 503 once set
	Token    string           // run.admin_token; "" = none (loopback only)
	Pprof    bool             // run.admin_pprof
	Redact   *redact.Redactor // the secrets Redactor; nil hides nothing
	// RuntimeMetrics adds the standard go_* and process_* families to
	// /metrics (fanout run sets it; the handler tests leave it off, as their
	// line check covers fanout's own families).
	RuntimeMetrics bool
}

// Handler serves the endpoint's paths.
func (a *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if a.Draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /metrics", a.auth(a.metricsHandler()))
	mux.HandleFunc("GET /api/sinks", a.auth(a.sinks))
	if a.Pprof {
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
func (a *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.Token != "" {
			scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(got), []byte(a.Token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="fanout admin"`)
				http.Error(w, "unauthorized: send Authorization: Bearer <run.admin_token>", http.StatusUnauthorized)
				return
			}
		}
		if a.Redact != nil {
			w = redactedResponse{ResponseWriter: w, w: a.Redact.Writer(w)}
		}
		h(w, r)
	}
}

// redactedResponse writes its body through a Redactor.
type redactedResponse struct {
	http.ResponseWriter
	w io.Writer
}

func (r redactedResponse) Write(p []byte) (int, error) { return r.w.Write(p) }

// Serve listens on addr and serves a until the returned stop is called.
// A bad or busy address fails fanout run at start, naming it.
func Serve(addr string, a *Server, log *slog.Logger) (stop func(), err error) {
	if err := config.AdminExposed(addr, a.Token); err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
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
	app.Summary
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

func (a *Server) states() []sinkState {
	out := make([]sinkState, 0, len(a.Runners))
	for _, r := range a.Runners {
		h := r.Handler.Stats()
		ss := r.Sink.Stats()
		st := sinkState{Summary: r.Summary(), StoreErrors: h.StoreErrors, BreakerWaits: h.BreakerWaits, ParkedBehind: h.ParkedBehind,
			Requests: ss.Requests, BatchedEvent: ss.BatchedEvents, TokenRefresh: ss.TokenRefreshes, TokenErrors: ss.TokenErrors, AuthRetries: ss.AuthRetries}
		st.Unordered, st.ClaimBusy = h.Unordered, h.ClaimBusyWaits
		for tier, c := range r.Consumers {
			s := c.Stats()
			st.Consumers = append(st.Consumers, consumerState{Tier: tier, Handled: s.Handled, Abandoned: s.Abandoned,
				Commits: s.Commits, InFlight: s.InFlight, Buffered: s.Buffered, Paused: s.Paused, Resets: s.OffsetResets})
		}
		out = append(out, st)
	}
	return out
}

func (a *Server) sinks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"uptime_seconds": int64(time.Since(a.Started).Seconds()), "draining": a.Draining.Load(), "sinks": a.states()})
}
