package dedupe_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/e2e/services"
)

// Durations of the contract suite. Short ones are real: expiry is observed by
// polling until a deadline, never by sleeping a guessed amount.
const (
	longLease  = time.Minute
	longTTL    = time.Hour
	shortLease = 150 * time.Millisecond
	shortTTL   = 150 * time.Millisecond
	waitFor    = 5 * time.Second       // deadline of every poll
	pollEvery  = 10 * time.Millisecond // interval of every poll
	clockSlack = 10 * time.Millisecond // Redis expires on its own ms wall clock
)

// runContract is the one suite every Store passes. newStore returns an empty
// store for one subtest: a fresh Memory, or a Redis store with a key prefix of
// its own on a shared server.
func runContract(t *testing.T, newStore func(t *testing.T) dedupe.Store) {
	cases := []struct {
		name string
		run  func(t *testing.T, s dedupe.Store)
	}{
		{"FreshClaim", testFreshClaim},
		{"OwnerClaimsAgain", testOwnerClaimsAgain},
		{"OtherTokenBusy", testOtherTokenBusy},
		{"DoneIsDuplicateForAll", testDoneIsDuplicate},
		{"OwnerRelease", testOwnerRelease},
		{"NonOwnerRelease", testNonOwnerRelease},
		{"LeaseExpiry", testLeaseExpiry},
		{"OwnerClaimDoesNotExtendLease", testOwnerClaimDoesNotExtendLease},
		{"DoneOutlivesLease", testDoneOutlivesLease},
		{"DoneTTLExpiry", testDoneTTLExpiry},
		{"ManyExpireAtOnce", testManyExpireAtOnce},
		{"ExtendKeepsOwnerOnly", testExtend},
		{"ConcurrentClaimsOneOwner", testConcurrentClaims},
		{"BatchEqualsSingleCalls", testBatchEqualsSingle},
		{"DistinctKeysIndependent", testDistinctKeys},
		{"InvalidArguments", testInvalidArguments},
		{"CancelledContext", testCancelledContext},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, newStore(t))
		})
	}
}

func TestMemoryContract(t *testing.T) {
	runContract(t, func(*testing.T) dedupe.Store { return dedupe.NewMemory() })
}

// The Coalescer passes the suite on both stores it is used on. The suite's
// sequential calls take its direct path and its concurrent ones its batches;
// coalesce_test.go forces batches of every kind.
func TestCoalescedMemoryContract(t *testing.T) {
	runContract(t, func(*testing.T) dedupe.Store {
		return dedupe.NewCoalescer(dedupe.NewMemory(), dedupe.CoalescerConfig{})
	})
}

func TestCoalescedRedisContract(t *testing.T) {
	srv := services.NewRedis(t)
	client := newClient(t, srv.Addr)
	runContract(t, func(t *testing.T) dedupe.Store {
		c := dedupe.NewCoalescer(dedupe.NewRedis(client, uniquePrefix(t)), dedupe.CoalescerConfig{})
		t.Cleanup(c.Close)
		return c
	})
}

func testFreshClaim(t *testing.T, s dedupe.Store) {
	expectClaim(t, s, "k", "a", longLease, dedupe.Claimed)
}

// A claim retried by go-redis after a dropped connection finds its own first
// write; so does an owner that claims twice. Neither takes the key from the
// owner or hands it to anyone else.
func testOwnerClaimsAgain(t *testing.T, s dedupe.Store) {
	expectClaims(t, s, "k", longLease, []step{
		{"a", dedupe.Claimed},
		{"a", dedupe.Claimed},
		{"b", dedupe.Busy},
		{"a", dedupe.Claimed},
	})
}

// A Busy claim must change nothing: the owner still owns the key afterwards
// and its Release frees it (a claim that overwrote the owner would fail here).
func testOtherTokenBusy(t *testing.T, s dedupe.Store) {
	expectClaims(t, s, "k", longLease, []step{
		{"a", dedupe.Claimed},
		{"b", dedupe.Busy},
		{"b", dedupe.Busy},
		{"c", dedupe.Busy},
		{"a", dedupe.Claimed},
	})
	release(t, s, "k", "a")
	expectClaim(t, s, "k", "d", longLease, dedupe.Claimed)
}

