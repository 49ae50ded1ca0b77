package dedupe_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/e2e/services"
)

// The batching tests run in a synctest bubble on Memory behind a spy that
// holds every call at a gate: the first call of each kind is sent and held,
// the calls after it queue (synctest.Wait returns once each has queued, so
// the order of a batch is the order the test made the calls in), and opening
// the gate sends the queue. The bubble also fails a test that leaks a
// goroutine.

// innerStore is what the stores of this package implement.
type innerStore interface {
	dedupe.Store
	dedupe.Batcher
	dedupe.Extender
}

// trip is one round trip the spy was asked for.
type trip struct {
	op  string // claim, claim-batch, done, done-batch
	n   int    // requests
	ttl time.Duration
}

func (t trip) String() string {
	if t.ttl != 0 {
		return fmt.Sprintf("%s(%d, %v)", t.op, t.n, t.ttl)
	}
	return fmt.Sprintf("%s(%d)", t.op, t.n)
}

// errWrongType is the reply Redis gives for a key of another type: an error
// of one request that is not ErrUnavailable.
var errWrongType = errors.New("WRONGTYPE Operation against a key holding the wrong kind of value")

// spy is the inner store of the coalescer tests: it records the round trips
// it is asked for, and can hold them back or fail them.
type spy struct {
	inner    innerStore
	gate     chan struct{} // if not nil, every call waits until it is closed or its ctx ends
	batchErr error         // if not nil, every ClaimBatch and DoneBatch fails with it
	badKey   string        // if not empty, every call that touches it fails with errWrongType

	opened sync.Once
	mu     sync.Mutex
	trips  []trip
}

// newSpy returns a spy on a fresh Memory whose gate is shut until release,
// or until the test ends, so that a failed test does not leave goroutines
// blocked in its bubble.
func newSpy(t *testing.T) *spy {
	s := &spy{inner: dedupe.NewMemory(), gate: make(chan struct{})}
	t.Cleanup(s.release)
	return s
}

// release opens the gate.
func (s *spy) release() { s.opened.Do(func() { close(s.gate) }) }

func (s *spy) enter(ctx context.Context, t trip, keys ...string) error {
	s.mu.Lock()
	s.trips = append(s.trips, t)
	s.mu.Unlock()
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return fmt.Errorf("dedupe: spy %s: %w", t.op, ctx.Err())
		}
	}
	for _, k := range keys {
		if s.badKey != "" && k == s.badKey {
			return fmt.Errorf("dedupe: spy %s: %w", t.op, errWrongType)
		}
	}
	return nil
}

// tripsSoFar returns the round trips asked for so far, as text: the claims'
// and the dones' apart, since their lanes run concurrently.
func (s *spy) tripsSoFar() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var claims, dones []trip
	for _, t := range s.trips {
		if strings.HasPrefix(t.op, "claim") {
			claims = append(claims, t)
		} else {
			dones = append(dones, t)
		}
	}
	return fmt.Sprintf("claims %v dones %v", claims, dones)
}

func (s *spy) Claim(ctx context.Context, key, token string, lease time.Duration) (dedupe.Outcome, error) {
	if err := s.enter(ctx, trip{op: "claim", n: 1}, key); err != nil {
		return 0, err
	}
	return s.inner.Claim(ctx, key, token, lease)
}

func (s *spy) Done(ctx context.Context, key string, ttl time.Duration) error {
	if err := s.enter(ctx, trip{op: "done", n: 1, ttl: ttl}, key); err != nil {
		return err
	}
	return s.inner.Done(ctx, key, ttl)
}

func (s *spy) Release(ctx context.Context, key, token string) error {
	return s.inner.Release(ctx, key, token)
}

func (s *spy) Extend(ctx context.Context, key, token string, lease time.Duration) (bool, error) {
	return s.inner.Extend(ctx, key, token, lease)
}

func (s *spy) ClaimBatch(ctx context.Context, reqs []dedupe.ClaimRequest) ([]dedupe.Outcome, error) {
	keys := make([]string, len(reqs))
	for i, r := range reqs {
		keys[i] = r.Key
	}
	if err := s.enter(ctx, trip{op: "claim-batch", n: len(reqs)}, keys...); err != nil {
		return nil, err
	}
	if s.batchErr != nil {
		return nil, s.batchErr
	}
	return s.inner.ClaimBatch(ctx, reqs)
}

