package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/e2e/services"
)

// TestBuildStoreRedisModes: BuildStore, from a parsed config, reaches each
// deployment through the client its mode needs, and the store and barriers
// work there: TLS with a client certificate as the least-privilege ACL user
// (password from ${VAR}), a 3-master cluster and a primary found through a
// password-protected Sentinel, each as the least-privilege user.
func TestBuildStoreRedisModes(t *testing.T) {
	tlsSrv := services.NewRedisTLS(t)
	cluster := services.NewRedisCluster(t)
	sent := services.NewRedisSentinel(t)
	sentTLS := services.NewRedisSentinelTLS(t)
	env := map[string]string{"REDIS_PASSWORD": tlsSrv.Password}
	clusterUser := fmt.Sprintf("\n  username: %s\n  password: %s", cluster.User, cluster.Password)
	for _, tc := range []struct {
		name, redis string
		client      string // the go-redis client type BuildStore must make
	}{
		{"tls+acl", fmt.Sprintf(`
  addr: %s
  username: %s
  password: ${REDIS_PASSWORD}
  tls: {enabled: true, ca_file: %s, cert_file: %s, key_file: %s, server_name: localhost}`,
			tlsSrv.Addr, tlsSrv.User, tlsSrv.Files.CA, tlsSrv.Files.ClientCert, tlsSrv.Files.ClientKey), "*redis.Client"},
		{"cluster", "\n  addr: " + strings.Join(cluster.Addrs(), ",") + clusterUser, "*redis.ClusterClient"},
		{"cluster one seed", "\n  mode: cluster\n  addr: " + cluster.Addrs()[1] + clusterUser, "*redis.ClusterClient"},
		{"sentinel", fmt.Sprintf("\n  username: %s\n  password: %s\n  sentinel: {master_name: %s, addrs: [%s], password: %s}",
			sent.User, sent.Password, services.SentinelMaster, sent.Sentinel.Addr, sent.SentinelPassword), "*redis.Client"},
		{"sentinel+tls", fmt.Sprintf("\n  username: %s\n  password: %s\n  sentinel: {master_name: %s, addrs: [%s], password: %s}\n  tls: {enabled: true, ca_file: %s, cert_file: %s, key_file: %s}",
			sentTLS.User, sentTLS.Password, services.SentinelMaster, sentTLS.Sentinel.Addr, sentTLS.SentinelPassword,
			sentTLS.TLS.CA, sentTLS.TLS.ClientCert, sentTLS.TLS.ClientKey), "*redis.Client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := "kafka: {brokers: [a:1], topic: t}\nsinks: [{name: a, url: \"https://x/\"}]\nredis:" + tc.redis + "\n"
			cfg, err := config.Parse("f.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err != nil {
				t.Fatal(err)
			}
			client, err := redisClient(cfg.Redis, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%T", client); got != tc.client {
				t.Errorf("client %s, want %s", got, tc.client)
			}
			client.Close()
			store, closeStore, err := BuildStore(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer closeStore()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			for i := range 20 {
				key := fmt.Sprintf("%s:%d", tc.name, i)
				if o, err := store.Claim(ctx, key, "tok", time.Minute); err != nil || o != dedupe.Claimed {
					t.Fatalf("Claim %s: %v, %v", key, o, err)
				}
				if err := store.Done(ctx, key, time.Hour); err != nil {
					t.Fatalf("Done %s: %v", key, err)
				}
				if o, err := store.Claim(ctx, key, "other", time.Minute); err != nil || o != dedupe.Duplicate {
					t.Fatalf("Claim %s after Done: %v, %v", key, o, err)
				}
				b := barriersOf(store)
				if err := b.Enter(ctx, key, 1, "o", time.Minute); err != nil {
					t.Fatalf("Enter %s: %v", key, err)
				}
				if err := b.Leave(ctx, key, "o", 1); err != nil {
					t.Fatalf("Leave %s: %v", key, err)
				}
			}
		})
	}
	// A wrong CA fails the handshake: TLS verification is on.
	cfg, err := config.Parse("f.yaml", []byte(fmt.Sprintf("kafka: {brokers: [a:1], topic: t}\nsinks: [{name: a, url: \"https://x/\"}]\nredis: {addr: %s, tls: {enabled: true}}\n", tlsSrv.Addr)), nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := redisClient(cfg.Redis, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Ping(t.Context()).Err(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("PING with the system roots against the test CA: %v, want a certificate error", err)
	}
}

// TestBuildStoreRedisRefused: a wrong password, a wrong sentinel password's
// consequence, an untrusted certificate and a missing client certificate end
// BuildStore at once with the cause and without the password; an
// unreachable Redis does not (the dedupe policy handles outages).
func TestBuildStoreRedisRefused(t *testing.T) {
	tlsSrv := services.NewRedisTLS(t)
	sent := services.NewRedisSentinel(t)
	const wrong = "WRONG-PASSWORD-d41d8cd9"
	good := fmt.Sprintf("tls: {enabled: true, ca_file: %s, cert_file: %s, key_file: %s}", tlsSrv.Files.CA, tlsSrv.Files.ClientCert, tlsSrv.Files.ClientKey)
	for _, tc := range []struct{ name, redis, want string }{
		{"wrong password", fmt.Sprintf("{addr: %s, username: %s, password: %s, %s}", tlsSrv.Addr, tlsSrv.User, wrong, good), "WRONGPASS"},
		{"untrusted server", fmt.Sprintf("{addr: %s, username: %s, password: %s, tls: {enabled: true}}", tlsSrv.Addr, tlsSrv.User, tlsSrv.Password), "certificate signed by unknown authority"},
		{"no client certificate", fmt.Sprintf("{addr: %s, username: %s, password: %s, tls: {enabled: true, ca_file: %s}}", tlsSrv.Addr, tlsSrv.User, tlsSrv.Password, tlsSrv.Files.CA), "tls"},
		{"sentinel, wrong data password", fmt.Sprintf("{username: %s, password: %s, sentinel: {master_name: %s, addrs: [%s], password: %s}}",
			sent.User, wrong, services.SentinelMaster, sent.Sentinel.Addr, sent.SentinelPassword), "WRONGPASS"},
		{"sentinel, wrong sentinel password", fmt.Sprintf("{username: %s, password: %s, sentinel: {master_name: %s, addrs: [%s], password: %s}}",
			sent.User, sent.Password, services.SentinelMaster, sent.Sentinel.Addr, wrong), "WRONGPASS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := "kafka: {brokers: [a:1], topic: t}\nsinks: [{name: a, url: \"https://x/\"}]\nredis: " + tc.redis + "\n"
			cfg, err := config.Parse("f.yaml", []byte(yaml), nil)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, _, err = BuildStore(cfg, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "refused fanout") {
				t.Fatalf("BuildStore: %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), tlsSrv.Password) {
				t.Errorf("the error holds a password: %v", err)
			}
			t.Logf("%v after %v", err, time.Since(start).Round(time.Millisecond))
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		yaml := fmt.Sprintf("kafka: {brokers: [a:1], topic: t}\nsinks: [{name: a, url: \"https://x/\"}]\nredis: {addr: 127.0.0.1:%d, dial_timeout: 200ms}\n", services.FreePort(t))
		cfg, err := config.Parse("f.yaml", []byte(yaml), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, closeStore, err := BuildStore(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("BuildStore with Redis down: %v, want the store (outages are the dedupe policy's)", err)
		}
		closeStore()
	})
}