func testDoneIsDuplicate(t *testing.T, s dedupe.Store) {
	expectClaim(t, s, "k", "a", longLease, dedupe.Claimed)
	done(t, s, "k", longTTL)
	expectClaims(t, s, "k", longLease, []step{
		{"a", dedupe.Duplicate}, // the owner too
		{"b", dedupe.Duplicate},
		{"b", dedupe.Duplicate}, // a Duplicate claim did not overwrite done
		{"c", dedupe.Duplicate},
	})
	// Releasing a done key does nothing, whoever asks.
	release(t, s, "k", "a")
	release(t, s, "k", "b")
	expectClaim(t, s, "k", "c", longLease, dedupe.Duplicate)

	// Done is unconditional: the event was delivered, even if the claim was
	// lost (lease expired, or never made).
	done(t, s, "unclaimed", longTTL)
	expectClaim(t, s, "unclaimed", "a", longLease, dedupe.Duplicate)
	expectClaim(t, s, "other-owner", "x", longLease, dedupe.Claimed)
	done(t, s, "other-owner", longTTL)
	expectClaim(t, s, "other-owner", "x", longLease, dedupe.Duplicate)
}

func testOwnerRelease(t *testing.T, s dedupe.Store) {
	expectClaim(t, s, "k", "a", longLease, dedupe.Claimed)
	release(t, s, "k", "a")
	expectClaims(t, s, "k", longLease, []step{
		{"b", dedupe.Claimed},
		{"a", dedupe.Busy}, // the old owner is now just another token
	})
	release(t, s, "k", "a") // a stale owner's release leaves b's claim alone
	expectClaim(t, s, "k", "c", longLease, dedupe.Busy)
	release(t, s, "absent", "a") // releasing nothing is not an error
}

func testNonOwnerRelease(t *testing.T, s dedupe.Store) {
	expectClaim(t, s, "k", "a", longLease, dedupe.Claimed)
	release(t, s, "k", "b")
	expectClaims(t, s, "k", longLease, []step{
		{"b", dedupe.Busy},
		{"c", dedupe.Busy},
		{"a", dedupe.Claimed},
	})
}

// An owner that dies loses the key when its lease runs out, not before; when
// it comes back its release must not free the new owner's claim.
func testLeaseExpiry(t *testing.T, s dedupe.Store) {
	start := time.Now()
	expectClaim(t, s, "k", "a", shortLease, dedupe.Claimed)
	expectClaim(t, s, "k", "b", longLease, dedupe.Busy)
	at := pollClaimed(t, s, "k", "b", longLease)
	if early := shortLease - at.Sub(start); early > clockSlack {
		t.Fatalf("lease of %v expired after %v", shortLease, at.Sub(start))
	}
	expectClaim(t, s, "k", "a", longLease, dedupe.Busy)
	release(t, s, "k", "a")
	expectClaims(t, s, "k", longLease, []step{
		{"c", dedupe.Busy},
		{"b", dedupe.Claimed},
	})
}

// Claim by the owner reports Claimed without extending the lease (SET NX does
// not touch an existing key); extending would need a separate command.
func testOwnerClaimDoesNotExtendLease(t *testing.T, s dedupe.Store) {
	expectClaim(t, s, "k", "a", shortLease, dedupe.Claimed)
	expectClaim(t, s, "k", "a", longLease, dedupe.Claimed)
	pollClaimed(t, s, "k", "b", longLease)
}

// Done replaces the lease by the done TTL: a key finished within its lease
// stays done after the lease would have run out.
func testDoneOutlivesLease(t *testing.T, s dedupe.Store) {
	expectClaim(t, s, "finished", "a", shortLease, dedupe.Claimed)
	expectClaim(t, s, "witness", "a", shortLease, dedupe.Claimed)
	done(t, s, "finished", longTTL)
	pollClaimed(t, s, "witness", "b", longLease) // the lease has run out now
	expectClaim(t, s, "finished", "b", longLease, dedupe.Duplicate)
}

