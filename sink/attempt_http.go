package sink

// The HTTP attempter: one request per event attempt.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/fanout-dev/fanout/tracing"
)

// httpAttempter sends each attempt as its own request.
type httpAttempter struct{ s *Sink }

func (h httpAttempter) attempt(ctx context.Context, r request) outcome {
	return h.s.attempt(ctx, r.header, r.body, r.n)
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
