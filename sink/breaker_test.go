package sink

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock for the breaker and the limiter. Time moves
// only by Advance (or Skip); Sleep blocks until Advance passes its deadline.
type fakeClock struct {
	mu       sync.Mutex
	now      time.Time
	sleepers map[*fakeSleeper]struct{}
}

type fakeSleeper struct {
	until time.Time
	wake  chan struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), sleepers: map[*fakeSleeper]struct{}{}}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d (backwards if negative) and wakes the sleepers
// that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for s := range c.sleepers {
		if !c.now.Before(s.until) {
			close(s.wake)
			delete(c.sleepers, s)
		}
	}
}

// Sleep waits until the clock has advanced by d, or ctx is done.
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	if d <= 0 {
		c.mu.Unlock()
		return ctx.Err()
	}
	s := &fakeSleeper{until: c.now.Add(d), wake: make(chan struct{})}
	c.sleepers[s] = struct{}{}
	c.mu.Unlock()
	select {
	case <-s.wake:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.sleepers, s)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Skip is a sleep that advances the clock by d at once: for one goroutine,
// time passes exactly as long as it waits.
func (c *fakeClock) Skip(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

func newTestBreaker(t testing.TB, cfg BreakerConfig) (*Breaker, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	b, err := NewBreaker(cfg, clk.Now)
	if err != nil {
		t.Fatalf("NewBreaker: %v", err)
	}
	return b, clk
}

// report sends one admitted request with the given outcome; the breaker must
// admit it.
func report(t testing.TB, b *Breaker, success bool) {
	t.Helper()
	tk, ok, retryIn := b.Allow()
	if !ok {
		t.Fatalf("Allow refused (state %s, retryIn %s), want admitted", b.State(), retryIn)
	}
	b.Done(tk, success)
}

// tripOpen opens a breaker with MinRequests failures.
func tripOpen(t testing.TB, b *Breaker) {
	t.Helper()
	for range b.cfg.MinRequests {
		report(t, b, false)
	}
	if s := b.State(); s != Open {
		t.Fatalf("after %d failures state %s, want open", b.cfg.MinRequests, s)
	}
}

// mustRefuse checks that Allow refuses with retryIn want.
func mustRefuse(t testing.TB, b *Breaker, want time.Duration) {
	t.Helper()
	tk, ok, retryIn := b.Allow()
	if ok {
		b.Cancel(tk)
		t.Fatalf("Allow admitted in state %s, want refused", b.State())
	}
	if retryIn != want {
		t.Fatalf("retryIn = %s, want %s", retryIn, want)
	}
}

func TestNewBreakerConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     BreakerConfig
		want    BreakerConfig // when no error
		wantErr string        // the field named
	}{
		{name: "defaults", want: BreakerConfig{Window: 30 * time.Second, MinRequests: 20, FailureRatio: 0.5, OpenFor: 10 * time.Second, MaxOpenFor: 2 * time.Minute, Probes: 1, ConsecutiveFailures: 20}},
		{name: "max_open_for defaults to at least open_for", cfg: BreakerConfig{OpenFor: 5 * time.Minute},
			want: BreakerConfig{Window: 30 * time.Second, MinRequests: 20, FailureRatio: 0.5, OpenFor: 5 * time.Minute, MaxOpenFor: 5 * time.Minute, Probes: 1, ConsecutiveFailures: 20}},
		{name: "given values kept", cfg: BreakerConfig{Window: time.Minute, MinRequests: 5, FailureRatio: 1, OpenFor: time.Second, MaxOpenFor: time.Second, Probes: 3, ConsecutiveFailures: -1},
			want: BreakerConfig{Window: time.Minute, MinRequests: 5, FailureRatio: 1, OpenFor: time.Second, MaxOpenFor: time.Second, Probes: 3, ConsecutiveFailures: -1}},
		{name: "bad consecutive failures", cfg: BreakerConfig{ConsecutiveFailures: -2}, wantErr: "breaker.consecutive_failures"},
		{name: "negative window", cfg: BreakerConfig{Window: -time.Second}, wantErr: "breaker.window"},
		{name: "window too short for buckets", cfg: BreakerConfig{Window: 9 * time.Millisecond}, wantErr: "breaker.window"},
		{name: "negative min_requests", cfg: BreakerConfig{MinRequests: -1}, wantErr: "breaker.min_requests"},
		{name: "ratio above 1", cfg: BreakerConfig{FailureRatio: 1.01}, wantErr: "breaker.failure_ratio"},
		{name: "negative ratio", cfg: BreakerConfig{FailureRatio: -0.5}, wantErr: "breaker.failure_ratio"},
		{name: "NaN ratio", cfg: BreakerConfig{FailureRatio: math.NaN()}, wantErr: "breaker.failure_ratio"},
		{name: "negative open_for", cfg: BreakerConfig{OpenFor: -time.Second}, wantErr: "breaker.open_for"},
		{name: "max_open_for below open_for", cfg: BreakerConfig{OpenFor: time.Minute, MaxOpenFor: time.Second}, wantErr: "breaker.max_open_for"},
		{name: "negative probes", cfg: BreakerConfig{Probes: -1}, wantErr: "breaker.probes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBreaker(tt.cfg, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr+":") {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewBreaker: %v", err)
			}
			if b.cfg != tt.want {
				t.Errorf("config = %+v, want %+v", b.cfg, tt.want)
			}
			if s := b.State(); s != Closed {
				t.Errorf("new breaker is %s, want closed", s)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Closed: "closed", Open: "open", HalfOpen: "half-open", State(7): "State(7)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

func TestBreakerOpensAtThreshold(t *testing.T) {
	const F, S = false, true
	tests := []struct {
		name     string
		min      int
		ratio    float64
		outcomes []bool
		openAt   int // index of the outcome that opens it; -1: stays closed
	}{
		{"below min_requests never opens", 10, 0.5, repeat(F, 9), -1},
		{"opens at min_requests", 10, 0.5, repeat(F, 12), 9},
		{"ratio just below stays closed", 10, 0.5, append(repeat(S, 6), repeat(F, 4)...), -1},
		{"ratio exactly at threshold opens", 10, 0.5, append(repeat(S, 5), repeat(F, 5)...), 9},
		{"reaching min_requests with a success opens", 10, 0.5, append(repeat(F, 5), repeat(S, 5)...), 9},
		{"decimal ratio compares exactly", 10, 0.3, append(repeat(S, 7), repeat(F, 3)...), 9},
		{"ratio 1 needs every outcome failed", 10, 1, append(append(repeat(F, 9), S), repeat(F, 10)...), -1},
		{"ratio 1 opens on all failures", 10, 1, repeat(F, 10), 9},
		{"min_requests 1 opens on the first failure", 1, 0.5, []bool{S, F}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := newTestBreaker(t, BreakerConfig{MinRequests: tt.min, FailureRatio: tt.ratio, OpenFor: 10 * time.Second})
			for i, ok := range tt.outcomes {
				report(t, b, ok)
				want := Closed
				if tt.openAt >= 0 && i >= tt.openAt {
					want = Open
				}
				if s := b.State(); s != want {
					t.Fatalf("after outcome %d state %s, want %s", i, s, want)
				}
				if want == Open {
					mustRefuse(t, b, 10*time.Second)
					return
				}
			}
		})
	}
}