func testDoneTTLExpiry(t *testing.T, s dedupe.Store) {
	expectClaim(t, s, "k", "a", longLease, dedupe.Claimed)
	start := time.Now()
	done(t, s, "k", shortTTL)
	expectClaim(t, s, "k", "b", longLease, dedupe.Duplicate)
	at := pollClaimed(t, s, "k", "b", longLease)
	if early := shortTTL - at.Sub(start); early > clockSlack {
		t.Fatalf("done TTL of %v expired after %v", shortTTL, at.Sub(start))
	}
}

// When many leases run out together, every key is claimable at once, not
// only after some cleanup has reached it: a batch for a tenth of the keys
// finds each of them free.
func testManyExpireAtOnce(t *testing.T, s dedupe.Store) {
	const n, probe = 1000, 100
	b := s.(dedupe.Batcher)
	claimAll := func(token string, lease time.Duration, n int) {
		t.Helper()
		reqs := make([]dedupe.ClaimRequest, n)
		for i := range reqs {
			reqs[i] = dedupe.ClaimRequest{Key: fmt.Sprintf("k%d", i), Token: token, Lease: lease}
		}
		outs, err := b.ClaimBatch(t.Context(), reqs)
		if err != nil {
			t.Fatalf("ClaimBatch by %s: %v", token, err)
		}
		for i, o := range outs {
			if o != dedupe.Claimed {
				t.Fatalf("k%d by %s: %v, want claimed", i, token, o)
			}
		}
	}
	claimAll("a", shortLease, n)
	// Wait out the leases without calling the store: a call could clean up
	// some keys, and this case is about keys that no cleanup has reached.
	// Every lease started before now, so it has ended by this instant.
	allExpired := time.Now().Add(shortLease + clockSlack)
	select {
	case <-t.Context().Done():
		t.Fatal(t.Context().Err())
	case <-time.After(time.Until(allExpired)):
	}
	claimAll("b", longLease, probe)
}

// 32 goroutines race for each of several keys with distinct tokens: exactly one
// wins each key, the others see Busy.
func testConcurrentClaims(t *testing.T, s dedupe.Store) {
	const goroutines, keys = 32, 8
	for k := range keys {
		key := fmt.Sprintf("k%d", k)
		outs := make([]dedupe.Outcome, goroutines)
		errs := make([]error, goroutines)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				<-start
				outs[g], errs[g] = s.Claim(t.Context(), key, fmt.Sprintf("token-%d", g), longLease)
			})
		}
		close(start)
		wg.Wait()
		count := map[dedupe.Outcome]int{}
		for g := range goroutines {
			if errs[g] != nil {
				t.Fatalf("%s: goroutine %d: %v", key, g, errs[g])
			}
			count[outs[g]]++
		}
		if count[dedupe.Claimed] != 1 || count[dedupe.Busy] != goroutines-1 {
			t.Fatalf("%s: outcomes %v, want 1 claimed and %d busy", key, count, goroutines-1)
		}
	}
}

