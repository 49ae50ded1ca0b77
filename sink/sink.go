package sink

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"text/template"
	"time"
	"unicode/utf8"

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
	batch   *batcher // nil: one event per request
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

// Result is the outcome of one Deliver.
type Result struct {
	// Attempts is the number of requests sent (0 if the event could not be
	// rendered, or ctx was done before the first). Batched, it counts
	// attempts: the resends of a batch refused as a whole are part of one
	// (see BatchConfig).
	Attempts int
	// Status is the last attempt's HTTP status, 0 if it got no response.
	Status int
	// Err is nil when the event was delivered (2xx); otherwise the last
	// attempt's error (a *StatusError, a transport or timeout error, an
	// ErrRender) or, for Canceled, the context's error.
	Err error
	// Class is Done, Retryable (in-line budget spent), Permanent or Canceled
	// (ctx done: leave the record uncommitted).
	Class Class
	// RetryAfter is the last Retry-After any attempt saw, uncapped; 0 if
	// none. A retry tier may use it as the not-before time.
	RetryAfter time.Duration
}

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

// Deliver sends ev with in-line retries. It returns when the event is
// delivered, a permanent failure occurs, the in-line budget (Config.Attempts)
// is spent, or ctx is done. Between attempts it waits the jittered backoff,
// or the response's Retry-After capped at Config.RetryAfterCap; a done ctx
// ends the wait at once.
func (s *Sink) Deliver(ctx context.Context, ev Event) Result {
	h, body, err := s.render(ev)
	if err != nil {
		s.logAttempt(ctx, ev.ID, 0, 0, Permanent, err, 0)
		return Result{Class: Permanent, Err: err}
	}
	var res Result
	pausedBySelf, refreshed := false, false
	for n := 1; ; n++ {
		if ctx.Err() != nil {
			return canceled(ctx, res)
		}
		// The rate limit and any sink-wide pause, except right after this
		// delivery itself waited out the Retry-After that set the pause.
		if !pausedBySelf {
			if err := s.limit.Wait(ctx); err != nil {
				return canceled(ctx, res)
			}
		}
		pausedBySelf = false
		var a outcome
		send := func() {
			if s.batch != nil {
				a = s.batch.attempt(ctx, ev.ID, ev.Type, body)
			} else {
				a = s.attempt(ctx, h, body, n)
			}
		}
		send()
		if a.status == http.StatusUnauthorized && s.auth != nil && !refreshed && s.auth.refresh(ctx, a.authGen) {
			// The API refused credentials that newer ones replace (an
			// expired token, a rotated file): once per delivery, send
			// again at once, before the ordinary classification.
			refreshed = true
			s.authStats.retries.Add(1)
			send()
		}
		res.Attempts, res.Status, res.Err = n, a.status, a.err
		if a.hasRetryAfter {
			res.RetryAfter = a.retryAfter
		}
		class := s.Classify(a.status, a.err)
		switch {
		case class == Done:
			// Delivered, even if ctx ended meanwhile.
			res.Class, res.Err = Done, nil
			return res
		case class == Permanent:
			s.logAttempt(ctx, ev.ID, n, a.status, class, a.err, 0)
			res.Class = Permanent
			if a.status == http.StatusUnauthorized && h != nil && s.propagated["authorization"] != "" && h.Get("Authorization") != "" {
				res.Err = fmt.Errorf("%w (expired or revoked by the time of delivery): %w", ErrPropagatedAuthRejected, res.Err)
			}
			return res
		case class == Canceled || ctx.Err() != nil:
			return canceled(ctx, res)
		case n >= s.cfg.Attempts:
			s.logAttempt(ctx, ev.ID, n, a.status, class, a.err, 0)
			res.Class = Retryable
			if a.status == http.StatusUnauthorized && s.auth != nil {
				res.Err = fmt.Errorf("the API refused the sink's auth.type %s credentials, also after a refresh: %w", s.cfg.Auth.Type, res.Err)
			}
			return res
		}
		wait := backoff(n, s.cfg.BackoffBase, s.cfg.BackoffCap, s.rand)
		if a.hasRetryAfter {
			wait = min(a.retryAfter, s.cfg.RetryAfterCap)
			if a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable {
				// The API asked everyone to slow down, not only this event.
				s.limit.PauseFor(wait)
				pausedBySelf = true
			}
		}
		s.logAttempt(ctx, ev.ID, n, a.status, class, a.err, wait)
		if err := s.sleep(ctx, wait); err != nil {
			if ctx.Err() == nil { // a WithSleep hook gave up on its own
				res.Err = err
			}
			return canceled(ctx, res)
		}
	}
}