func repeat(v bool, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestBreakerWindowAging(t *testing.T) {
	type step struct {
		advance  time.Duration
		failures int
		success  int
		want     State
	}
	tests := []struct {
		name  string
		ratio float64
		steps []step
	}{
		{"outcomes age out after the window", 0.5, []step{
			{0, 9, 0, Closed},
			{30 * time.Second, 9, 0, Closed}, // the first 9 are gone: 9 < 10
			{0, 1, 0, Open},
		}},
		{"outcomes age out after a gap longer than the window", 0.5, []step{
			{0, 9, 0, Closed},
			{33 * time.Second, 9, 0, Closed}, // their bucket is still in the ring, but too old
			{0, 1, 0, Open},
		}},
		{"outcomes within the window count", 0.5, []step{
			{0, 5, 0, Closed},
			{29*time.Second + 999*time.Millisecond, 5, 0, Open}, // last bucket of the window
		}},
		{"old successes age out and raise the ratio", 0.6, []step{
			{0, 0, 10, Closed},
			{15 * time.Second, 9, 0, Closed}, // 9/19
			{15 * time.Second, 1, 0, Open},   // successes gone: 10/10
		}},
		{"a clock that steps back does not lose outcomes", 0.5, []step{
			{10 * time.Second, 5, 0, Closed},
			{-5 * time.Second, 5, 0, Open},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clk := newTestBreaker(t, BreakerConfig{Window: 30 * time.Second, MinRequests: 10, FailureRatio: tt.ratio})
			for i, st := range tt.steps {
				clk.Advance(st.advance)
				for range st.success {
					report(t, b, true)
				}
				for range st.failures {
					report(t, b, false)
				}
				if s := b.State(); s != st.want {
					t.Fatalf("after step %d state %s, want %s", i, s, st.want)
				}
			}
		})
	}
}

func TestBreakerHalfOpenAdmitsProbes(t *testing.T) {
	for _, probes := range []int{1, 3} {
		t.Run(fmt.Sprintf("probes=%d", probes), func(t *testing.T) {
			b, clk := newTestBreaker(t, BreakerConfig{MinRequests: 4, OpenFor: 10 * time.Second, Probes: probes})
			tripOpen(t, b)
			clk.Advance(10*time.Second - time.Nanosecond)
			mustRefuse(t, b, time.Nanosecond)
			clk.Advance(time.Nanosecond)
			if s := b.State(); s != HalfOpen {
				t.Fatalf("after open_for state %s, want half-open", s)
			}
			var tickets []Ticket
			for i := range probes {
				tk, ok, _ := b.Allow()
				if !ok {
					t.Fatalf("probe %d refused, want %d admitted", i+1, probes)
				}
				tickets = append(tickets, tk)
			}
			mustRefuse(t, b, time.Second)
			// A success frees its slot; with more than one probe the breaker
			// stays half-open and admits one more.
			b.Done(tickets[0], true)
			if probes == 1 {
				if s := b.State(); s != Closed {
					t.Fatalf("after %d success state %s, want closed", probes, s)
				}
				return
			}
			if s := b.State(); s != HalfOpen {
				t.Fatalf("after 1 of %d successes state %s, want half-open", probes, s)
			}
			if _, ok, _ := b.Allow(); !ok {
				t.Fatal("a freed probe slot was not given out")
			}
			mustRefuse(t, b, time.Second)
		})
	}
}

func TestBreakerHalfOpenRetryHintCappedAtOpenFor(t *testing.T) {
	b, clk := newTestBreaker(t, BreakerConfig{MinRequests: 1, OpenFor: 200 * time.Millisecond})
	tripOpen(t, b)
	clk.Advance(200 * time.Millisecond)
	if _, ok, _ := b.Allow(); !ok {
		t.Fatal("probe refused")
	}
	mustRefuse(t, b, 200*time.Millisecond)
}

func TestBreakerProbeSuccessesClose(t *testing.T) {
	b, clk := newTestBreaker(t, BreakerConfig{MinRequests: 4, OpenFor: 10 * time.Second, Probes: 3})
	tripOpen(t, b)
	clk.Advance(10 * time.Second)
	for i := range 3 {
		if s := b.State(); s != HalfOpen {
			t.Fatalf("after %d successes state %s, want half-open", i, s)
		}
		report(t, b, true)
	}
	if s := b.State(); s != Closed {
		t.Fatalf("after 3 successes state %s, want closed", s)
	}
	// The window was cleared: the 4 failures that opened it are still within
	// 30s, yet 3 more must not reopen it.
	for range 3 {
		report(t, b, false)
	}
	if s := b.State(); s != Closed {
		t.Fatalf("state %s after 3 failures in a cleared window, want closed", s)
	}
	report(t, b, false)
	if s := b.State(); s != Open {
		t.Fatalf("state %s after 4 failures, want open", s)
	}
}

func TestBreakerProbeFailureBacksOff(t *testing.T) {
	b, clk := newTestBreaker(t, BreakerConfig{MinRequests: 2, OpenFor: 10 * time.Second, MaxOpenFor: 35 * time.Second})
	tripOpen(t, b)
	mustRefuse(t, b, 10*time.Second)
	for _, want := range []time.Duration{20 * time.Second, 35 * time.Second, 35 * time.Second} {
		clk.Advance(b.openFor)
		report(t, b, false) // the probe fails
		if s := b.State(); s != Open {
			t.Fatalf("after a failed probe state %s, want open", s)
		}
		mustRefuse(t, b, want)
	}
	// Closing resets the open period.
	clk.Advance(35 * time.Second)
	report(t, b, true)
	if s := b.State(); s != Closed {
		t.Fatalf("after a good probe state %s, want closed", s)
	}
	tripOpen(t, b)
	mustRefuse(t, b, 10*time.Second)
}

func TestBreakerCancelFreesProbe(t *testing.T) {
	b, clk := newTestBreaker(t, BreakerConfig{MinRequests: 1, OpenFor: time.Second})
	tripOpen(t, b)
	clk.Advance(time.Second)
	tk, ok, _ := b.Allow()
	if !ok {
		t.Fatal("probe refused")
	}
	mustRefuse(t, b, time.Second)
	b.Cancel(tk)
	if s := b.State(); s != HalfOpen {
		t.Fatalf("after Cancel state %s, want half-open", s)
	}
	tk2, ok, _ := b.Allow()
	if !ok {
		t.Fatal("Cancel did not free the probe slot")
	}
	b.Cancel(tk) // a second Cancel of the same ticket after reuse: no double free
	b.Cancel(Ticket{})
	mustRefuse(t, b, time.Second)
	b.Done(tk2, true)
	if s := b.State(); s != Closed {
		t.Fatalf("state %s, want closed", s)
	}
}

func TestBreakerLateOutcomes(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, b *Breaker, clk *fakeClock)
	}{
		{"success from before opening does not close half-open", func(t *testing.T, b *Breaker, clk *fakeClock) {
			late, _, _ := b.Allow()
			tripOpen(t, b)
			clk.Advance(10 * time.Second)
			probe, ok, _ := b.Allow()
			if !ok {
				t.Fatal("probe refused")
			}
			b.Done(late, true)
			if s := b.State(); s != HalfOpen {
				t.Fatalf("late success moved the breaker to %s", s)
			}
			mustRefuse(t, b, time.Second) // and did not free the probe's slot
			b.Done(probe, true)
			if s := b.State(); s != Closed {
				t.Fatalf("probe success: state %s, want closed", s)
			}
		}},
		{"failure from before opening does not reopen half-open", func(t *testing.T, b *Breaker, clk *fakeClock) {
			late, _, _ := b.Allow()
			tripOpen(t, b)
			clk.Advance(10 * time.Second)
			if _, ok, _ := b.Allow(); !ok {
				t.Fatal("probe refused")
			}
			b.Done(late, false)
			if s := b.State(); s != HalfOpen {
				t.Fatalf("late failure moved the breaker to %s", s)
			}
		}},
		{"outcome while open changes nothing", func(t *testing.T, b *Breaker, clk *fakeClock) {
			late, _, _ := b.Allow()
			tripOpen(t, b)
			clk.Advance(4 * time.Second)
			b.Done(late, false)
			mustRefuse(t, b, 6*time.Second)
		}},
		{"outcome from an earlier closed period stays out of the new window", func(t *testing.T, b *Breaker, clk *fakeClock) {
			late, _, _ := b.Allow()
			tripOpen(t, b)
			clk.Advance(10 * time.Second)
			report(t, b, true) // closes
			for range 3 {
				report(t, b, false)
			}
			b.Done(late, false) // would be the 4th failure
			if s := b.State(); s != Closed {
				t.Fatalf("late failure counted in the new window: state %s", s)
			}
		}},
		{"probe of a failed round does not count in the next", func(t *testing.T, b *Breaker, clk *fakeClock) {
			b.cfg.Probes = 2
			tripOpen(t, b)
			clk.Advance(10 * time.Second)
			p1, _, _ := b.Allow()
			p2, ok, _ := b.Allow()
			if !ok {
				t.Fatal("second probe refused")
			}
			b.Done(p1, false) // reopens for 20s
			clk.Advance(20 * time.Second)
			q1, ok, _ := b.Allow()
			if !ok {
				t.Fatal("probe of round 2 refused")
			}
			b.Done(p2, true) // stale: neither a success of round 2 nor a freed slot
			if _, ok, _ := b.Allow(); !ok {
				t.Fatal("second slot of round 2 refused")
			}
			mustRefuse(t, b, time.Second)
			b.Done(q1, true)
			if s := b.State(); s != HalfOpen {
				t.Fatalf("stale probe success counted: state %s after 1 of 2 successes", s)
			}
		}},
		{"a probe reported twice counts once", func(t *testing.T, b *Breaker, clk *fakeClock) {
			b.cfg.Probes = 2
			tripOpen(t, b)
			clk.Advance(10 * time.Second)
			p1, _, _ := b.Allow()
			b.Done(p1, true)
			b.Done(p1, true)
			if s := b.State(); s != HalfOpen {
				t.Fatalf("one probe reported twice moved the breaker to %s", s)
			}
			b.Done(p1, false) // nor can it fail the round afterwards
			if s := b.State(); s != HalfOpen {
				t.Fatalf("one probe reported three times moved the breaker to %s", s)
			}
		}},
		{"the zero ticket is ignored", func(t *testing.T, b *Breaker, clk *fakeClock) {
			for range 10 {
				b.Done(Ticket{}, false)
			}
			if s := b.State(); s != Closed {
				t.Fatalf("zero tickets opened the breaker: %s", s)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clk := newTestBreaker(t, BreakerConfig{MinRequests: 4, OpenFor: 10 * time.Second})
			tt.run(t, b, clk)
		})
	}
}

