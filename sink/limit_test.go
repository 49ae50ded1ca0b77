package sink

import (
	"context"
	"errors"
	"iter"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func newTestLimiter(t testing.TB, cfg LimiterConfig, clk *fakeClock, sleep func(context.Context, time.Duration) error) *Limiter {
	t.Helper()
	l, err := NewLimiter(cfg, clk.Now, WithLimiterSleep(sleep))
	if err != nil {
		t.Fatalf("NewLimiter: %v", err)
	}
	return l
}

func TestNewLimiterConfig(t *testing.T) {
	tests := []struct {
		name      string
		cfg       LimiterConfig
		wantBurst int // 0 when unlimited
		wantErr   string
	}{
		{name: "unlimited by default", cfg: LimiterConfig{}},
		{name: "default burst rounds a tenth up", cfg: LimiterConfig{Rate: 11}, wantBurst: 2},
		{name: "default burst at least 1", cfg: LimiterConfig{Rate: 0.5}, wantBurst: 1},
		{name: "default burst of 100/s", cfg: LimiterConfig{Rate: 100}, wantBurst: 10},
		{name: "given burst kept", cfg: LimiterConfig{Rate: 100, Burst: 3}, wantBurst: 3},
		{name: "negative rate", cfg: LimiterConfig{Rate: -1}, wantErr: "rate_limit.rate"},
		{name: "NaN rate", cfg: LimiterConfig{Rate: math.NaN()}, wantErr: "rate_limit.rate"},
		{name: "infinite rate", cfg: LimiterConfig{Rate: math.Inf(1)}, wantErr: "rate_limit.rate"},
		{name: "rate above 1e9", cfg: LimiterConfig{Rate: 2e9}, wantErr: "rate_limit.rate"},
		{name: "rate below one a century", cfg: LimiterConfig{Rate: 1e-12}, wantErr: "rate_limit.rate"},
		{name: "negative burst", cfg: LimiterConfig{Rate: 1, Burst: -1}, wantErr: "rate_limit.burst"},
		{name: "burst spanning centuries", cfg: LimiterConfig{Rate: 1e-9, Burst: 1000}, wantErr: "rate_limit.burst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLimiter(tt.cfg, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr+":") {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewLimiter: %v", err)
			}
			if tt.wantBurst == 0 {
				if l.interval != 0 {
					t.Fatalf("interval %s, want 0 (unlimited)", l.interval)
				}
				return
			}
			if got := int(l.tau/l.interval) + 1; got != tt.wantBurst {
				t.Errorf("burst = %d, want %d", got, tt.wantBurst)
			}
		})
	}
}

// TestLimiterPace sends n events back to back from one goroutine; time passes
// only while it waits. The last event must go at (n-burst)/rate, and no
// stretch of time may hold more than burst + rate·length events.
func TestLimiterPace(t *testing.T) {
	tests := []struct {
		name  string
		rate  float64
		burst int
		n     int
		want  time.Duration
	}{
		{"one event", 10, 1, 1, 0},
		{"burst goes at once", 10, 5, 5, 0},
		{"burst 1", 10, 1, 11, time.Second},
		{"burst 5", 10, 5, 25, 2 * time.Second},
		{"default burst", 100, 0, 110, time.Second},
		{"fractional rate", 0.5, 1, 3, 4 * time.Second},
		{"rate not a whole number of ns", 3, 1, 4, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			l := newTestLimiter(t, LimiterConfig{Rate: tt.rate, Burst: tt.burst}, clk, clk.Skip)
			burst := int(l.tau/l.interval) + 1
			start := clk.Now()
			at := make([]time.Duration, tt.n)
			for i := range tt.n {
				if err := l.Wait(t.Context()); err != nil {
					t.Fatalf("Wait %d: %v", i, err)
				}
				at[i] = clk.Now().Sub(start)
			}
			if got := at[tt.n-1]; got < tt.want-time.Duration(tt.n) || got > tt.want+time.Duration(tt.n) {
				t.Errorf("%d events took %s, want %s (±%dns rounding)", tt.n, got, tt.want, tt.n)
			}
			for i := range at {
				for j := i; j < len(at); j++ {
					if allowed := float64(burst) + tt.rate*(at[j]-at[i]).Seconds() + 1e-6; float64(j-i+1) > allowed {
						t.Fatalf("events %d..%d: %d in %s, more than burst %d + rate·length", i, j, j-i+1, at[j]-at[i], burst)
					}
				}
			}
		})
	}
}

