package sink

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// BreakerConfig tunes a sink's circuit breaker. Zero values take the stated
// defaults.
type BreakerConfig struct {
	// Window is how far back outcomes count. It is kept as 10 buckets of
	// Window/10, so outcomes leave it one bucket at a time: an outcome counts
	// for at least 9/10 of Window and at most Window. Default 30s; at least
	// 10ms.
	Window time.Duration
	// MinRequests is the number of outcomes the window must hold before the
	// breaker may open. Default 20.
	MinRequests int
	// FailureRatio opens the breaker when failures/outcomes in the window
	// reach it. Default 0.5; in (0, 1].
	FailureRatio float64
	// OpenFor is how long the breaker stays open before it lets probes
	// through. It doubles after each failed probe round, up to MaxOpenFor,
	// and is reset when the breaker closes. Default 10s.
	OpenFor time.Duration
	// MaxOpenFor caps OpenFor's doubling. Default max(2m, OpenFor); not below
	// OpenFor.
	MaxOpenFor time.Duration
	// Probes is how many real requests may be in flight while half-open; this
	// many consecutive successes close the breaker. Default 1.
	Probes int
	// ConsecutiveFailures opens the breaker on that many failures in a row,
	// whatever the window holds: at high throughput a window full of earlier
	// successes would otherwise let Window×FailureRatio worth of traffic fail
	// into the retry tiers before the ratio tips. Default 20; -1 disables.
	ConsecutiveFailures int
}

// Breaker defaults.
const (
	DefaultBreakerWindow       = 30 * time.Second
	DefaultBreakerMinRequests  = 20
	DefaultBreakerFailureRatio = 0.5
	DefaultBreakerOpenFor      = 10 * time.Second
	DefaultBreakerMaxOpenFor   = 2 * time.Minute

	DefaultBreakerConsecutiveFailures = 20
	DefaultBreakerProbes              = 1

	// breakerBuckets is the number of time buckets in the window.
	breakerBuckets = 10
	// minBreakerWindow keeps a bucket at least a millisecond wide.
	minBreakerWindow = breakerBuckets * time.Millisecond
	// probeRetry is the retryIn hint while every probe slot is taken: the
	// breaker cannot know when the probes will finish. It is capped at
	// OpenFor. OnChange reports the close the moment it happens.
	probeRetry = time.Second
)

// State is a breaker's state.
type State int