func TestBreakerOnChange(t *testing.T) {
	b, clk := newTestBreaker(t, BreakerConfig{MinRequests: 2, OpenFor: time.Second})
	var got, second []string
	b.OnChange(func(from, to State) {
		got = append(got, from.String()+">"+to.String())
		_ = b.State() // callbacks run outside the lock and may call the breaker
	})
	b.OnChange(func(from, to State) { second = append(second, from.String()+">"+to.String()) })
	b.OnChange(nil)

	tripOpen(t, b)               // closed>open
	clk.Advance(time.Second)     //
	report(t, b, false)          // open>half-open (lazily, in Allow), half-open>open
	clk.Advance(2 * time.Second) //
	_ = b.State()                // open>half-open
	report(t, b, true)           // half-open>closed
	want := []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"}
	if !slices.Equal(got, want) {
		t.Errorf("transitions = %v, want %v", got, want)
	}
	if !slices.Equal(second, want) {
		t.Errorf("second callback saw %v, want %v", second, want)
	}
}

// TestBreakerOnChangeInOrder holds the first callback while another goroutine
// makes the next transition: the breaker stays usable (callbacks run outside
// its lock), and the second transition is reported after the first, not
// beside it.
func TestBreakerOnChangeInOrder(t *testing.T) {
	b, clk := newTestBreaker(t, BreakerConfig{MinRequests: 1, OpenFor: time.Second})
	entered, release := make(chan struct{}), make(chan struct{})
	var (
		mu  sync.Mutex
		got []string
	)
	b.OnChange(func(from, to State) {
		if from == Closed {
			close(entered)
			<-release
		}
		mu.Lock()
		got = append(got, from.String()+">"+to.String())
		mu.Unlock()
	})
	tripped := make(chan struct{})
	go func() {
		defer close(tripped)
		tk, _, _ := b.Allow()
		b.Done(tk, false) // closed>open; its callback blocks
	}()
	<-entered
	clk.Advance(time.Second)
	if s := b.State(); s != HalfOpen { // open>half-open, while the first callback runs
		t.Errorf("state %s, want half-open", s)
	}
	mu.Lock()
	early := slices.Clone(got)
	mu.Unlock()
	close(release)
	<-tripped
	if len(early) != 0 {
		t.Errorf("%v reported while closed>open was still being reported", early)
	}
	if want := []string{"closed>open", "open>half-open"}; !slices.Equal(got, want) {
		t.Errorf("transitions = %v, want %v", got, want)
	}
}