// The batch calls give exactly what the same single calls give, in order,
// for keys in every state, including a key repeated within one batch.
func testBatchEqualsSingle(t *testing.T, s dedupe.Store) {
	b, ok := s.(dedupe.Batcher)
	if !ok {
		t.Fatalf("%T does not implement Batcher", s)
	}
	// Two copies of the same states under the namespaces "single/" and
	// "batch/": fresh, owned by "own", owned by "other", done, released.
	for _, ns := range []string{"single/", "batch/"} {
		expectClaim(t, s, ns+"own", "own", longLease, dedupe.Claimed)
		expectClaim(t, s, ns+"other", "other", longLease, dedupe.Claimed)
		expectClaim(t, s, ns+"done", "own", longLease, dedupe.Claimed)
		done(t, s, ns+"done", longTTL)
		expectClaim(t, s, ns+"released", "other", longLease, dedupe.Claimed)
		release(t, s, ns+"released", "other")
	}
	reqs := []dedupe.ClaimRequest{
		{Key: "fresh", Token: "own", Lease: longLease},
		{Key: "own", Token: "own", Lease: longLease},
		{Key: "other", Token: "own", Lease: longLease},
		{Key: "done", Token: "own", Lease: longLease},
		{Key: "done", Token: "other", Lease: longLease},
		{Key: "released", Token: "own", Lease: longLease},
		{Key: "twice", Token: "own", Lease: longLease}, // in order: the first request wins
		{Key: "twice", Token: "other", Lease: longLease},
	}
	want := []dedupe.Outcome{
		dedupe.Claimed, dedupe.Claimed, dedupe.Busy, dedupe.Duplicate, dedupe.Duplicate,
		dedupe.Claimed, dedupe.Claimed, dedupe.Busy,
	}
	single := make([]dedupe.Outcome, len(reqs))
	batch := make([]dedupe.ClaimRequest, len(reqs))
	for i, r := range reqs {
		o, err := s.Claim(t.Context(), "single/"+r.Key, r.Token, r.Lease)
		if err != nil {
			t.Fatalf("Claim(%s, %s): %v", r.Key, r.Token, err)
		}
		single[i] = o
		batch[i] = dedupe.ClaimRequest{Key: "batch/" + r.Key, Token: r.Token, Lease: r.Lease}
	}
	got, err := b.ClaimBatch(t.Context(), batch)
	if err != nil {
		t.Fatalf("ClaimBatch: %v", err)
	}
	for i, r := range reqs {
		if single[i] != want[i] || got[i] != want[i] {
			t.Errorf("%s by %s: single %v, batch %v, want %v", r.Key, r.Token, single[i], got[i], want[i])
		}
	}
	if len(got) != len(reqs) {
		t.Fatalf("ClaimBatch returned %d outcomes for %d requests", len(got), len(reqs))
	}

	// DoneBatch: the same keys finished one by one and in one batch end up in
	// the same state.
	keys := []string{"fresh", "other", "never-claimed", "fresh"}
	for _, k := range keys {
		done(t, s, "single/"+k, longTTL)
	}
	batchKeys := make([]string, len(keys))
	for i, k := range keys {
		batchKeys[i] = "batch/" + k
	}
	if err := b.DoneBatch(t.Context(), batchKeys, longTTL); err != nil {
		t.Fatalf("DoneBatch: %v", err)
	}
	for _, k := range append(keys, "own", "released", "twice", "untouched") {
		one := claim(t, s, "single/"+k, "third", longLease)
		two := claim(t, s, "batch/"+k, "third", longLease)
		if one != two {
			t.Errorf("after Done/DoneBatch, %s: single %v, batch %v", k, one, two)
		}
	}
	expectClaim(t, s, "batch/never-claimed", "x", longLease, dedupe.Duplicate)

	// Empty batches are fine and touch nothing.
	if outs, err := b.ClaimBatch(t.Context(), nil); err != nil || len(outs) != 0 {
		t.Fatalf("ClaimBatch(nil) = %v, %v; want no outcomes and no error", outs, err)
	}
	if err := b.DoneBatch(t.Context(), nil, longTTL); err != nil {
		t.Fatalf("DoneBatch(nil): %v", err)
	}
}

// Keys of different (sink, event id) pairs differ even when a sink name or an
// id contains the separator or the escape character, and the store keeps them
// apart.
func testDistinctKeys(t *testing.T, s dedupe.Store) {
	pairs := []struct{ a, b [2]string }{
		{[2]string{"a:b", "c"}, [2]string{"a", "b:c"}},
		{[2]string{"a", ":b"}, [2]string{"a:", "b"}},
		{[2]string{"", "a:b"}, [2]string{"a", "b"}},
		{[2]string{"a%3A", "b"}, [2]string{"a:", "b"}},
		{[2]string{"a%", "3A:b"}, [2]string{"a:", "b"}},
		{[2]string{"a%25", "b"}, [2]string{"a%", "b"}},
		{[2]string{"profile", "x"}, [2]string{"profile:x", ""}},
		{[2]string{"profile", ""}, [2]string{"", "profile:"}},
		{[2]string{"email", "1"}, [2]string{"profile", "1"}},
	}
	for i, p := range pairs {
		ka, kb := dedupe.Key(p.a[0], p.a[1]), dedupe.Key(p.b[0], p.b[1])
		if ka == kb {
			t.Errorf("Key%q and Key%q are both %q", p.a, p.b, ka)
			continue
		}
		ns := fmt.Sprintf("pair%d/", i) // pairs share keys; keep them apart
		ka, kb = ns+ka, ns+kb
		expectClaim(t, s, ka, "a", longLease, dedupe.Claimed)
		expectClaim(t, s, kb, "b", longLease, dedupe.Claimed)
		done(t, s, ka, longTTL)
		expectClaim(t, s, kb, "c", longLease, dedupe.Busy)
	}
	if got, want := dedupe.Key("profile", "0b6f:1"), "profile:0b6f:1"; got != want {
		t.Errorf("Key(profile, 0b6f:1) = %q, want %q (valid sink names are not escaped)", got, want)
	}
}