const (
	// Closed: requests flow; outcomes are counted in the window.
	Closed State = iota
	// Open: no request may be sent until OpenFor has passed.
	Open
	// HalfOpen: up to Probes requests may be in flight to test the API.
	HalfOpen
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Ticket is an admission from [Breaker.Allow]. Hand it back once, to Done or
// Cancel. It records the breaker generation (every state change starts a new
// one), so an outcome that arrives after the state it was admitted in has
// ended is ignored: a request allowed while closed that fails after the
// breaker opened cannot reopen, close or take a probe slot of a later
// half-open round. A probe's ticket is also unique, so handing it back twice
// frees its slot once. The zero Ticket (returned when Allow refuses) is
// ignored.
type Ticket struct {
	gen uint64
	seq uint64 // a probe's number; 0 for requests admitted while closed
}

// Breaker is a circuit breaker for one sink's API. It is safe for concurrent
// use; all state is under one mutex, and OnChange callbacks run outside it.
// It starts no goroutines: Open turns into HalfOpen lazily, when Allow or
// State is called after OpenFor has passed.
type Breaker struct {
	cfg   BreakerConfig
	now   func() time.Time
	epoch time.Time     // bucket numbers count Window/10 steps from here
	width time.Duration // Window / breakerBuckets

	mu        sync.Mutex
	state     State
	gen       uint64 // bumped on every transition; 0 is never a live generation
	buckets   [breakerBuckets]bucket
	latest    int64         // the highest bucket number seen: time never runs backwards here
	openFor   time.Duration // the current open period
	openUntil time.Time
	probes    []uint64 // half-open: the seq of each probe in flight
	seq       uint64   // the last probe seq given out
	successes int      // half-open: probe successes so far this round
	streak    int      // closed: failures in a row

	onChange  []func(from, to State)
	pending   []transition // transitions not yet reported
	notifying bool         // a goroutine is running callbacks
}

// bucket holds the outcomes of one Window/10 interval.
type bucket struct {
	n               int64 // the bucket's number; its slot is n % breakerBuckets
	total, failures int
}

type transition struct{ from, to State }

// NewBreaker applies defaults to cfg and validates it; the error names the
// field. now is the clock (nil: time.Now); tests inject a fake one. The
// breaker starts closed.
func NewBreaker(cfg BreakerConfig, now func() time.Time) (*Breaker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	b := &Breaker{
		cfg:     cfg,
		now:     now,
		epoch:   now(),
		width:   cfg.Window / breakerBuckets,
		state:   Closed,
		gen:     1,
		openFor: cfg.OpenFor,
		probes:  make([]uint64, 0, cfg.Probes),
	}
	return b, nil
}

func (cfg BreakerConfig) withDefaults() BreakerConfig {
	cfg.Window = cmp.Or(cfg.Window, DefaultBreakerWindow)
	cfg.MinRequests = cmp.Or(cfg.MinRequests, DefaultBreakerMinRequests)
	cfg.FailureRatio = cmp.Or(cfg.FailureRatio, DefaultBreakerFailureRatio)
	cfg.OpenFor = cmp.Or(cfg.OpenFor, DefaultBreakerOpenFor)
	cfg.MaxOpenFor = cmp.Or(cfg.MaxOpenFor, max(DefaultBreakerMaxOpenFor, cfg.OpenFor))
	cfg.Probes = cmp.Or(cfg.Probes, DefaultBreakerProbes)
	cfg.ConsecutiveFailures = cmp.Or(cfg.ConsecutiveFailures, DefaultBreakerConsecutiveFailures)
	return cfg
}

// validate checks a defaulted config. Field names are those of the YAML
// block, so the caller can prefix the sink: sink "email": breaker.window: ….
func (cfg BreakerConfig) validate() error {
	switch {
	case cfg.Window < minBreakerWindow:
		return fmt.Errorf("breaker.window: must be at least %s, got %s", minBreakerWindow, cfg.Window)
	case cfg.MinRequests < 1:
		return fmt.Errorf("breaker.min_requests: must be at least 1, got %d", cfg.MinRequests)
	case math.IsNaN(cfg.FailureRatio) || cfg.FailureRatio <= 0 || cfg.FailureRatio > 1:
		return fmt.Errorf("breaker.failure_ratio: must be in (0, 1], got %v", cfg.FailureRatio)
	case cfg.OpenFor < 0:
		return fmt.Errorf("breaker.open_for: must be positive, got %s", cfg.OpenFor)
	case cfg.MaxOpenFor < cfg.OpenFor:
		return fmt.Errorf("breaker.max_open_for: %s is below open_for %s", cfg.MaxOpenFor, cfg.OpenFor)
	case cfg.Probes < 1:
		return fmt.Errorf("breaker.probes: must be at least 1, got %d", cfg.Probes)
	case cfg.ConsecutiveFailures < -1:
		return fmt.Errorf("breaker.consecutive_failures: must be positive or -1, got %d", cfg.ConsecutiveFailures)
	}
	return nil
}

// Allow asks to send one request. ok=true admits it: send it, then hand t to
// Done (or Cancel). ok=false means do not send; retryIn is how long to wait
// before asking again (the caller pauses its partitions meanwhile): the rest
// of the open period, or, while half-open with every probe slot taken, a
// polling hint of min(1s, OpenFor). While closed, Allow always admits.
func (b *Breaker) Allow() (t Ticket, ok bool, retryIn time.Duration) {
	b.mu.Lock()
	if b.state == Closed { // the hot path: no clock
		t = Ticket{gen: b.gen}
		b.mu.Unlock()
		return t, true, 0
	}
	now := b.now()
	changed := b.advance(now)
	switch b.state {
	case Open:
		retryIn = b.openUntil.Sub(now)
	case HalfOpen:
		if len(b.probes) < b.cfg.Probes {
			b.seq++
			b.probes = append(b.probes, b.seq)
			t, ok = Ticket{b.gen, b.seq}, true
		} else {
			retryIn = min(probeRetry, b.cfg.OpenFor)
		}
	}
	b.mu.Unlock()
	if changed {
		b.notify()
	}
	return t, ok, retryIn
}

// Done reports the outcome of a request admitted with t. success=false is a
// failure of the API: a retryable outcome (5xx, 408, 425, 429, a timeout, a
// transport error), i.e. [Retryable] from Deliver. A permanent 4xx is the
// event's fault, not the API's, and the API did answer: report it as
// success=true, like a 2xx. An outcome whose ticket belongs to an earlier
// state (see [Ticket]) is ignored.
//
// Closed: the outcome enters the window; the breaker opens when the window
// holds at least MinRequests outcomes and the failure ratio reaches
// FailureRatio. HalfOpen: a failure reopens it for twice the last open period
// (capped at MaxOpenFor); Probes successes close it, clearing the window.
func (b *Breaker) Done(t Ticket, success bool) {
	b.mu.Lock()
	if t.gen != b.gen {
		b.mu.Unlock()
		return
	}
	now := b.now()
	changed := false
	switch b.state {
	case Closed:
		changed = b.record(now, success)
	case HalfOpen:
		if !b.endProbe(t.seq) {
			break // reported twice
		}
		switch {
		case !success:
			b.openFor = doubled(b.openFor, b.cfg.MaxOpenFor)
			b.open(now)
			changed = true
		case b.successes+1 >= b.cfg.Probes:
			b.close()
			changed = true
		default:
			b.successes++
		}
	}
	b.mu.Unlock()
	if changed {
		b.notify()
	}
}

// Cancel gives back an admission without an outcome: the request never
// reached a verdict from the API (the caller's context ended, the event could
// not be rendered, dedupe found it already delivered). While half-open it
// frees the probe slot. A ticket of an earlier state is ignored.
func (b *Breaker) Cancel(t Ticket) {
	b.mu.Lock()
	if t.gen == b.gen && b.state == HalfOpen {
		b.endProbe(t.seq)
	}
	b.mu.Unlock()
}

// State returns the current state, turning Open into HalfOpen if OpenFor has
// passed.
func (b *Breaker) State() State {
	b.mu.Lock()
	changed := b.advance(b.now())
	s := b.state
	b.mu.Unlock()
	if changed {
		b.notify()
	}
	return s
}

// OnChange registers fn to be called on every state transition with the old
// and the new state, for logs and metrics. Callbacks run outside the
// breaker's lock, one at a time and in transition order, on the goroutine
// whose call made the transition (or on one already running callbacks); fn
// may call the breaker. A nil fn is ignored.
func (b *Breaker) OnChange(fn func(from, to State)) {
	if fn == nil {
		return
	}
	b.mu.Lock()
	b.onChange = append(b.onChange, fn)
	b.mu.Unlock()
}

// advance turns Open into HalfOpen once OpenFor has passed. b.mu is held.
func (b *Breaker) advance(now time.Time) bool {
	if b.state != Open || now.Before(b.openUntil) {
		return false
	}
	b.transition(HalfOpen)
	b.probes, b.successes = b.probes[:0], 0
	return true
}

// endProbe removes probe seq from those in flight and reports whether it was
// there. b.mu is held.
func (b *Breaker) endProbe(seq uint64) bool {
	i := slices.Index(b.probes, seq)
	if i < 0 {
		return false
	}
	b.probes = slices.Delete(b.probes, i, i+1)
	return true
}

// open starts an open period of b.openFor. b.mu is held.
func (b *Breaker) open(now time.Time) {
	b.transition(Open)
	b.openUntil = now.Add(b.openFor)
	b.probes, b.successes = b.probes[:0], 0
}

// close closes the breaker with an empty window and the base open period.
// b.mu is held.
func (b *Breaker) close() {
	b.transition(Closed)
	b.buckets = [breakerBuckets]bucket{}
	b.streak = 0
	b.openFor = b.cfg.OpenFor
	b.probes, b.successes = b.probes[:0], 0
}

// transition moves to state to, starts a new generation and queues the
// callbacks. b.mu is held.
func (b *Breaker) transition(to State) {
	b.pending = append(b.pending, transition{b.state, to})
	b.state = to
	b.gen++
}

// record adds one outcome to the window and opens the breaker if it should.
// b.mu is held.
func (b *Breaker) record(now time.Time, success bool) bool {
	n := max(int64(now.Sub(b.epoch)/b.width), b.latest)
	b.latest = n
	bk := &b.buckets[n%breakerBuckets]
	if bk.n != n {
		*bk = bucket{n: n}
	}
	bk.total++
	if !success {
		bk.failures++
		b.streak++
	} else {
		b.streak = 0
	}
	if c := b.cfg.ConsecutiveFailures; c > 0 && b.streak >= c {
		b.open(now)
		return true
	}
	var total, failures int
	for i := range b.buckets {
		if c := &b.buckets[i]; c.n > n-breakerBuckets {
			total += c.total
			failures += c.failures
		}
	}
	if total < b.cfg.MinRequests || float64(failures)/float64(total) < b.cfg.FailureRatio {
		return false
	}
	b.open(now)
	return true
}

// doubled returns min(2d, limit) without overflowing.
func doubled(d, limit time.Duration) time.Duration {
	if d > limit/2 {
		return limit
	}
	return 2 * d
}

// notify runs the callbacks for queued transitions. Only one goroutine runs
// them at a time, so they are seen in order; a transition queued meanwhile
// (also by a callback calling the breaker) is run by that goroutine.
func (b *Breaker) notify() {
	b.mu.Lock()
	if b.notifying {
		b.mu.Unlock()
		return
	}
	b.notifying = true
	locked := true
	defer func() { // also when a callback panics
		if !locked {
			b.mu.Lock()
		}
		b.notifying = false
		b.mu.Unlock()
	}()
	for len(b.pending) > 0 {
		batch, fns := b.pending, b.onChange
		b.pending = nil
		b.mu.Unlock()
		locked = false
		for _, tr := range batch {
			for _, fn := range fns {
				fn(tr.from, tr.to)
			}
		}
		b.mu.Lock()
		locked = true
	}
}