func TestBreakerOnChangePanicDoesNotWedge(t *testing.T) {
	b, clk := newTestBreaker(t, BreakerConfig{MinRequests: 1, OpenFor: time.Second})
	calls := 0
	b.OnChange(func(from, to State) {
		calls++
		if calls == 1 {
			panic("callback")
		}
	})
	func() {
		defer func() { _ = recover() }()
		report(t, b, false)
	}()
	// Later transitions must still be reported, and the breaker usable.
	clk.Advance(time.Second)
	report(t, b, true) // open>half-open, half-open>closed
	if calls != 3 {
		t.Fatalf("callback ran %d times, want 3 (a panic must not stop later callbacks)", calls)
	}
}

// TestBreakerConcurrent hammers one breaker from many goroutines (run with
// -race) and checks the invariants: probes never exceed Probes, transitions
// are reported as an unbroken chain in order, and no probe slot leaks.
func TestBreakerConcurrent(t *testing.T) {
	clk := newFakeClock()
	b, err := NewBreaker(BreakerConfig{Window: 20 * time.Millisecond, MinRequests: 5, FailureRatio: 0.5, OpenFor: 5 * time.Millisecond, MaxOpenFor: 20 * time.Millisecond, Probes: 3}, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		chain []transition
	)
	b.OnChange(func(from, to State) {
		mu.Lock()
		chain = append(chain, transition{from, to})
		mu.Unlock()
	})
	check := func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.probes) > b.cfg.Probes || (b.state != HalfOpen && len(b.probes) != 0) {
			return fmt.Errorf("state %s with %d probes in flight", b.state, len(b.probes))
		}
		return nil
	}

	// The API's health alternates every 100ms of fake time (five windows):
	// 10% failures, then 90%, so the breaker keeps opening and closing.
	start := clk.Now()
	failureRate := func() float64 {
		if clk.Now().Sub(start)/(100*time.Millisecond)%2 == 1 {
			return 0.9
		}
		return 0.1
	}
	const workers, rounds = 16, 2000
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			var held []Ticket
			for range rounds {
				if tk, ok, _ := b.Allow(); ok {
					held = append(held, tk)
				}
				// Finish a random held ticket, sometimes late.
				if len(held) > 0 && r.IntN(3) > 0 {
					i := r.IntN(len(held))
					switch r.IntN(10) {
					case 0:
						b.Cancel(held[i])
					default:
						b.Done(held[i], r.Float64() >= failureRate())
					}
					held = slices.Delete(held, i, i+1)
				}
				if r.IntN(10) == 0 {
					clk.Advance(time.Duration(r.IntN(5)) * time.Millisecond)
				}
				if err := check(); err != nil {
					errs <- err
					return
				}
			}
			for _, tk := range held {
				b.Done(tk, true)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := check(); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	probes, state := len(b.probes), b.state
	b.mu.Unlock()
	if probes != 0 {
		t.Fatalf("%d probe slots leaked", probes)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(chain) < 20 {
		t.Fatalf("only %d transitions; the test does not exercise the breaker", len(chain))
	}
	prev := Closed
	for i, tr := range chain {
		if tr.from != prev {
			t.Fatalf("transition %d is %s>%s after a move to %s", i, tr.from, tr.to, prev)
		}
		prev = tr.to
	}
	if prev != state {
		t.Fatalf("last reported state %s, breaker is %s", prev, state)
	}
	t.Logf("%d transitions", len(chain))
}

func BenchmarkBreakerAllowDone(b *testing.B) {
	br, err := NewBreaker(BreakerConfig{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		tk, ok, _ := br.Allow()
		if !ok {
			b.Fatal("refused")
		}
		br.Done(tk, true)
	}
}

func BenchmarkBreakerAllowDoneParallel(b *testing.B) {
	br, err := NewBreaker(BreakerConfig{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tk, _, _ := br.Allow()
			br.Done(tk, true)
		}
	})
}

// Failures in a row open the breaker even when the window is full of earlier
// successes that keep the ratio low; a success in between resets the count.
func TestBreakerConsecutiveFailures(t *testing.T) {
	now := time.Unix(0, 0)
	b, err := NewBreaker(BreakerConfig{ConsecutiveFailures: 5}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	report := func(ok bool) {
		t.Helper()
		tk, admitted, _ := b.Allow()
		if !admitted {
			t.Fatal("not admitted while closed")
		}
		b.Done(tk, ok)
	}
	for range 1000 {
		report(true)
	}
	for range 4 {
		report(false)
	}
	report(true) // breaks the streak
	for range 4 {
		report(false)
	}
	if b.State() != Closed {
		t.Fatalf("opened after 4 failures in a row: %v", b.State())
	}
	report(false)
	if b.State() != Open {
		t.Fatalf("state %v after 5 failures in a row, want open (window ratio is only 9/1005)", b.State())
	}
}
