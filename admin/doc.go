// Package admin is fanout run's operator endpoint: /healthz and /readyz,
// /metrics (Prometheus, through prometheus/client_golang: fanout's families
// read from the runners at scrape time, fanout_build_info and the standard
// go_* and process_* collectors), /api/sinks (the same counts as JSON) and,
// when asked for, /debug/pprof; the bearer-token check and the secrets
// Redactor over every body it writes; Serve, which refuses an address off
// loopback without a token.
//
// It reads the per-sink state from app.Runner (its handler, sink and
// consumers) and must not know how they are built or run; app must not
// import it. The Redactor is passed in (Server.Redact).
package admin
