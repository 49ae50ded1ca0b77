package sink

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/fanout-dev/fanout/tracing"
)

// Sink delivers events to one downstream API. It is safe for concurrent use;
// the caller bounds concurrency (Config.MaxConns should match it).
type Sink struct {
	cfg     Config
	url     string // as configured: userinfo and query are sent, never shown
	safeURL string // scheme://host/path, for errors and logs

	static      map[string]string // canonical name → value
	headerTmpls []headerTemplate  // sorted by name
	bodyTmpl    *template.Template
	jsonBody    bool              // content_type is JSON: a templated body must be valid JSON
	propagated  map[string]string // lower-case record header key → canonical request header

	retry     map[int]bool
	permanent map[int]bool

	transport *http.Transport
	client    *http.Client
	log       *slog.Logger

	sleep func(ctx context.Context, d time.Duration) error
	rand  func() float64
	now   func() time.Time

	breaker *Breaker // nil: none
	limit   *Limiter
	batch   *batcher  // nil: one event per request
	send    attempter // httpAttempter, or batchAttempter over batch
	span    tracing.Target

	auth      authorizer // nil: no auth
	signer    *signer    // nil: unsigned
	authStats authStats

	requests atomic.Int64 // HTTP requests sent (attempts, or batches)
	batched  atomic.Int64 // events carried by batch requests
}

// Stats are a sink's request counts.
type Stats struct {
	Requests      int64 // HTTP requests sent: one per attempt, or one per batch
	BatchedEvents int64 // event attempts carried in batch requests
	// TokenRefreshes counts credentials renewed: OAuth2 tokens fetched, a
	// token file read again after it changed.
	TokenRefreshes int64
	// TokenErrors counts failed token fetches (the endpoint down, slow or
	// refusing); each costs the events waiting for it a retryable attempt.
	TokenErrors int64
	// AuthRetries counts 401 answers followed by newer credentials and one
	// more request.
	AuthRetries int64
}

// Stats returns the sink's request counts so far.
func (s *Sink) Stats() Stats {
	return Stats{Requests: s.requests.Load(), BatchedEvents: s.batched.Load(), TokenRefreshes: s.authStats.refreshes.Load(),
		TokenErrors: s.authStats.errors.Load(), AuthRetries: s.authStats.retries.Load()}
}

// Breaker returns the sink's circuit breaker, nil if it has none. Every
// consumer of the sink (main topic and retry tiers) shares it.
func (s *Sink) Breaker() *Breaker { return s.breaker }

// Option adjusts a Sink; for tests and embedding.
type Option func(*Sink)

// WithSleep replaces the backoff wait. fn must return promptly with ctx's
// error when ctx is done. Default: a timer raced against ctx.
func WithSleep(fn func(ctx context.Context, d time.Duration) error) Option {
	return func(s *Sink) {
		if fn != nil {
			s.sleep = fn
		}
	}
}

// WithRand replaces the jitter source, which must return values in [0, 1).
// Default math/rand/v2's Float64.
func WithRand(fn func() float64) Option {
	return func(s *Sink) {
		if fn != nil {
			s.rand = fn
		}
	}
}

const (
	// drainLimit is how much of a response body, past the excerpt, is read
	// to keep the connection reusable. Beyond it the connection is dropped.
	drainLimit = 64 << 10

	idleConnTimeout = 90 * time.Second
)

