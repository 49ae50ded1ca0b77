package sink

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// LimiterConfig is a sink's rate limit. Zero values take the stated defaults.
type LimiterConfig struct {
	// Rate is the sustained number of events per second; fractions are
	// allowed (0.5 is one every 2s). Default 0: unlimited. At most 1e9.
	Rate float64
	// Burst is how many events may go at once after a quiet spell. Default
	// max(1, ceil(Rate/10)), a tenth of a second's worth.
	Burst int
}

// LimiterOption adjusts a Limiter; for tests.
type LimiterOption func(*Limiter)

// WithLimiterSleep replaces the wait. fn must return nil once d has passed on
// the Limiter's clock, or ctx's error as soon as ctx is done. Default: a timer
// raced against ctx. Inject it together with a fake clock: a real timer
// against a frozen clock waits forever.
func WithLimiterSleep(fn func(ctx context.Context, d time.Duration) error) LimiterOption {
	return func(l *Limiter) {
		if fn != nil {
			l.sleep = fn
		}
	}
}

// Limiter paces one sink's requests: a token bucket (Rate, Burst) and a
// sink-wide pause (PauseFor) for an API that answered 429 or 503 with
// Retry-After. It is safe for concurrent use and starts no goroutines.
//
// Waiters are served first come, first served: they queue for a turn, and only
// the waiter at the head sleeps, until its token is due or the pause ends,
// then it takes the token and leaves. Nothing is reserved ahead of time, so a
// cancelled waiter costs no capacity, and a pause cannot release a herd when it
// ends: the bucket refills during a pause like any other time, so at most
// Burst events go at once, then Rate.
type Limiter struct {
	interval time.Duration // 1/Rate, to the nanosecond; 0: unlimited
	tau      time.Duration // (Burst-1)·interval: how far ahead of tat an event may go
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) error

	// turn is held by the waiter at the head of the queue. A channel rather
	// than a mutex: blocked senders are served in order, and a waiter can give
	// up when its ctx ends.
	turn chan struct{}
	// paused is a hint for the unlimited fast path: a pause may be in force.
	// Set with the pause under mu; cleared under mu by whoever sees it over.
	paused atomic.Bool

	mu          sync.Mutex
	tat         time.Time // theoretical arrival time (GCRA): the bucket is full at tat
	pausedUntil time.Time
}

// NewLimiter applies defaults to cfg and validates it; the error names the
// field. now is the clock (nil: time.Now). The bucket starts full.
func NewLimiter(cfg LimiterConfig, now func() time.Time, opts ...LimiterOption) (*Limiter, error) {
	if math.IsNaN(cfg.Rate) || cfg.Rate < 0 || cfg.Rate > 1e9 {
		return nil, fmt.Errorf("rate_limit.rate: must be between 0 (unlimited) and 1e9 events per second, got %v", cfg.Rate)
	}
	if cfg.Burst < 0 {
		return nil, fmt.Errorf("rate_limit.burst: must be at least 1, got %d", cfg.Burst)
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(1, int(math.Ceil(cfg.Rate/10)))
	}
	if now == nil {
		now = time.Now
	}
	l := &Limiter{now: now, sleep: sleep, turn: make(chan struct{}, 1)}
	if cfg.Rate > 0 {
		if float64(time.Second)/cfg.Rate > float64(maxSpan) {
			return nil, fmt.Errorf("rate_limit.rate: %v is below one event per century", cfg.Rate)
		}
		l.interval = max(time.Duration(math.Round(float64(time.Second)/cfg.Rate)), 1)
		if float64(cfg.Burst-1)*float64(l.interval) > float64(maxSpan) {
			return nil, fmt.Errorf("rate_limit.burst: %d is more than a century at rate %v", cfg.Burst, cfg.Rate)
		}
		l.tau = time.Duration(cfg.Burst-1) * l.interval
	}
	for _, o := range opts {
		o(l)
	}
	return l, nil
}

// maxSpan bounds the interval and the burst's time span so that neither
// overflows a Duration.
const maxSpan = 100 * 365 * 24 * time.Hour

// Wait blocks until one event may be sent: a token is available and no pause
// is in force. It returns nil then, or ctx's error as soon as ctx is done (at
// once if it already is). An unlimited limiter with no pause in force returns
// without locking or reading the clock.
func (l *Limiter) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.interval == 0 && !l.paused.Load() {
		return nil
	}
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.turn }()
	for {
		d := l.take()
		if d <= 0 {
			return nil
		}
		if err := l.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// take takes a token if one is due and no pause is in force, and returns 0;
// otherwise it returns how long until that may be so. A pause set meanwhile
// is seen on the next call.
func (l *Limiter) take() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Before(l.pausedUntil) {
		return l.pausedUntil.Sub(now)
	}
	l.paused.Store(false)
	if l.interval == 0 {
		return 0
	}
	if due := l.tat.Add(-l.tau); now.Before(due) {
		return due.Sub(now)
	}
	if l.tat.Before(now) {
		l.tat = now
	}
	l.tat = l.tat.Add(l.interval)
	return 0
}

// PauseFor stops every Wait until now+d: waiting ones and later ones. It
// extends a pause in force, never shortens it; d <= 0 does nothing. Use it
// for a 429 or 503 with Retry-After, with d capped by the caller (a
// Retry-After can be arbitrarily long; Config.RetryAfterCap is the sink's cap).
func (l *Limiter) PauseFor(d time.Duration) {
	if d <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if until := l.now().Add(d); until.After(l.pausedUntil) {
		l.pausedUntil = until
		l.paused.Store(true)
	}
}

// PausedUntil returns the end of the pause in force or of the last one; the
// zero time if there never was one. A time not after now means not paused.
func (l *Limiter) PausedUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pausedUntil
}