func TestLimiterRefill(t *testing.T) {
	clk := newFakeClock()
	l := newTestLimiter(t, LimiterConfig{Rate: 10, Burst: 5}, clk, clk.Skip)
	wait := func(want time.Duration) {
		t.Helper()
		before := clk.Now()
		if err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := clk.Now().Sub(before); got != want {
			t.Fatalf("waited %s, want %s", got, want)
		}
	}
	for range 5 {
		wait(0)
	}
	wait(100 * time.Millisecond) // empty
	clk.Advance(10 * time.Second)
	for range 5 { // full again, and no fuller
		wait(0)
	}
	wait(100 * time.Millisecond)
	clk.Advance(250 * time.Millisecond) // 2.5 tokens
	wait(0)
	wait(0)
	wait(50 * time.Millisecond)
}

func TestLimiterUnlimitedNeverWaits(t *testing.T) {
	clk := newFakeClock()
	l := newTestLimiter(t, LimiterConfig{}, clk, func(context.Context, time.Duration) error {
		t.Fatal("an unlimited limiter slept")
		return nil
	})
	for range 10000 {
		if err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if !clk.Now().Equal(newFakeClock().Now()) {
		t.Fatal("time passed")
	}
}

// waiters runs n Waits, one after the other in arrival order (each is blocked
// before the next starts), and records when each returned, on the fake clock.
type waiters struct {
	mu       sync.Mutex
	returned []int
	at       map[int]time.Time
	errs     map[int]error
	cancels  []context.CancelFunc
}

func startWaiters(t *testing.T, l *Limiter, clk *fakeClock, n int) *waiters {
	w := &waiters{at: map[int]time.Time{}, errs: map[int]error{}}
	for i := range n {
		ctx, cancel := context.WithCancel(t.Context())
		w.cancels = append(w.cancels, cancel)
		go func() {
			err := l.Wait(ctx)
			w.mu.Lock()
			w.returned = append(w.returned, i)
			w.at[i], w.errs[i] = clk.Now(), err
			w.mu.Unlock()
		}()
		synctest.Wait()
	}
	return w
}

// intsUpTo yields 0..n.
func intsUpTo(n int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := 0; i <= n && yield(i); i++ {
		}
	}
}

func (w *waiters) done() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int(nil), w.returned...)
}

func (w *waiters) expect(t *testing.T, want ...int) {
	t.Helper()
	synctest.Wait()
	got := w.done()
	if len(got) != len(want) {
		t.Fatalf("returned %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("returned %v, want %v", got, want)
		}
	}
}

func TestLimiterPause(t *testing.T) {
	t.Run("blocks every waiter until the end, then all go when unlimited", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			clk := newFakeClock()
			l := newTestLimiter(t, LimiterConfig{}, clk, clk.Sleep)
			l.PauseFor(5 * time.Second)
			w := startWaiters(t, l, clk, 3)
			w.expect(t)
			clk.Advance(5*time.Second - time.Nanosecond)
			w.expect(t)
			clk.Advance(time.Nanosecond)
			w.expect(t, 0, 1, 2)
			if l.paused.Load() {
				t.Error("the pause hint survived the pause: the unlimited fast path stays off")
			}
		})
	})
	t.Run("no herd at the end when limited", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			clk := newFakeClock()
			l := newTestLimiter(t, LimiterConfig{Rate: 10, Burst: 1}, clk, clk.Sleep)
			l.PauseFor(5 * time.Second)
			w := startWaiters(t, l, clk, 3)
			clk.Advance(5 * time.Second)
			w.expect(t, 0)
			clk.Advance(99 * time.Millisecond)
			w.expect(t, 0)
			clk.Advance(time.Millisecond)
			w.expect(t, 0, 1)
			clk.Advance(100 * time.Millisecond)
			w.expect(t, 0, 1, 2)
		})
	})
	t.Run("extends a waiting pause, never shortens it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			clk := newFakeClock()
			t0 := clk.Now()
			l := newTestLimiter(t, LimiterConfig{}, clk, clk.Sleep)
			if !l.PausedUntil().IsZero() {
				t.Fatalf("PausedUntil = %v before any pause, want zero", l.PausedUntil())
			}
			l.PauseFor(5 * time.Second)
			w := startWaiters(t, l, clk, 2)
			l.PauseFor(2 * time.Second) // shorter: ignored
			l.PauseFor(0)
			l.PauseFor(-time.Hour)
			if got := l.PausedUntil(); !got.Equal(t0.Add(5 * time.Second)) {
				t.Fatalf("PausedUntil = %v, want t0+5s", got.Sub(t0))
			}
			clk.Advance(time.Second)
			l.PauseFor(7 * time.Second) // to t0+8s
			if got := l.PausedUntil(); !got.Equal(t0.Add(8 * time.Second)) {
				t.Fatalf("PausedUntil = t0+%v, want t0+8s", got.Sub(t0))
			}
			clk.Advance(4 * time.Second) // t0+5s: the old end
			w.expect(t)
			clk.Advance(3 * time.Second)
			w.expect(t, 0, 1)
		})
	})
	t.Run("a pause stops a waiter already waiting for a token", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			clk := newFakeClock()
			l := newTestLimiter(t, LimiterConfig{Rate: 1, Burst: 1}, clk, clk.Sleep)
			if err := l.Wait(t.Context()); err != nil { // the only token
				t.Fatal(err)
			}
			w := startWaiters(t, l, clk, 1) // its token is due at 1s
			clk.Advance(500 * time.Millisecond)
			l.PauseFor(3 * time.Second) // until 3.5s
			clk.Advance(500 * time.Millisecond)
			w.expect(t)
			clk.Advance(2500*time.Millisecond - time.Nanosecond)
			w.expect(t)
			clk.Advance(time.Nanosecond)
			w.expect(t, 0)
		})
	})
}

func TestLimiterFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		l := newTestLimiter(t, LimiterConfig{Rate: 10, Burst: 1}, clk, clk.Sleep)
		if err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		w := startWaiters(t, l, clk, 5)
		for i := range 5 {
			clk.Advance(100 * time.Millisecond)
			synctest.Wait()
			if got := w.done(); len(got) != i+1 || got[i] != i {
				t.Fatalf("after %d intervals returned %v, want 0..%d in arrival order", i+1, got, i)
			}
		}
	})
}

func TestLimiterCancel(t *testing.T) {
	t.Run("a done context returns at once", func(t *testing.T) {
		for _, rate := range []float64{0, 10} {
			clk := newFakeClock()
			l := newTestLimiter(t, LimiterConfig{Rate: rate}, clk, clk.Skip)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := l.Wait(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("rate %v: Wait = %v, want context.Canceled", rate, err)
			}
		}
	})
	t.Run("the waiting head and the queue behind it return promptly", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			clk := newFakeClock()
			l := newTestLimiter(t, LimiterConfig{Rate: 1, Burst: 1}, clk, clk.Sleep)
			l.PauseFor(time.Hour)
			w := startWaiters(t, l, clk, 3)
			w.cancels[2]() // queued behind the head
			w.expect(t, 2)
			w.cancels[0]() // the head, asleep
			w.expect(t, 2, 0)
			for _, i := range []int{0, 2} {
				if !errors.Is(w.errs[i], context.Canceled) {
					t.Errorf("waiter %d: %v, want context.Canceled", i, w.errs[i])
				}
			}
			if !clk.Now().Equal(newFakeClock().Now()) {
				t.Error("cancelling waited for time to pass")
			}
			w.cancels[1]()
			w.expect(t, 2, 0, 1)
		})
	})
	t.Run("cancelled waiters cost no capacity", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			clk := newFakeClock()
			l := newTestLimiter(t, LimiterConfig{Rate: 1, Burst: 1}, clk, clk.Sleep)
			if err := l.Wait(t.Context()); err != nil {
				t.Fatal(err)
			}
			w := startWaiters(t, l, clk, 5)
			for i := range 4 {
				w.cancels[i]()
				w.expect(t, slices.Collect(intsUpTo(i))...)
			}
			clk.Advance(time.Second) // the next token, not the fifth
			w.expect(t, 0, 1, 2, 3, 4)
			if w.errs[4] != nil {
				t.Fatalf("last waiter: %v", w.errs[4])
			}
		})
	})
	t.Run("the default sleep honours the context", func(t *testing.T) {
		l, err := NewLimiter(LimiterConfig{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		l.PauseFor(time.Hour)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := l.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait = %v, want context.DeadlineExceeded", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("Wait took %s after its deadline", took)
		}
	})
}

func BenchmarkLimiterWaitUnlimited(b *testing.B) {
	l, err := NewLimiter(LimiterConfig{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLimiterWaitLimited measures the limited path when a token is
// always there (a rate far above what one goroutine can ask for).
func BenchmarkLimiterWaitLimited(b *testing.B) {
	l, err := NewLimiter(LimiterConfig{Rate: 1e9, Burst: 1 << 20}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
