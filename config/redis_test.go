package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRedisProblems: every new redis field's problems are named with path and
// line, and a good config of each mode parses into the mode it says.
func TestRedisProblems(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const head = "kafka: {brokers: [a:1], topic: t}\nsinks: [{name: a, url: \"https://x/\"}]\n"
	for _, tt := range []struct {
		name, yaml string
		want       []string
	}{
		{"mode", "redis:\n  addr: r:1\n  mode: ring\n", []string{`redis.mode: "ring" is not single, cluster or sentinel (or empty: detected) (line 5)`}},
		{"single with several", "redis:\n  addr: r:1,r:2\n  mode: single\n", []string{"redis.mode: single takes one address, redis.addr has 2: use cluster for a Redis Cluster (line 5)"}},
		{"bad addr", "redis:\n  addr: r:1,nope\n", []string{`redis.addr: "nope" is not host:port (line 4)`}},
		{"cluster db", "redis:\n  addr: r:1,r:2\n  db: 3\n", []string{"redis.db: 3: a Redis Cluster has only db 0 (line 5)"}},
		{"sentinel without master", "redis:\n  sentinel:\n    addrs: [s:1, bad]\n", []string{
			"redis.sentinel.master_name: required in sentinel mode: the name the sentinels monitor (line 4)",
			`redis.sentinel.addrs[1]: "bad" is not host:port (line 5)`}},
		{"sentinel without addrs but addr", "redis:\n  addr: r:1\n  sentinel: {master_name: m}\n", []string{
			"redis.sentinel.addrs: required in sentinel mode", "redis.addr: must be empty in sentinel mode: the sentinels name the primary (list them in redis.sentinel.addrs) (line 4)"}},
		{"sentinel in cluster mode", "redis:\n  addr: r:1\n  mode: cluster\n  sentinel: {master_name: m}\n", []string{"redis.sentinel: set, but redis.mode is cluster: remove it or use mode sentinel (line 6)"}},
		{"tls off but files", "redis:\n  addr: r:1\n  tls:\n    ca_file: " + junk + "\n", []string{"redis.tls.enabled: false, but other redis.tls fields are set: set enabled: true (line 5)"}},
		{"tls missing files", "redis:\n  addr: r:1\n  tls:\n    enabled: true\n    ca_file: " + dir + "/none.pem\n    cert_file: " + dir + "/c.pem\n", []string{
			"redis.tls.ca_file: stat " + dir + "/none.pem: no such file or directory (line 7)",
			"redis.tls.key_file: required with cert_file: a client certificate and its key go together (line 5)"}},
		{"tls junk CA", "redis:\n  addr: r:1\n  tls: {enabled: true, ca_file: " + junk + "}\n", []string{"redis.tls: ca_file: no PEM certificate in " + junk + " (line 5)"}},
		{"tls without redis", "redis:\n  tls: {enabled: true}\n", []string{"redis.addr: required with the other redis settings"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(head+tt.yaml), env(nil))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *config.Error, got %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q\n%s", w, err)
				}
			}
		})
	}
	for _, tt := range []struct{ yaml, mode string }{
		{"redis: {addr: r:1}\n", RedisSingle},
		{"redis: {addr: \"r:1, r:2\"}\n", RedisCluster},
		{"redis: {addr: r:1, mode: cluster}\n", RedisCluster},
		{"redis: {sentinel: {master_name: m, addrs: [s:1, s:2], password: \"${SP}\"}, password: \"${RP}\"}\n", RedisSentinel},
	} {
		c, err := Parse("f.yaml", []byte(head+tt.yaml), env(map[string]string{"SP": "s3cret", "RP": "r3cret"}))
		if err != nil {
			t.Errorf("%s: %v", tt.yaml, err)
			continue
		}
		if got := c.Redis.EffectiveMode(); got != tt.mode || !c.Redis.Enabled() {
			t.Errorf("%s: mode %s (enabled %v), want %s", tt.yaml, got, c.Redis.Enabled(), tt.mode)
		}
	}
}
