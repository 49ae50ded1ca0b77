package sink

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Class is the outcome of an attempt or of a whole delivery.
type Class int

const (
	// Done: the API answered 2xx.
	Done Class = iota
	// Retryable: a transient failure (408, 425, 429, 5xx but 501, a timeout,
	// a connection error). From Deliver: the in-line budget is spent and the
	// caller parks the event in a retry tier.
	Retryable
	// Permanent: retrying cannot help (other 4xx, 501, a redirect, an event
	// that cannot be rendered). The caller dead-letters the event.
	Permanent
	// Canceled: the caller's context ended before an answer. The caller
	// leaves the record uncommitted for whoever owns it next.
	Canceled
)

func (c Class) String() string {
	switch c {
	case Done:
		return "done"
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	case Canceled:
		return "canceled"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// StatusError is a non-2xx answer from the API.
type StatusError struct {
	// Code is the HTTP status.
	Code int
	// RetryAfter is the response's Retry-After, uncapped; 0 if none.
	RetryAfter time.Duration
	// Excerpt is the start of the response body: at most
	// Config.MaxResponseBytes, valid UTF-8, trimmed of surrounding space.
	Excerpt string
}

// Error returns "http 503: <excerpt>", or "http 503" when the body was empty.
func (e *StatusError) Error() string {
	if e.Excerpt == "" {
		return "http " + strconv.Itoa(e.Code)
	}
	return "http " + strconv.Itoa(e.Code) + ": " + e.Excerpt
}

// Classify decides one attempt's class from its HTTP status, or from its
// error when err is not nil (a *StatusError is classified by its code). It is the one classifier: Deliver uses it for
// every attempt.
//
// Statuses: 2xx Done; 408, 425, 429 and 5xx except 501 Retryable; anything
// else (other 4xx, 501, 1xx, 3xx: redirects are not followed) Permanent; then
// Config.RetryStatus and Config.PermanentStatus override (2xx is always Done).
//
// Errors: ErrRender, and a TLS certificate from an unknown authority or for
// another host, are Permanent;
// context.Canceled is Canceled; a timeout (context.DeadlineExceeded) and every
// other transport error (refused, reset, EOF, DNS) are Retryable. Deliver
// reports Canceled whenever the caller's context is done, whatever the error.
func (s *Sink) Classify(status int, err error) Class {
	if se, ok := errors.AsType[*StatusError](err); ok {
		status = se.Code // an answer: classify its status
	} else if err != nil {
		return classifyErr(err)
	}
	if status >= 200 && status <= 299 {
		return Done
	}
	if s.permanent[status] {
		return Permanent
	}
	if s.retry[status] {
		return Retryable
	}
	if status == http.StatusUnauthorized && s.auth != nil {
		// The sink's own credentials were refused (also after a refresh,
		// see Deliver): every event would be, so hold them (tiers, the
		// breaker) instead of dead-lettering the stream.
		return Retryable
	}
	return defaultClass(status)
}

func defaultClass(status int) Class {
	switch {
	case status >= 200 && status <= 299:
		return Done
	case status == http.StatusRequestTimeout,
		status == http.StatusTooEarly,
		status == http.StatusTooManyRequests:
		return Retryable
	case status == http.StatusNotImplemented:
		return Permanent
	case status >= 500 && status <= 599:
		return Retryable
	}
	return Permanent
}

func classifyErr(err error) Class {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
	)
	if _, ok := errors.AsType[*tokenError](err); ok {
		return Retryable // whatever failed getting the credential
	}
	switch {
	case errors.Is(err, ErrRender):
		return Permanent
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname):
		// Our roots do not trust the API's certificate, or it is for another
		// host: configuration, like a redirect, and retrying only repeats the
		// handshake. An expired certificate is left retryable: the API's
		// owner renews it and the retry tiers give them time.
		return Permanent
	}
	return Retryable
}