func (s *spy) DoneBatch(ctx context.Context, keys []string, ttl time.Duration) error {
	if err := s.enter(ctx, trip{op: "done-batch", n: len(keys), ttl: ttl}, keys...); err != nil {
		return err
	}
	if s.batchErr != nil {
		return s.batchErr
	}
	return s.inner.DoneBatch(ctx, keys, ttl)
}

// call is one Claim or Done made on a goroutine of its own. Its results are
// set when done is closed.
type call struct {
	key, token string
	out        dedupe.Outcome
	err        error
	done       chan struct{}
}

// goClaim starts Claim(key, token, longLease) and returns once it has been
// sent or queued, or has returned.
func goClaim(ctx context.Context, s dedupe.Store, key, token string) *call {
	c := &call{key: key, token: token, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.out, c.err = s.Claim(ctx, key, token, longLease)
	}()
	synctest.Wait()
	return c
}

// goDone starts Done(key, ttl) like goClaim.
func goDone(ctx context.Context, s dedupe.Store, key string, ttl time.Duration) *call {
	c := &call{key: key, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = s.Done(ctx, key, ttl)
	}()
	synctest.Wait()
	return c
}

func (c *call) returned() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func expectTrips(t *testing.T, s *spy, want string) {
	t.Helper()
	if got := s.tripsSoFar(); got != want {
		t.Fatalf("round trips %s, want %s", got, want)
	}
}

// Claims queued behind the one being sent go in one ClaimBatch, in the order
// they were made, and each caller gets its own outcome: the outcomes differ
// from one caller to the next, so a mix-up shows.
func TestCoalescerBatchesQueuedClaims(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSpy(t)
		mem := s.inner
		expectClaim(t, mem, "owned", "other", longLease, dedupe.Claimed)
		expectClaim(t, mem, "finished", "other", longLease, dedupe.Claimed)
		done(t, mem, "finished", longTTL)
		c := dedupe.NewCoalescer(s, dedupe.CoalescerConfig{})

		first := goClaim(t.Context(), c, "first", "a")
		queued := []struct {
			key, token string
			want       dedupe.Outcome
		}{
			{"fresh1", "a", dedupe.Claimed},
			{"owned", "a", dedupe.Busy},
			{"finished", "a", dedupe.Duplicate},
			{"race", "a", dedupe.Claimed}, // in order: the first request wins
			{"race", "b", dedupe.Busy},
			{"owned", "other", dedupe.Claimed},
			{"fresh2", "b", dedupe.Claimed},
			{"finished", "b", dedupe.Duplicate},
			{"race", "c", dedupe.Busy},
			{"first", "b", dedupe.Busy}, // after the first call, which was sent before
		}
		calls := make([]*call, len(queued))
		for i, q := range queued {
			calls[i] = goClaim(t.Context(), c, q.key, q.token)
		}
		expectTrips(t, s, "claims [claim(1)] dones []")
		for i, cl := range append(calls, first) {
			if cl.returned() {
				t.Fatalf("call %d (%s by %s) returned before its round trip", i, cl.key, cl.token)
			}
		}

		s.release()
		synctest.Wait()
		expectTrips(t, s, fmt.Sprintf("claims [claim(1) claim-batch(%d)] dones []", len(queued)))
		if !first.returned() || first.err != nil || first.out != dedupe.Claimed {
			t.Fatalf("first call: %v, %v; want claimed", first.out, first.err)
		}
		for i, q := range queued {
			cl := calls[i]
			if !cl.returned() || cl.err != nil || cl.out != q.want {
				t.Errorf("queued call %d, %s by %s: %v, %v; want %v", i, q.key, q.token, cl.out, cl.err, q.want)
			}
			// The store agrees: an owner's claim answers Claimed again, and
			// Busy and Duplicate change nothing.
			expectClaim(t, mem, q.key, q.token, longLease, q.want)
		}
	})
}

