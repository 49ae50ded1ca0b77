package dedupe_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/e2e/services"
)

// The contract and barrier suites, plain and coalesced, on the deployments
// fanout supports besides one plain server: TLS with a least-privilege ACL
// user, a 3-master Redis Cluster, a Sentinel-managed primary/replica pair.
func runAll(t *testing.T, client redis.UniversalClient, prefix string) {
	t.Run("Contract", func(t *testing.T) {
		runContract(t, func(t *testing.T) dedupe.Store { return dedupe.NewRedis(client, prefix+uniquePrefix(t)) })
	})
	t.Run("Coalesced", func(t *testing.T) {
		runContract(t, func(t *testing.T) dedupe.Store {
			c := dedupe.NewCoalescer(dedupe.NewRedis(client, prefix+uniquePrefix(t)), dedupe.CoalescerConfig{})
			t.Cleanup(c.Close)
			return c
		})
	})
	t.Run("Barriers", func(t *testing.T) {
		runBarriers(t, func(t *testing.T) dedupe.Barriers { return dedupe.NewRedisBarriers(client, prefix+uniquePrefix(t)) })
	})
}

func secureOpts(o *redis.UniversalOptions) *redis.UniversalOptions {
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = time.Second, time.Second, time.Second
	o.MaxRetries = 2
	return o
}

// TestRedisTLSACL: the suites pass over TLS (client certificate required) as
// fanout's least-privilege user, and that user is refused a key outside its
// prefix and a command fanout does not send.
func TestRedisTLSACL(t *testing.T) {
	srv := services.NewRedisTLS(t)
	tlsCfg, err := srv.Files.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewUniversalClient(secureOpts(&redis.UniversalOptions{
		Addrs: []string{srv.Addr}, Username: srv.User, Password: srv.Password, TLSConfig: tlsCfg,
	}))
	t.Cleanup(func() { client.Close() })
	runAll(t, client, services.FanoutACLPrefix)

	ctx := t.Context()
	if err := client.Set(ctx, "elsewhere", "x", time.Minute).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("SET outside the prefix: %v, want NOPERM", err)
	}
	if err := client.Keys(ctx, services.FanoutACLPrefix+"*").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("KEYS: %v, want NOPERM", err)
	}
	// Without a client certificate the server refuses the handshake.
	noCert := tlsCfg.Clone()
	noCert.Certificates = nil
	c2 := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: srv.User, Password: srv.Password, TLSConfig: noCert, MaxRetries: -1})
	defer c2.Close()
	if err := c2.Ping(ctx).Err(); err == nil {
		t.Error("PING without a client certificate succeeded")
	}
	// Plaintext is not served.
	c3 := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: srv.User, Password: srv.Password, MaxRetries: -1, ReadTimeout: time.Second})
	defer c3.Close()
	if err := c3.Ping(ctx).Err(); err == nil {
		t.Error("plaintext PING on the TLS port succeeded")
	}
}

