package dedupe_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/e2e/services"
)

// Client settings for tests: a down server must be reported within about a
// second, not after go-redis's defaults (5s dial timeout, 5 dial attempts,
// 3 retries).
const (
	testDialTimeout = 200 * time.Millisecond
	testReadTimeout = 300 * time.Millisecond
	testMaxRetries  = 1
	unavailableIn   = 2 * time.Second // bound on reporting a down or hung server
)

func newClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:            addr,
		DialTimeout:     testDialTimeout,
		DialerRetries:   1,
		ReadTimeout:     testReadTimeout,
		WriteTimeout:    testReadTimeout,
		MaxRetries:      testMaxRetries,
		MinRetryBackoff: 10 * time.Millisecond,
		MaxRetryBackoff: 50 * time.Millisecond,
		PoolTimeout:     time.Second,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// uniquePrefix returns a key prefix no other test uses on a shared server.
func uniquePrefix(t *testing.T) string {
	return "test:" + t.Name() + ":" + dedupe.NewToken()[:8] + ":"
}

// TestRedisContract runs the contract suite on one real redis-server, with a
// key prefix per subtest.
func TestRedisContract(t *testing.T) {
	srv := services.NewRedis(t)
	client := newClient(t, srv.Addr)
	runContract(t, func(t *testing.T) dedupe.Store {
		return dedupe.NewRedis(client, uniquePrefix(t))
	})
}

// storeOps are the five operations, each on its own key, for the tests of
// failures that every operation must report alike.
func storeOps(s *dedupe.Redis) []struct {
	name string
	call func(ctx context.Context) error
} {
	return []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Claim", func(ctx context.Context) error { _, err := s.Claim(ctx, "claim", "a", longLease); return err }},
		{"Done", func(ctx context.Context) error { return s.Done(ctx, "done", longTTL) }},
		{"Release", func(ctx context.Context) error { return s.Release(ctx, "release", "a") }},
		{"ClaimBatch", func(ctx context.Context) error {
			_, err := s.ClaimBatch(ctx, []dedupe.ClaimRequest{
				{Key: "batch1", Token: "a", Lease: longLease},
				{Key: "batch2", Token: "a", Lease: longLease},
			})
			return err
		}},
		{"DoneBatch", func(ctx context.Context) error { return s.DoneBatch(ctx, []string{"batch1", "batch2"}, longTTL) }},
	}
}

