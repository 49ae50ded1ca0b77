package sinktest

import (
	"testing"
	"time"

	"github.com/fanout-dev/fanout/config"
)

// The builder's YAML is a config fanout accepts, with every typed field where
// the config reads it.
func TestConfigYAMLParses(t *testing.T) {
	c := Config{
		Brokers: []string{"127.0.0.1:9092", "127.0.0.1:9093"}, Topic: "t1", GroupPrefix: "g.",
		SessionTimeout: 6 * time.Second, RebalanceTimeout: 20 * time.Second,
		RedisAddr: "127.0.0.1:6379", KeyPrefix: "t1:",
		DrainTimeout: 20 * time.Second, RevokeTimeout: 10 * time.Second,
		Sinks: []Sink{
			{Name: "profile", URL: "http://127.0.0.1:1/events", Ordering: "key", MaxInFlight: 8,
				Headers: map[string]string{"X-Plan": "{{ .Record.plan }}", "X-Instance": "${FANOUT_INSTANCE:-none}"},
				Extra:   "retry:\n  attempts: 3\n  tiers: [2s]"},
			{Name: "bulk", URL: "http://127.0.0.1:2/events", Ordering: "unordered", BatchEvents: 16},
		},
	}
	cfg, err := config.Parse("sinktest", []byte(c.YAML()), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("%v\n%s", err, c.YAML())
	}
	if cfg.Kafka.Topic != "t1" || len(cfg.Kafka.Brokers) != 2 || cfg.Kafka.GroupPrefix != "g." || cfg.Redis.KeyPrefix != "t1:" || cfg.Run.DrainTimeout != 20*time.Second {
		t.Errorf("top level parsed as %+v %+v %+v", cfg.Kafka, cfg.Redis, cfg.Run)
	}
	if len(cfg.Sinks) != 2 {
		t.Fatalf("%d sinks", len(cfg.Sinks))
	}
	p, b := cfg.Sinks[0], cfg.Sinks[1]
	if p.Name != "profile" || p.Ordering != "key" || p.MaxInFlight != 8 || p.Headers["X-Plan"] != "{{ .Record.plan }}" ||
		p.Headers["X-Instance"] != "none" || p.Retry.Attempts != 3 || len(p.Retry.Tiers) != 1 {
		t.Errorf("sink profile parsed as %+v", p)
	}
	if b.Batch.MaxEvents != 16 || b.Ordering != "unordered" {
		t.Errorf("sink bulk parsed as %+v", b)
	}
}