// Invalid arguments are errors, but not ErrUnavailable (retrying cannot help),
// and they change nothing: a batch with one bad request claims none.
func testInvalidArguments(t *testing.T, s dedupe.Store) {
	b := s.(dedupe.Batcher)
	ctx := t.Context()
	cases := []struct {
		name string
		call func() error
	}{
		{"claim empty token", func() error { _, err := s.Claim(ctx, "k", "", longLease); return err }},
		{"claim zero lease", func() error { _, err := s.Claim(ctx, "k", "a", 0); return err }},
		{"claim negative lease", func() error { _, err := s.Claim(ctx, "k", "a", -time.Second); return err }},
		{"claim lease below 1ms", func() error { _, err := s.Claim(ctx, "k", "a", time.Microsecond); return err }},
		{"done zero ttl", func() error { return s.Done(ctx, "k", 0) }},
		{"release empty token", func() error { return s.Release(ctx, "k", "") }},
		{"batch with one empty token", func() error {
			_, err := b.ClaimBatch(ctx, []dedupe.ClaimRequest{
				{Key: "k", Token: "a", Lease: longLease},
				{Key: "k2", Token: "", Lease: longLease},
			})
			return err
		}},
		{"batch done zero ttl", func() error { return b.DoneBatch(ctx, []string{"k"}, 0) }},
	}
	for _, c := range cases {
		err := c.call()
		if err == nil || errors.Is(err, dedupe.ErrUnavailable) {
			t.Errorf("%s: error %v, want a non-nil error that is not ErrUnavailable", c.name, err)
		}
	}
	expectClaim(t, s, "k", "b", longLease, dedupe.Claimed)
	expectClaim(t, s, "k2", "b", longLease, dedupe.Claimed)
}

// A ctx that has ended is reported as itself, never as ErrUnavailable, and the
// call changes nothing.
func testCancelledContext(t *testing.T, s dedupe.Store) {
	b := s.(dedupe.Batcher)
	expectClaim(t, s, "owned", "a", longLease, dedupe.Claimed)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		ctx := c.ctx
		calls := []struct {
			name string
			call func() error
		}{
			{"Claim", func() error { _, err := s.Claim(ctx, "fresh", "a", longLease); return err }},
			{"Done", func() error { return s.Done(ctx, "fresh", longTTL) }},
			{"Release", func() error { return s.Release(ctx, "owned", "a") }},
			{"ClaimBatch", func() error {
				_, err := b.ClaimBatch(ctx, []dedupe.ClaimRequest{{Key: "fresh", Token: "a", Lease: longLease}})
				return err
			}},
			{"DoneBatch", func() error { return b.DoneBatch(ctx, []string{"fresh"}, longTTL) }},
		}
		for _, call := range calls {
			err := call.call()
			if !errors.Is(err, c.want) || errors.Is(err, dedupe.ErrUnavailable) {
				t.Errorf("%s with %v ctx: error %v, want %v and not ErrUnavailable", call.name, c.want, err, c.want)
			}
		}
	}
	expectClaim(t, s, "fresh", "b", longLease, dedupe.Claimed)
	expectClaim(t, s, "owned", "b", longLease, dedupe.Busy)
}

// step is one Claim of a sequence on one key, and its expected outcome.
type step struct {
	token string
	want  dedupe.Outcome
}