// New applies defaults to cfg, validates it and parses its templates. The
// error names the sink and the field. logger may be nil. New starts no
// goroutines.
func New(cfg Config, logger *slog.Logger, opts ...Option) (*Sink, error) {
	cfg = cfg.withDefaults()
	u, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	safe := *u
	safe.User, safe.RawQuery, safe.ForceQuery = nil, "", false

	s := &Sink{
		cfg:       cfg,
		url:       u.String(),
		safeURL:   safe.String(),
		static:    make(map[string]string, len(cfg.Headers)),
		retry:     toSet(cfg.RetryStatus),
		permanent: toSet(cfg.PermanentStatus),
		log:       logger.With("sink", cfg.Name),
		sleep:     sleep,
		rand:      rand.Float64,
		now:       time.Now,
	}
	for k, v := range cfg.Headers {
		name := http.CanonicalHeaderKey(k)
		if !isTemplate(v) {
			s.static[name] = v
			continue
		}
		t, err := parseTemplate(name, v)
		if err != nil { // checked by validate; kept for safety
			return nil, configError(cfg.Name, fmt.Sprintf("headers[%q]", k), "%s", err)
		}
		s.headerTmpls = append(s.headerTmpls, headerTemplate{name: name, tmpl: t})
	}
	slices.SortFunc(s.headerTmpls, func(a, b headerTemplate) int { return strings.Compare(a.name, b.name) })
	if cfg.Body != "" {
		if s.bodyTmpl, err = parseTemplate("body", cfg.Body); err != nil {
			return nil, configError(cfg.Name, "body", "%s", err)
		}
	}
	s.jsonBody = isJSONType(cfg.ContentType)
	if len(cfg.PropagateHeaders) > 0 {
		s.propagated = make(map[string]string, len(cfg.PropagateHeaders))
		for _, name := range cfg.PropagateHeaders {
			s.propagated[strings.ToLower(name)] = http.CanonicalHeaderKey(name)
		}
	}
	s.span = tracing.NewTarget(cfg.Method, &safe)
	// Redact the configured copy: only s.url holds credentials.
	s.cfg.URL = s.safeURL
	s.cfg.Headers = nil

	tc, err := cfg.TLS.build(cfg.Name, "tls.")
	if err != nil {
		return nil, err
	}
	s.transport = newTransport(cfg.MaxConns, tc)
	if s.signer, err = newSigner(cfg.Name, cfg.Signing); err != nil {
		return nil, err
	}
	if s.auth, err = newAuthorizer(cfg.Name, cfg.Auth, cfg.Timeout, cfg.MaxConns, &s.authStats); err != nil {
		return nil, err
	}
	s.client = &http.Client{
		Transport: s.transport,
		// An API that redirects is misconfigured: hand back the 3xx, which
		// classifies as Permanent.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, o := range opts {
		o(s)
	}
	if cfg.Breaker != nil {
		if s.breaker, err = NewBreaker(*cfg.Breaker, s.now); err != nil {
			return nil, fmt.Errorf("sink %q: %w", cfg.Name, err)
		}
	}
	if cfg.Batch.enabled() {
		s.batch = newBatcher(s)
		s.send = batchAttempter{s.batch}
	} else {
		s.send = httpAttempter{s}
	}
	if s.limit, err = NewLimiter(cfg.RateLimit, s.now, WithLimiterSleep(s.sleep)); err != nil {
		return nil, fmt.Errorf("sink %q: %w", cfg.Name, err)
	}
	return s, nil
}

func toSet(codes []int) map[int]bool {
	m := make(map[int]bool, len(codes))
	for _, c := range codes {
		m[c] = true
	}
	return m
}

// newTransport clones http.DefaultTransport (proxy from the environment,
// dial and TLS handshake timeouts, HTTP/2 attempted) and sizes its pool for
// one host.
func newTransport(maxConns int, tc *tls.Config) *http.Transport {
	var t *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	} else { // someone replaced the default; rebuild its settings
		t = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	if tc != nil {
		t.TLSClientConfig = tc
	}
	t.ForceAttemptHTTP2 = true
	t.MaxConnsPerHost = maxConns
	t.MaxIdleConnsPerHost = maxConns
	t.MaxIdleConns = maxConns
	t.IdleConnTimeout = idleConnTimeout
	return t
}

// Name returns the sink's name.
func (s *Sink) Name() string { return s.cfg.Name }

// Close closes the sink's idle connections. In-flight deliveries finish; a
// later Deliver dials again.
func (s *Sink) Close() { s.transport.CloseIdleConnections() }