// TestRedisServerDown stops the server: every operation reports
// ErrUnavailable, quickly. After a restart (with no keys: no persistence) the
// same store and client work again.
func TestRedisServerDown(t *testing.T) {
	srv := services.NewRedis(t)
	s := dedupe.NewRedis(newClient(t, srv.Addr), "")
	expectClaim(t, s, "warm", "a", longLease, dedupe.Claimed) // a pooled connection to lose

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, op := range storeOps(s) {
		start := time.Now()
		err := op.call(t.Context())
		took := time.Since(start)
		if !errors.Is(err, dedupe.ErrUnavailable) {
			t.Errorf("%s on a stopped server: error %v, want ErrUnavailable", op.name, err)
		}
		if took > unavailableIn {
			t.Errorf("%s on a stopped server took %v, want under %v", op.name, took, unavailableIn)
		}
		t.Logf("%s: %v after %v", op.name, err, took.Round(time.Millisecond))
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// go-redis stops dialling after PoolSize failed dials and probes the
	// server once a second in the background, so recovery is not instant.
	start := time.Now()
	deadline := start.Add(waitFor)
	for {
		_, err := s.Claim(t.Context(), "warm", "b", longLease)
		if err == nil {
			break
		}
		if !errors.Is(err, dedupe.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Claim after Restart: %v", err)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(pollEvery):
		}
	}
	t.Logf("store usable %v after Restart", time.Since(start).Round(time.Millisecond))
	for _, op := range storeOps(s) {
		if err := op.call(t.Context()); err != nil {
			t.Errorf("%s after Restart: %v", op.name, err)
		}
	}
	expectClaim(t, s, "release", "b", longLease, dedupe.Claimed) // Release's script works after the restart
	release(t, s, "release", "b")
	expectClaim(t, s, "release", "c", longLease, dedupe.Claimed)
}

// TestRedisServerHung pauses every write on a live server (CLIENT PAUSE WRITE):
// the server accepts the commands and does not answer, so every write
// operation times out and reports ErrUnavailable within the client's bounded
// retries. Once the pause ends, the owner's retry gets Claimed whether or not
// a timed-out attempt was applied meanwhile.
func TestRedisServerHung(t *testing.T) {
	srv := services.NewRedis(t)
	s := dedupe.NewRedis(newClient(t, srv.Addr), "")
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	expectClaim(t, s, "warm", "a", longLease, dedupe.Claimed)

	if err := admin.Do(t.Context(), "CLIENT", "PAUSE", 30_000, "WRITE").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	unpause := func() {
		if err := admin.Do(context.Background(), "CLIENT", "UNPAUSE").Err(); err != nil {
			t.Errorf("CLIENT UNPAUSE: %v", err)
		}
	}
	defer unpause()
	for _, op := range storeOps(s) {
		start := time.Now()
		err := op.call(t.Context())
		took := time.Since(start)
		if !errors.Is(err, dedupe.ErrUnavailable) {
			t.Errorf("%s on a hung server: error %v, want ErrUnavailable", op.name, err)
		}
		if took < testReadTimeout || took > unavailableIn {
			t.Errorf("%s on a hung server took %v, want between %v and %v", op.name, took, testReadTimeout, unavailableIn)
		}
		t.Logf("%s: %v after %v", op.name, err, took.Round(time.Millisecond))
	}
	unpause()
	v, err := admin.Get(t.Context(), dedupe.DefaultPrefix+"claim").Result()
	t.Logf("after the pause, the timed-out claim's key holds %q (%v)", v, err)
	expectClaim(t, s, "claim", "a", longLease, dedupe.Claimed)
	expectClaim(t, s, "claim", "b", longLease, dedupe.Busy)
}

// TestRedisCallerDeadline: a ctx that ends while the server hangs is reported
// as the ctx error, not as ErrUnavailable, even though go-redis sees a socket
// timeout.
func TestRedisCallerDeadline(t *testing.T) {
	srv := services.NewRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	defer client.Close()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	s := dedupe.NewRedis(client, "")
	expectClaim(t, s, "warm", "a", longLease, dedupe.Claimed)
	if err := admin.Do(t.Context(), "CLIENT", "PAUSE", 30_000, "WRITE").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	defer admin.Do(context.Background(), "CLIENT", "UNPAUSE")
	for _, op := range storeOps(s) {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		err := op.call(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, dedupe.ErrUnavailable) {
			t.Errorf("%s past the caller's deadline: error %v, want context.DeadlineExceeded and not ErrUnavailable", op.name, err)
		}
	}
}

// TestRedisServerReplyError: a reply error that retrying cannot fix (here
// WRONGTYPE, a key of another type under the store's prefix) is returned, but
// not as ErrUnavailable, so fail-open does not deliver around a bug.
func TestRedisServerReplyError(t *testing.T) {
	srv := services.NewRedis(t)
	client := newClient(t, srv.Addr)
	s := dedupe.NewRedis(client, "p:")
	if err := client.HSet(t.Context(), "p:k", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"Claim", func() error { _, err := s.Claim(t.Context(), "k", "a", longLease); return err }},
		{"Release", func() error { return s.Release(t.Context(), "k", "a") }},
		{"ClaimBatch", func() error {
			_, err := s.ClaimBatch(t.Context(), []dedupe.ClaimRequest{{Key: "k", Token: "a", Lease: longLease}})
			return err
		}},
	} {
		err := c.call()
		if err == nil || errors.Is(err, dedupe.ErrUnavailable) || !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Errorf("%s on a hash: error %v, want WRONGTYPE and not ErrUnavailable", c.name, err)
		}
	}
}

// TestRedisLayout pins what an operator sees in redis-cli: the default prefix,
// "pending:<token>" with the lease as TTL, then "done" with the done TTL.
func TestRedisLayout(t *testing.T) {
	srv := services.NewRedis(t)
	client := newClient(t, srv.Addr)
	s := dedupe.NewRedis(client, "")
	key := dedupe.Key("profile", "0b6f:1")
	const redisKey = "fanout:dedupe:profile:0b6f:1"
	token := dedupe.NewToken()

	check := func(wantValue string, minTTL, maxTTL time.Duration) {
		t.Helper()
		v, err := client.Get(t.Context(), redisKey).Result()
		if err != nil || v != wantValue {
			t.Fatalf("GET %s = %q, %v; want %q", redisKey, v, err, wantValue)
		}
		ttl, err := client.PTTL(t.Context(), redisKey).Result()
		if err != nil || ttl <= minTTL || ttl > maxTTL {
			t.Fatalf("PTTL %s = %v, %v; want in (%v, %v]", redisKey, ttl, err, minTTL, maxTTL)
		}
	}
	expectClaim(t, s, key, token, longLease, dedupe.Claimed)
	check("pending:"+token, 0, longLease)
	done(t, s, key, longTTL)
	check("done", longLease, longTTL)
}