// A queue longer than MaxBatch goes in several batches, oldest first; a batch
// of one is sent as a plain Claim.
func TestCoalescerMaxBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSpy(t)
		c := dedupe.NewCoalescer(s, dedupe.CoalescerConfig{MaxBatch: 3})
		calls := []*call{goClaim(t.Context(), c, "k0", "a")}
		for i := 1; i <= 7; i++ {
			calls = append(calls, goClaim(t.Context(), c, fmt.Sprintf("k%d", i%4), "a"))
		}
		s.release()
		synctest.Wait()
		expectTrips(t, s, "claims [claim(1) claim-batch(3) claim-batch(3) claim(1)] dones []")
		for i, cl := range calls {
			if cl.err != nil || cl.out != dedupe.Claimed {
				t.Errorf("call %d (%s): %v, %v; want claimed", i, cl.key, cl.out, cl.err)
			}
		}
	})
}

// Done calls batch in a lane of their own, one batch per ttl (in whole
// milliseconds), and each key gets its own caller's ttl.
func TestCoalescerDoneBatchesByTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const short, long = time.Minute, time.Hour
		s := newSpy(t)
		mem := s.inner
		c := dedupe.NewCoalescer(s, dedupe.CoalescerConfig{})

		claimDuring := goClaim(t.Context(), c, "claimed", "a") // the claim lane is busy too
		calls := []*call{
			goDone(t.Context(), c, "first", long),
			goDone(t.Context(), c, "long1", long),
			goDone(t.Context(), c, "short1", short),
			goDone(t.Context(), c, "long2", long+500*time.Microsecond), // the same ttl in ms
			goDone(t.Context(), c, "short2", short),
			goDone(t.Context(), c, "long3", long),
		}
		expectTrips(t, s, "claims [claim(1)] dones [done(1, 1h0m0s)]")
		s.release()
		synctest.Wait()
		expectTrips(t, s, "claims [claim(1)] dones [done(1, 1h0m0s) done-batch(3, 1h0m0s) done-batch(2, 1m0s)]")
		for _, cl := range append(calls, claimDuring) {
			if cl.err != nil {
				t.Fatalf("%s: %v", cl.key, cl.err)
			}
		}
		time.Sleep(short) // fake time: the short ttl has run out, the long one has not
		for _, cl := range calls {
			want := dedupe.Duplicate
			if strings.HasPrefix(cl.key, "short") {
				want = dedupe.Claimed
			}
			expectClaim(t, mem, cl.key, "b", longLease, want)
		}
	})
}