// canceled finishes res as Canceled. When ctx is done, Err becomes the
// context's error (with its cause, if one was given); otherwise (a
// context.Canceled from below, a sleep hook's error) res.Err is kept. Status
// and Attempts stay as they were.
func canceled(ctx context.Context, res Result) Result {
	res.Class = Canceled
	err := ctx.Err()
	if err == nil {
		return res
	}
	if cause := context.Cause(ctx); cause != nil && cause != err {
		err = fmt.Errorf("%w: %w", err, cause)
	}
	res.Err = err
	return res
}

// outcome is one attempt's result.
type outcome struct {
	authGen       uint64 // the generation of the credentials sent
	status        int
	err           error
	retryAfter    time.Duration
	hasRetryAfter bool
}

// attempt sends one request under its own timeout and reads the response.
// The body is always drained (bounded) and closed so the connection can be
// reused.
func (s *Sink) attempt(ctx context.Context, h http.Header, body []byte, n int) (o outcome) {
	actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	actx, span := tracing.StartHTTP(actx, s.span, n)
	defer func() { tracing.EndHTTP(span, o.status, o.err) }()
	req, err := s.newRequest(actx, h, body)
	if err != nil {
		return outcome{err: fmt.Errorf("%w: %w", ErrRender, s.redact(err))}
	}
	gen, secret, err := s.authorize(actx, req.Header)
	if err != nil {
		return outcome{err: err}
	}
	if s.signer != nil {
		signed := body
		if s.cfg.Method == http.MethodGet {
			signed = nil // sent without a body
		}
		s.signer.sign(req.Header, s.now(), signed)
	}
	s.requests.Add(1)
	resp, err := s.client.Do(req)
	if err != nil {
		err = s.explainTLS(s.redact(err))
		if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("attempt timed out after %s: %w", s.cfg.Timeout, err)
		}
		return outcome{err: err}
	}
	defer resp.Body.Close()

	o = outcome{status: resp.StatusCode}
	if o.status >= 200 && o.status <= 299 {
		_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
		return o
	}
	o.retryAfter, o.hasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	excerpt := scrub(readExcerpt(resp.Body, s.cfg.MaxResponseBytes), secret, h.Get("Authorization"))
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	o.err = &StatusError{Code: o.status, RetryAfter: o.retryAfter, Excerpt: excerpt}
	o.authGen = gen
	return o
}

// authorize sets the sink's credentials on h (none without Config.Auth).
// An error is a tokenError: no request is sent.
func (s *Sink) authorize(ctx context.Context, h http.Header) (gen uint64, secret string, err error) {
	if s.auth == nil {
		return 0, "", nil
	}
	gen, secret, err = s.auth.apply(ctx, h)
	switch {
	case err == nil:
	case errors.Is(ctx.Err(), context.Canceled):
		err = ctx.Err() // the caller gave up; not the endpoint's fault
	case ctx.Err() != nil: // the attempt's timeout ran out waiting for a token
		err = &tokenError{fmt.Errorf("no token within the attempt's timeout %s (the token endpoint is slow or down)", s.cfg.Timeout)}
	}
	return gen, secret, err
}

// scrub replaces each credential the request carried (the sink's own, a
// forwarded Authorization) in an error excerpt: an API that echoes the
// request's headers must not put them on the DLQ. Bearer and Basic values
// are scrubbed with and without their scheme.
func scrub(excerpt string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 8 {
			excerpt = strings.ReplaceAll(excerpt, sec, "***")
		}
		if _, cred, ok := strings.Cut(sec, " "); ok && len(cred) >= 8 {
			excerpt = strings.ReplaceAll(excerpt, cred, "***")
		}
	}
	return excerpt
}

// readExcerpt reads up to n bytes of r as valid, trimmed UTF-8. A rune cut
// in half at the limit is dropped; other invalid bytes become U+FFFD.
func readExcerpt(r io.Reader, n int64) string {
	b, _ := io.ReadAll(io.LimitReader(r, n))
	if int64(len(b)) == n {
		for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
			if utf8.RuneStart(b[len(b)-i]) {
				if !utf8.FullRune(b[len(b)-i:]) {
					b = b[:len(b)-i]
				}
				break
			}
		}
	}
	b = bytes.TrimSpace(b)
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
}

// redact replaces the URL in a net/http error (which keeps the query string,
// where tokens live, and the user name) with the safe form.
func (s *Sink) redact(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		ue.URL = s.safeURL
	}
	return err
}

// logAttempt records a failed attempt at debug level. It never logs a body:
// a StatusError's excerpt is the API's response, which may echo the payload,
// so only its status is logged.
func (s *Sink) logAttempt(ctx context.Context, id string, n, status int, class Class, err error, wait time.Duration) {
	if !s.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("event_id", id),
		slog.Int("attempt", n),
		slog.Int("status", status),
		slog.String("class", class.String()),
	}
	if wait > 0 {
		attrs = append(attrs, slog.Duration("wait", wait))
	}
	if _, isStatus := errors.AsType[*StatusError](err); err != nil && !isStatus {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "attempt failed", attrs...)
}
