package dedupe_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/e2e/services"
)

// inFlight is the pipeline's default max_in_flight: the number of records,
// each on its own goroutine, that claim and finish keys at once.
const inFlight = 64

// BenchmarkClaimDone is the store's share of delivering one record: Claim a
// fresh key, then Done, by 64 goroutines at once. memory is the in-process
// store, for reference; direct is Redis, one round trip per call; coalesced
// is Redis behind a Coalescer. round-trips/op counts the calls the Redis
// store was asked for (a batch is one).
//
// The Redis client has go-redis's default options, as fanout run's has: a
// pool of 10 connections per CPU, fewer than 64, so direct calls also queue
// for a connection.
func BenchmarkClaimDone(b *testing.B) {
	srv := services.NewRedis(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	b.Cleanup(func() { client.Close() })
	prefix := func() string { return "bench:" + dedupe.NewToken()[:8] + ":" }

	for _, bc := range []struct {
		name  string
		store func(trips *atomic.Int64) dedupe.Store
	}{
		{"memory", func(*atomic.Int64) dedupe.Store { return dedupe.NewMemory() }},
		{"direct", func(trips *atomic.Int64) dedupe.Store {
			return &counted{dedupe.NewRedis(client, prefix()), trips}
		}},
		{"coalesced", func(trips *atomic.Int64) dedupe.Store {
			return dedupe.NewCoalescer(&counted{dedupe.NewRedis(client, prefix()), trips}, dedupe.CoalescerConfig{})
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var trips, keys atomic.Int64
			s := bc.store(&trips)
			b.SetParallelism((inFlight + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx, token := context.Background(), dedupe.NewToken()
				for pb.Next() {
					key := strconv.FormatInt(keys.Add(1), 10)
					if o, err := s.Claim(ctx, key, token, time.Minute); err != nil || o != dedupe.Claimed {
						b.Errorf("Claim(%s): %v, %v", key, o, err)
						return
					}
					if err := s.Done(ctx, key, time.Hour); err != nil {
						b.Errorf("Done(%s): %v", key, err)
						return
					}
				}
			})
			if bc.name != "memory" {
				b.ReportMetric(float64(trips.Load())/float64(b.N), "round-trips/op")
			}
		})
	}
}

// counted is a Redis store that counts the calls it is asked for.
type counted struct {
	*dedupe.Redis
	trips *atomic.Int64
}

func (c *counted) Claim(ctx context.Context, key, token string, lease time.Duration) (dedupe.Outcome, error) {
	c.trips.Add(1)
	return c.Redis.Claim(ctx, key, token, lease)
}

func (c *counted) Done(ctx context.Context, key string, ttl time.Duration) error {
	c.trips.Add(1)
	return c.Redis.Done(ctx, key, ttl)
}

func (c *counted) ClaimBatch(ctx context.Context, reqs []dedupe.ClaimRequest) ([]dedupe.Outcome, error) {
	c.trips.Add(1)
	return c.Redis.ClaimBatch(ctx, reqs)
}

func (c *counted) DoneBatch(ctx context.Context, keys []string, ttl time.Duration) error {
	c.trips.Add(1)
	return c.Redis.DoneBatch(ctx, keys, ttl)
}