// A batch's error goes to every caller in it, ErrUnavailable wrapped as
// such; a reply error of one request goes to its own caller only; a batch
// that runs out of its Timeout is ErrUnavailable, not the callers' ctx error.
func TestCoalescerBatchErrors(t *testing.T) {
	const timeout = 2 * time.Second
	unavailable := fmt.Errorf("%w: claim batch of 3: connection reset by peer", dedupe.ErrUnavailable)
	cases := []struct {
		name     string
		batchErr error  // of the spy
		badKey   string // of the spy
		hang     bool   // the store never answers: cancel the first calls instead of opening the gate
		check    func(cl *call) error
		rounds   string
	}{
		{
			name:     "unavailable",
			batchErr: unavailable,
			check: func(cl *call) error {
				if !errors.Is(cl.err, dedupe.ErrUnavailable) {
					return fmt.Errorf("error %v, want ErrUnavailable", cl.err)
				}
				return nil
			},
			rounds: "claims [claim(1) claim-batch(3)] dones [done(1, 1h0m0s) done-batch(3, 1h0m0s)]",
		},
		{
			name:   "reply error of one key",
			badKey: "bad",
			check: func(cl *call) error {
				switch {
				case cl.key == "bad" && (!errors.Is(cl.err, errWrongType) || errors.Is(cl.err, dedupe.ErrUnavailable)):
					return fmt.Errorf("error %v, want WRONGTYPE and not ErrUnavailable", cl.err)
				case cl.key != "bad" && cl.err != nil:
					return fmt.Errorf("error %v of another key's request", cl.err)
				case cl.key != "bad" && cl.token != "" && cl.out != dedupe.Claimed:
					return fmt.Errorf("outcome %v, want claimed", cl.out)
				}
				return nil
			},
			rounds: "claims [claim(1) claim-batch(3) claim(1) claim(1) claim(1)] " +
				"dones [done(1, 1h0m0s) done-batch(3, 1h0m0s) done(1, 1h0m0s) done(1, 1h0m0s) done(1, 1h0m0s)]",
		},
		{
			name: "timeout",
			hang: true,
			check: func(cl *call) error {
				if !errors.Is(cl.err, dedupe.ErrUnavailable) || errors.Is(cl.err, context.DeadlineExceeded) {
					return fmt.Errorf("error %v, want ErrUnavailable and not DeadlineExceeded", cl.err)
				}
				return nil
			},
			rounds: "claims [claim(1) claim-batch(3)] dones [done(1, 1h0m0s) done-batch(3, 1h0m0s)]",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSpy(t)
				s.batchErr, s.badKey = tc.batchErr, tc.badKey
				c := dedupe.NewCoalescer(s, dedupe.CoalescerConfig{Timeout: timeout})
				firstCtx, cancelFirst := context.WithCancel(t.Context())
				firstClaim := goClaim(firstCtx, c, "first", "a")
				firstDone := goDone(firstCtx, c, "first", longTTL)
				var calls []*call
				for _, k := range []string{"a", "bad", "c"} {
					doneKey := "done-" + k // the lanes run concurrently: keep their keys apart
					if k == "bad" {
						doneKey = k
					}
					calls = append(calls, goClaim(t.Context(), c, k, "a"), goDone(t.Context(), c, doneKey, longTTL))
				}
				if tc.hang {
					cancelFirst() // the batches are sent now, and hang
					time.Sleep(timeout - time.Millisecond)
					synctest.Wait()
					for _, cl := range calls {
						if cl.returned() {
							t.Fatalf("%s returned %v before the batch timeout", cl.key, cl.err)
						}
					}
					time.Sleep(time.Millisecond)
				} else {
					s.release()
				}
				synctest.Wait()
				cancelFirst()
				if tc.hang {
					if !errors.Is(firstClaim.err, context.Canceled) || !errors.Is(firstDone.err, context.Canceled) {
						t.Errorf("first calls: %v, %v; want their own ctx error", firstClaim.err, firstDone.err)
					}
				} else if firstClaim.err != nil || firstDone.err != nil {
					t.Errorf("first calls: %v, %v; want no error", firstClaim.err, firstDone.err)
				}
				for _, cl := range calls {
					if !cl.returned() {
						t.Fatalf("%s has not returned", cl.key)
					}
					if err := cl.check(tc.check); err != nil {
						t.Errorf("%s (token %q): %v", cl.key, cl.token, err)
					}
				}
				expectTrips(t, s, tc.rounds)
			})
		})
	}
}

func (c *call) check(f func(*call) error) error { return f(c) }

// A queued caller whose ctx ends returns at once with its ctx error; the
// batch it was in goes ahead for the others.
func TestCoalescerCallerGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSpy(t)
		c := dedupe.NewCoalescer(s, dedupe.CoalescerConfig{})
		first := goClaim(t.Context(), c, "first", "a")
		quitter, quit := context.WithCancel(t.Context())
		others := []*call{goClaim(t.Context(), c, "k1", "a")}
		gaveUpClaim := goClaim(quitter, c, "k2", "a")
		gaveUpDone := goDone(quitter, c, "k3", longTTL) // the done lane is idle: sent at once, held
		others = append(others, goClaim(t.Context(), c, "k4", "a"), goDone(t.Context(), c, "k5", longTTL))
		quit()
		synctest.Wait()
		for _, cl := range []*call{gaveUpClaim, gaveUpDone} {
			if !cl.returned() || !errors.Is(cl.err, context.Canceled) || errors.Is(cl.err, dedupe.ErrUnavailable) {
				t.Fatalf("%s after its ctx ended: returned %v, error %v; want context.Canceled at once", cl.key, cl.returned(), cl.err)
			}
		}
		for _, cl := range append(others, first) {
			if cl.returned() {
				t.Fatalf("%s returned before its round trip: %v", cl.key, cl.err)
			}
		}
		s.release()
		synctest.Wait()
		for _, cl := range append(others, first) {
			if cl.err != nil || (cl.token != "" && cl.out != dedupe.Claimed) {
				t.Errorf("%s: %v, %v; want claimed or done", cl.key, cl.out, cl.err)
			}
		}
		// k2 went out with its batch although its caller had left, and k5
		// was sent after the held k3 had given up.
		expectTrips(t, s, "claims [claim(1) claim-batch(3)] dones [done(1, 1h0m0s) done(1, 1h0m0s)]")
	})
}