// TestRedisCluster: the suites pass on a real 3-master cluster as the
// least-privilege user (plus +cluster|slots); the
// coalescer's pipelines span keys of all three masters (go-redis splits a
// pipeline per node), which the test checks by counting keys per master.
func TestRedisCluster(t *testing.T) {
	cl := services.NewRedisCluster(t)
	client := redis.NewUniversalClient(secureOpts(&redis.UniversalOptions{
		Addrs: cl.Addrs(), IsClusterMode: true, Username: cl.User, Password: cl.Password,
	}))
	t.Cleanup(func() { client.Close() })
	if _, ok := client.(*redis.ClusterClient); !ok {
		t.Fatalf("client is %T, want *redis.ClusterClient", client)
	}
	runAll(t, client, services.FanoutACLPrefix)

	// One ClaimBatch and one DoneBatch over 64 keys: one pipeline each,
	// keys on every master.
	prefix := services.FanoutACLPrefix + uniquePrefix(t)
	s := dedupe.NewRedis(client, prefix)
	var reqs []dedupe.ClaimRequest
	var keys []string
	for i := range 64 {
		k := "k" + string(rune('A'+i%26)) + strings.Repeat("x", i/26)
		keys = append(keys, k)
		reqs = append(reqs, dedupe.ClaimRequest{Key: k, Token: "a", Lease: longLease})
	}
	out, err := s.ClaimBatch(t.Context(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o != dedupe.Claimed {
			t.Errorf("key %s: %v, want Claimed", keys[i], o)
		}
	}
	if err := s.DoneBatch(t.Context(), keys, longTTL); err != nil {
		t.Fatal(err)
	}
	for _, n := range cl.Nodes {
		c := redis.NewClient(&redis.Options{Addr: n.Addr})
		ks, err := c.Keys(t.Context(), prefix+"*").Result()
		c.Close()
		size := len(ks)
		if err != nil || size == 0 {
			t.Errorf("master %s holds %d keys (%v): the batch did not reach every master", n.Addr, size, err)
		}
		t.Logf("master %s: %d of the batch's %d keys", n.Addr, size, len(keys))
	}
	out, err = s.ClaimBatch(t.Context(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o != dedupe.Duplicate {
			t.Errorf("key %s after DoneBatch: %v, want Duplicate", keys[i], o)
		}
	}
}

// TestRedisSentinel: the suites pass through a failover client that found
// the primary by asking the sentinel (with its own password), as the
// least-privilege user.
func TestRedisSentinel(t *testing.T) {
	s := services.NewRedisSentinel(t)
	client := redis.NewUniversalClient(secureOpts(&redis.UniversalOptions{
		Addrs: []string{s.Sentinel.Addr}, MasterName: services.SentinelMaster, SentinelPassword: s.SentinelPassword,
		Username: s.User, Password: s.Password,
	}))
	t.Cleanup(func() { client.Close() })
	runAll(t, client, services.FanoutACLPrefix)
	// The keys are on the primary, and replicated.
	admin := redis.NewClient(&redis.Options{Addr: s.Primary.Addr})
	defer admin.Close()
	if n, err := admin.DBSize(t.Context()).Result(); err != nil || n == 0 {
		t.Errorf("primary holds %d keys (%v)", n, err)
	}
}

// TestRedisSentinelTLS: the same through TLS everywhere: the data nodes and
// the sentinel listen on TLS only and require client certificates, and the
// failover client uses one TLS setting for both.
func TestRedisSentinelTLS(t *testing.T) {
	s := services.NewRedisSentinelTLS(t)
	client := redis.NewUniversalClient(secureOpts(&redis.UniversalOptions{
		Addrs: []string{s.Sentinel.Addr}, MasterName: services.SentinelMaster, SentinelPassword: s.SentinelPassword,
		Username: s.User, Password: s.Password, TLSConfig: s.ClientTLS(),
	}))
	t.Cleanup(func() { client.Close() })
	runAll(t, client, services.FanoutACLPrefix)
	plain := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinel.Addr, Password: s.SentinelPassword, MaxRetries: -1, ReadTimeout: time.Second})
	defer plain.Close()
	if err := plain.Ping(t.Context()).Err(); err == nil {
		t.Error("plaintext PING on the sentinel's TLS port succeeded")
	}
}

// BenchmarkDoneBatchWait prices what WAIT would add to a done batch on a
// primary/replica pair (loopback): a batch of 64 done keys as fanout sends
// it, and the same followed by WAIT 1 (one replica acknowledged) in the same
// pipeline. fanout does not send WAIT; README cites these numbers.
func BenchmarkDoneBatchWait(b *testing.B) {
	s := services.NewRedisSentinel(b)
	c := redis.NewClient(&redis.Options{Addr: s.Primary.Addr})
	defer c.Close()
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench:%d", i)
	}
	for _, wait := range []bool{false, true} {
		b.Run(fmt.Sprintf("wait=%v", wait), func(b *testing.B) {
			for b.Loop() {
				pipe := c.Pipeline()
				for _, k := range keys {
					pipe.Set(b.Context(), k, "done", time.Hour)
				}
				var w *redis.IntCmd
				if wait {
					w = redis.NewIntCmd(b.Context(), "wait", 1, 1000)
					_ = pipe.Process(b.Context(), w)
				}
				if _, err := pipe.Exec(b.Context()); err != nil {
					b.Fatal(err)
				}
				if w != nil && w.Val() < 1 {
					b.Fatalf("WAIT: %d replicas", w.Val())
				}
			}
		})
	}
}