func expectClaims(t *testing.T, s dedupe.Store, key string, lease time.Duration, steps []step) {
	t.Helper()
	for i, st := range steps {
		if got := claim(t, s, key, st.token, lease); got != st.want {
			t.Fatalf("step %d: Claim(%s, %s) = %v, want %v", i, key, st.token, got, st.want)
		}
	}
}

func expectClaim(t *testing.T, s dedupe.Store, key, token string, lease time.Duration, want dedupe.Outcome) {
	t.Helper()
	if got := claim(t, s, key, token, lease); got != want {
		t.Fatalf("Claim(%s, %s) = %v, want %v", key, token, got, want)
	}
}

func claim(t *testing.T, s dedupe.Store, key, token string, lease time.Duration) dedupe.Outcome {
	t.Helper()
	o, err := s.Claim(t.Context(), key, token, lease)
	if err != nil {
		t.Fatalf("Claim(%s, %s): %v", key, token, err)
	}
	return o
}

func done(t *testing.T, s dedupe.Store, key string, ttl time.Duration) {
	t.Helper()
	if err := s.Done(t.Context(), key, ttl); err != nil {
		t.Fatalf("Done(%s): %v", key, err)
	}
}

func release(t *testing.T, s dedupe.Store, key, token string) {
	t.Helper()
	if err := s.Release(t.Context(), key, token); err != nil {
		t.Fatalf("Release(%s, %s): %v", key, token, err)
	}
}

// pollClaimed claims key with token until it is Claimed, for up to waitFor,
// and returns when. A Busy or Duplicate claim changes nothing, so polling with
// Claim is safe.
func pollClaimed(t *testing.T, s dedupe.Store, key, token string, lease time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		o := claim(t, s, key, token, lease)
		now := time.Now()
		if o == dedupe.Claimed {
			return now
		}
		if now.After(deadline) {
			t.Fatalf("Claim(%s, %s) still %v after %v", key, token, o, waitFor)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(pollEvery):
		}
	}
}

// Extend renews only the owner's live pending claim: a renewed claim outlives
// its first lease; nobody else's claim, a done key, a released or an expired
// key is ever renewed or revived.
func testExtend(t *testing.T, s dedupe.Store) {
	x := s.(dedupe.Extender)
	extend := func(key, token string, lease time.Duration) bool {
		t.Helper()
		ok, err := x.Extend(t.Context(), key, token, lease)
		if err != nil {
			t.Fatalf("Extend(%s, %s): %v", key, token, err)
		}
		return ok
	}
	expectClaim(t, s, "k", "a", shortLease, dedupe.Claimed)
	start := time.Now()
	if !extend("k", "a", longLease) {
		t.Fatal("owner could not extend its claim")
	}
	if extend("k", "b", longLease) {
		t.Fatal("a non-owner extended the claim")
	}
	time.Sleep(time.Until(start.Add(shortLease + clockSlack)))
	expectClaim(t, s, "k", "b", longLease, dedupe.Busy) // still a's: the lease was renewed

	expectClaim(t, s, "gone", "a", longLease, dedupe.Claimed)
	if err := s.Release(t.Context(), "gone", "a"); err != nil {
		t.Fatal(err)
	}
	if extend("gone", "a", longLease) || extend("absent", "a", longLease) {
		t.Fatal("extended a released or absent key")
	}
	expectClaim(t, s, "gone", "b", longLease, dedupe.Claimed)

	expectClaim(t, s, "d", "a", longLease, dedupe.Claimed)
	if err := s.Done(t.Context(), "d", longLease); err != nil {
		t.Fatal(err)
	}
	if extend("d", "a", longLease) {
		t.Fatal("extended a done key")
	}
	expectClaim(t, s, "d", "a", longLease, dedupe.Duplicate)

	expectClaim(t, s, "e", "a", shortLease, dedupe.Claimed)
	time.Sleep(shortLease + clockSlack)
	if extend("e", "a", longLease) {
		t.Fatal("revived an expired claim")
	}
	expectClaim(t, s, "e", "b", longLease, dedupe.Claimed)
}