// Invalid arguments fail their own call at once, even while calls queue, and
// never reach a batch.
func TestCoalescerInvalidArgumentsWhileQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSpy(t)
		c := dedupe.NewCoalescer(s, dedupe.CoalescerConfig{})
		goClaim(t.Context(), c, "first", "a")
		goDone(t.Context(), c, "first", longTTL)
		valid := []*call{goClaim(t.Context(), c, "k1", "a"), goDone(t.Context(), c, "k2", longTTL)}
		invalid := []*call{
			goClaim(t.Context(), c, "k3", ""),
			goDone(t.Context(), c, "k4", 0),
		}
		for _, cl := range invalid {
			if !cl.returned() || cl.err == nil || errors.Is(cl.err, dedupe.ErrUnavailable) {
				t.Fatalf("invalid call on %s: returned %v, error %v; want an error at once", cl.key, cl.returned(), cl.err)
			}
		}
		s.release()
		synctest.Wait()
		for _, cl := range valid {
			if cl.err != nil {
				t.Errorf("%s: %v", cl.key, cl.err)
			}
		}
		expectTrips(t, s, "claims [claim(1) claim(1)] dones [done(1, 1h0m0s) done(1, 1h0m0s)]")
	})
}

// Close waits for what is queued and in flight, then later calls fail with
// ErrUnavailable.
func TestCoalescerClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSpy(t)
		c := dedupe.NewCoalescer(s, dedupe.CoalescerConfig{})
		calls := []*call{goClaim(t.Context(), c, "k1", "a"), goClaim(t.Context(), c, "k2", "a"), goDone(t.Context(), c, "k3", longTTL)}
		closed := make(chan struct{})
		go func() {
			c.Close()
			close(closed)
		}()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned while calls were in flight")
		default:
		}
		if _, err := c.Claim(t.Context(), "k4", "a", longLease); !errors.Is(err, dedupe.ErrUnavailable) {
			t.Errorf("Claim after Close: %v, want ErrUnavailable", err)
		}
		if err := c.Done(t.Context(), "k4", longTTL); !errors.Is(err, dedupe.ErrUnavailable) {
			t.Errorf("Done after Close: %v, want ErrUnavailable", err)
		}
		s.release()
		synctest.Wait()
		select {
		case <-closed:
		default:
			t.Fatal("Close did not return once the calls were done")
		}
		for _, cl := range calls {
			if cl.err != nil {
				t.Errorf("%s: %v", cl.key, cl.err)
			}
		}
	})
}

// Without a Batcher inside, or with MaxBatch 1, every call goes straight to
// the inner store, concurrent or not.
func TestCoalescerPassThrough(t *testing.T) {
	for _, tc := range []struct {
		name  string
		inner func(*spy) dedupe.Store
		cfg   dedupe.CoalescerConfig
	}{
		{"inner not a Batcher", func(s *spy) dedupe.Store { return struct{ dedupe.Store }{s} }, dedupe.CoalescerConfig{}},
		{"MaxBatch 1", func(s *spy) dedupe.Store { return s }, dedupe.CoalescerConfig{MaxBatch: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSpy(t)
				c := dedupe.NewCoalescer(tc.inner(s), tc.cfg)
				calls := []*call{goClaim(t.Context(), c, "k1", "a"), goClaim(t.Context(), c, "k2", "a"), goDone(t.Context(), c, "k3", longTTL)}
				expectTrips(t, s, "claims [claim(1) claim(1)] dones [done(1, 1h0m0s)]")
				s.release()
				synctest.Wait()
				for _, cl := range calls {
					if cl.err != nil {
						t.Errorf("%s: %v", cl.key, cl.err)
					}
				}
				if _, err := c.ClaimBatch(t.Context(), []dedupe.ClaimRequest{{Key: "k4", Token: "a", Lease: longLease}}); err != nil {
					t.Errorf("ClaimBatch: %v", err)
				}
			})
		})
	}
}

