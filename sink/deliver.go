package sink

// This file is the sink's delivery policy, independent of how an attempt
// travels: in-line retries with jittered backoff, Retry-After (capped, and a
// sink-wide pause for 429/503), the rate limit, one resend after a 401 with
// refreshed credentials, and the classification of each attempt. It runs
// over an attempter (attempt_http.go: one request per event; batch.go: a
// place in a CloudEvents batch), the way go-retryablehttp's CheckRetry and
// Backoff run over one http.Client.Do. A new transport is a new attempter
// (and its config); the policy stays.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

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
	// Excerpt is the start of the last refusing response's body (a
	// StatusError's Excerpt), credentials scrubbed; "" if there was none.
	// A parked record carries it.
	Excerpt string
	// RenderFailed: the event could not be turned into a request (Err wraps
	// ErrRender); Permanent.
	RenderFailed bool
	// PropagatedAuthRejected: the API refused the Authorization forwarded
	// from the event (Err wraps ErrPropagatedAuthRejected); Permanent.
	PropagatedAuthRejected bool
}

// finish fills in what res.Err says for a caller that must not unwrap it.
func finish(res Result) Result {
	if se, ok := errors.AsType[*StatusError](res.Err); ok {
		res.Excerpt = se.Excerpt
	}
	res.RenderFailed = errors.Is(res.Err, ErrRender)
	res.PropagatedAuthRejected = errors.Is(res.Err, ErrPropagatedAuthRejected)
	return res
}

// Deliver sends ev with in-line retries. It returns when the event is
// delivered, a permanent failure occurs, the in-line budget (Config.Attempts)
// is spent, or ctx is done. Between attempts it waits the jittered backoff,
// or the response's Retry-After capped at Config.RetryAfterCap; a done ctx
// ends the wait at once.
func (s *Sink) Deliver(ctx context.Context, ev Event) Result {
	return finish(s.deliver(ctx, ev))
}

func (s *Sink) deliver(ctx context.Context, ev Event) Result {
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
		req := request{id: ev.ID, typ: ev.Type, header: h, body: body, n: n}
		a := s.send.attempt(ctx, req)
		if a.status == http.StatusUnauthorized && s.auth != nil && !refreshed && s.auth.refresh(ctx, a.authGen) {
			// The API refused credentials that newer ones replace (an
			// expired token, a rotated file): once per delivery, send
			// again at once, before the ordinary classification.
			refreshed = true
			s.authStats.retries.Add(1)
			a = s.send.attempt(ctx, req)
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

// attempter sends one attempt of a rendered event and reports its outcome.
// It neither retries nor waits for the rate limit: Deliver does.
type attempter interface {
	attempt(ctx context.Context, r request) outcome
}

// request is one attempt of a rendered event.
type request struct {
	id, typ string
	header  http.Header // nil when the attempter renders its own (batch)
	body    []byte
	n       int // the attempt's number, from 1
}

// outcome is one attempt's result.
type outcome struct {
	authGen       uint64 // the generation of the credentials sent
	status        int
	err           error
	retryAfter    time.Duration
	hasRetryAfter bool
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