// 64 goroutines claim and finish keys that groups of four race for, through
// a Coalescer on a real Redis: every key has exactly one owner, is Duplicate
// once done, and the calls share round trips. No flusher is left afterwards.
func TestCoalescerConcurrentRedis(t *testing.T) {
	const goroutines, rounds, racers = 64, 100, 4
	srv := services.NewRedis(t)
	redisStore := dedupe.NewRedis(newClient(t, srv.Addr), uniquePrefix(t))
	s := &spy{inner: redisStore}
	c := dedupe.NewCoalescer(s, dedupe.CoalescerConfig{})

	keyOf := func(g, i int) string { return fmt.Sprintf("k%d", (i*goroutines+g)/racers) }
	outs := make([][]dedupe.Outcome, goroutines)
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range goroutines {
		outs[g] = make([]dedupe.Outcome, rounds)
		wg.Go(func() {
			<-start
			token := fmt.Sprintf("token-%d", g)
			for i := range rounds {
				key := keyOf(g, i)
				o, err := c.Claim(t.Context(), key, token, longLease)
				if err != nil {
					errs <- fmt.Errorf("Claim(%s, %s): %w", key, token, err)
					return
				}
				outs[g][i] = o
				if o == dedupe.Claimed {
					if err := c.Done(t.Context(), key, longTTL); err != nil {
						errs <- fmt.Errorf("Done(%s): %w", key, err)
						return
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	owners := map[string]int{}
	for g := range goroutines {
		for i, o := range outs[g] {
			switch o {
			case dedupe.Claimed:
				owners[keyOf(g, i)]++
			case dedupe.Busy, dedupe.Duplicate:
			default:
				t.Fatalf("goroutine %d round %d: outcome %v", g, i, o)
			}
		}
	}
	keys := goroutines * rounds / racers
	for k := range keys {
		key := fmt.Sprintf("k%d", k)
		if owners[key] != 1 {
			t.Errorf("%s claimed by %d owners, want 1", key, owners[key])
		}
		expectClaim(t, redisStore, key, "late", longLease, dedupe.Duplicate)
	}

	s.mu.Lock()
	var claimCalls, claimTrips, doneCalls, doneTrips, biggest int
	for _, tr := range s.trips {
		switch tr.op {
		case "claim", "claim-batch":
			claimCalls, claimTrips = claimCalls+tr.n, claimTrips+1
		case "done", "done-batch":
			doneCalls, doneTrips = doneCalls+tr.n, doneTrips+1
		}
		biggest = max(biggest, tr.n)
	}
	s.mu.Unlock()
	t.Logf("%d claims in %d round trips, %d dones in %d; biggest batch %d", claimCalls, claimTrips, doneCalls, doneTrips, biggest)
	if claimCalls != goroutines*rounds || doneCalls != keys {
		t.Errorf("inner store saw %d claims and %d dones, want %d and %d", claimCalls, doneCalls, goroutines*rounds, keys)
	}
	// Claims batch well (a tenth as many round trips, typically); dones,
	// a quarter as many and spread out by the claims, under half on an idle
	// machine, but not by enough of a margin on a loaded one.
	if claimTrips >= claimCalls/2 {
		t.Errorf("%d claims took %d round trips, want under half as many", claimCalls, claimTrips)
	}
	if doneTrips >= doneCalls {
		t.Errorf("%d dones took %d round trips, want fewer", doneCalls, doneTrips)
	}

	c.Close()
	if n := flushers(); n != 0 {
		t.Errorf("%d flusher goroutines left after Close", n)
	}
}

// flushers counts the goroutines running a Coalescer's flush.
func flushers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "dedupe.(*Coalescer).flush(")
		}
		buf = make([]byte, 2*len(buf))
	}
}
