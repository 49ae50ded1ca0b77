package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const good = `
kafka:
  brokers: ["${BROKER}"]
  topic: events
redis:
  addr: ${REDIS_ADDR:-127.0.0.1:6379}
sinks:
  - name: profile
    url: http://127.0.0.1:8081/users
    headers:
      X-Plan: "{{ .Record.plan }}"
    ordering: key
    max_in_flight: 16
    retry:
      attempts: 3
      retry_status: [409]
  - name: email
    url: https://email.internal/welcome
    timeout: 2s
    start: 2026-01-02T03:04:05Z
    dedupe:
      policy: fail-open
      enabled: false
    breaker: {enabled: false}
    batch: {max_events: 50, max_wait: 5ms}
`

func TestParseGood(t *testing.T) {
	cfg, err := Parse("good.yaml", []byte(good), env(map[string]string{"BROKER": "127.0.0.1:9092"}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := cfg.Kafka.Brokers[0]; got != "127.0.0.1:9092" {
		t.Errorf("broker = %q", got)
	}
	if cfg.Redis.Addr != "127.0.0.1:6379" {
		t.Errorf("redis default expansion = %q", cfg.Redis.Addr)
	}
	p, e := cfg.Sinks[0], cfg.Sinks[1]
	if p.Ordering != OrderKey || p.MaxInFlight != 16 || p.Retry.Attempts != 3 || p.Retry.RetryStatus[0] != 409 {
		t.Errorf("profile = %+v", p)
	}
	if p.Headers["X-Plan"] != "{{ .Record.plan }}" {
		t.Errorf("header template = %q", p.Headers["X-Plan"])
	}
	if e.Timeout != 2*time.Second || e.Dedupe.Policy != FailOpen || e.Method != "POST" || e.Ordering != OrderPartition {
		t.Errorf("email = %+v", e)
	}
	if e.DLQTopic != "events.email.dlq" || cfg.Kafka.GroupPrefix != "fanout." || e.MaxInFlight != 64 {
		t.Errorf("defaults: dlq %q prefix %q mif %d", e.DLQTopic, cfg.Kafka.GroupPrefix, e.MaxInFlight)
	}
	if ts, ok := e.StartTime(); !ok || ts.Year() != 2026 {
		t.Errorf("start time = %v %v", ts, ok)
	}
	if len(e.Retry.Tiers) != 3 || e.Retry.Tiers[1] != time.Minute || e.Retry.TierTopics[2] != "events.email.retry.3" {
		t.Errorf("tier defaults: %v %v", e.Retry.Tiers, e.Retry.TierTopics)
	}
	if *e.Dedupe.Enabled || *e.Breaker.Enabled || !*p.Breaker.Enabled || !*p.Dedupe.Enabled {
		t.Errorf("enabled flags: dedupe %v breaker %v (email), dedupe %v breaker %v (profile)", *e.Dedupe.Enabled, *e.Breaker.Enabled, *p.Dedupe.Enabled, *p.Breaker.Enabled)
	}
	if e.Batch.MaxEvents != 50 || e.Batch.MaxWait != 5*time.Millisecond || p.Batch.MaxEvents != 0 {
		t.Errorf("batch: email %+v, profile %+v", e.Batch, p.Batch)
	}
	if e.Dedupe.Lease != 30*time.Second {
		t.Errorf("dedupe defaults = %+v", e.Dedupe)
	}
	if cfg.Schemas.Subjects["user.registered"] != 1 {
		t.Errorf("builtin subjects not defaulted: %v", cfg.Schemas.Subjects)
	}
	if cfg.Line("sinks[1].timeout") != 19 {
		t.Errorf("line of sinks[1].timeout = %d, want 19", cfg.Line("sinks[1].timeout"))
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each must appear in the error
	}{
		{"typo bad url missing name", `
kafka: {brokers: [a:1], topic: events}
sinks:
  - name: profile
    url: https://ok/x
    max_in_fligth: 3
  - name: email
    url: "htp//nope"
  - url: https://ok/y
`, []string{
			`sinks[0].max_in_fligth: unknown key (did you mean "max_in_flight"?) (line 6)`,
			`sinks[1].url: "htp//nope" is not an absolute http(s) URL (line 8)`,
			`sinks[2].name: required (line 9)`,
		}},
		{"types and values", `
kafka: {brokers: [nocolon], topic: "bad topic"}
tracing: {otlp_endpoint: "localhost:4318", sample_ratio: 2}
sinks:
  - name: Bad_Name
    url: https://ok/x
    timeout: soon
    max_in_flight: lots
    ordering: random
    method: FETCH
    start: yesterday
    retry: {attempts: 0, backoff_base: 1s, backoff_cap: 1ms, permanent_status: [99], tiers: [5s, 0s], tier_topics: [a]}
    dedupe: {policy: maybe}
    batch: {max_events: 5000, max_wait: -1s}
`, []string{
			`sinks[0].batch.max_events: 5000 is not within 0..1000`,
			`sinks[0].batch.max_wait: "-1s" is not a duration`,
			`kafka.brokers[0]: "nocolon" is not host:port (line 2)`,
			`kafka.topic: "bad topic" is not a valid topic name (line 2)`,
			`tracing.otlp_endpoint: "localhost:4318" is not an absolute http(s) URL (line 3)`,
			`tracing.sample_ratio: 2 is not within 0..1 (line 3)`,
			`sinks[0].name: "Bad_Name" must be lowercase`,
			`sinks[0].timeout: "soon" is not a duration`,
			`sinks[0].max_in_flight: "lots" is not an integer (line 8)`,
			`sinks[0].ordering: "random" is not one of`,
			`sinks[0].method: "FETCH" is not one of`,
			`sinks[0].start: "yesterday" is not earliest`,
			`sinks[0].retry.backoff_cap: 1ms is below`,
			`sinks[0].retry.permanent_status[0]: 99 is not an HTTP status`,
			`sinks[0].retry.tiers[1]: 0s is not within (0, 24h]`,
			`sinks[0].retry.tier_topics: names 1 topics for 2 tiers`,
			`sinks[0].dedupe.policy: "maybe" is not`,
		}},
		{"missing everything", `{}`, []string{"kafka.brokers: required", "kafka.topic: required", "sinks: required"}},
		{"env unset", `
kafka: {brokers: ["${NOPE}"], topic: t}
sinks: [{name: a, url: "https://x/"}]
`, []string{"kafka.brokers[0]: environment variable NOPE is not set (line 2)"}},
		{"duplicate names and wrong shapes", `
kafka: {brokers: [a:1], topic: t}
sinks:
  - {name: a, url: "https://x/"}
  - {name: a, url: "https://x/", headers: [x]}
redis: [1]
`, []string{`sinks[1].name: "a" is also the name of sinks[0]`, "sinks[1].headers: want a mapping, got a list", "redis: want a mapping, got a list (line 6)"}},
		{"yaml syntax", "kafka: [\n", []string{"(file):"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml), env(nil))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *config.Error, got %v", err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q\n%s", w, msg)
				}
			}
		})
	}
}

// A file that is not one YAML mapping is one problem at (file) naming the
// file, and no *Config: nothing in it can be checked further.
func TestParseNotAMapping(t *testing.T) {
	for _, tt := range []struct{ name, yaml, want string }{
		{"empty", "", "f.yaml: 1 problem(s)\n  (file): holds no YAML document (empty or only comments)"},
		{"whitespace and comments", "  \n# nothing here\n   \n", "(file): holds no YAML document (empty or only comments)"},
		{"syntax error", "[", "(file): not valid YAML: line 1: did not find expected node content"},
		{"scalar", "hello\n", `(file): want a mapping with kafka and sinks, got "hello" (line 1)`},
		{"list", "- kafka\n- sinks\n", "(file): want a mapping with kafka and sinks, got a list (line 1)"},
		{"two documents", "kafka: {}\n---\nsinks: []\n", "(file): holds more than one YAML document"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("f.yaml", []byte(tt.yaml), env(nil))
			var ce *Error
			if !errors.As(err, &ce) || cfg != nil {
				t.Fatalf("want a nil config and a *config.Error, got %v, %v", cfg, err)
			}
			if len(ce.Problems) != 1 || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want one problem containing %q", err, tt.want)
			}
		})
	}
	// A wrong shape below the root is reported once, at its path: not also
	// as the missing value the decoder could not fill in.
	_, err := Parse("f.yaml", []byte("kafka: {brokers: [a:1], topic: t}\nsinks: 5\n"), env(nil))
	if want := "f.yaml: 1 problem(s)\n  sinks: want a list, got \"5\" (line 2)"; err == nil || err.Error() != want {
		t.Errorf("sinks: 5 gave %v, want %q", err, want)
	}
}

// Configs that would loop, misdeliver or make no sense: each is a problem at
// its own path and line.
func TestParseRefusesDestructiveConfigs(t *testing.T) {
	const head = "kafka: {brokers: [a:1], topic: events}\nsinks:\n"
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"dlq is the main topic", head + "  - name: a\n    url: https://x/\n    dlq_topic: events\n",
			[]string{`sinks[0].dlq_topic: "events" is also kafka.topic: a record parked there would be read again as a new event and parked again, without end (line 5)`}},
		{"tier is the main topic", head + "  - name: a\n    url: https://x/\n    retry: {tiers: [1s, 2s], tier_topics: [a.r1, events]}\n",
			[]string{`sinks[0].retry.tier_topics[1]: "events" is also kafka.topic: a record parked there would be read again as a new event and parked again, without end (line 5)`}},
		{"tier is its own dlq", head + "  - name: a\n    url: https://x/\n    dlq_topic: a.dlq\n    retry: {tiers: [1s], tier_topics: [a.dlq]}\n",
			[]string{`sinks[0].retry.tier_topics[0]: "a.dlq" is also sinks[0].dlq_topic: a retry tier's consumer would deliver the dead letters again, and the DLQ would hold live retries (line 6)`}},
		{"tier is another sink's dlq", head + "  - {name: a, url: https://x/, dlq_topic: shared}\n  - name: b\n    url: https://x/\n    retry: {tiers: [1s], tier_topics: [shared]}\n",
			[]string{`sinks[1].retry.tier_topics[0]: "shared" is also sinks[0].dlq_topic: a retry tier's consumer would deliver the dead letters again, and the DLQ would hold live retries (line 6)`}},
		{"dlq is another sink's tier", head + "  - {name: a, url: https://x/, retry: {tiers: [1s], tier_topics: [t1]}}\n  - {name: b, url: https://x/, dlq_topic: t1}\n",
			[]string{`sinks[1].dlq_topic: "t1" is also sinks[0].retry.tier_topics[0]: a retry tier's consumer would deliver the dead letters again`}},
		{"two sinks share a dlq", head + "  - {name: a, url: https://x/, dlq_topic: dead}\n  - {name: b, url: https://x/, dlq_topic: dead}\n",
			[]string{`sinks[1].dlq_topic: "dead" is also sinks[0].dlq_topic: each sink needs its own dead-letter topic: dlq redrive and status read one sink's letters from it (line 4)`}},
		{"two sinks share a tier", head + "  - {name: a, url: https://x/, retry: {tiers: [1s], tier_topics: [t1]}}\n  - {name: b, url: https://x/, retry: {tiers: [5s, 1m], tier_topics: [t0, t1]}}\n",
			[]string{`sinks[1].retry.tier_topics[1]: "t1" is also sinks[0].retry.tier_topics[0]: a tier's consumer delivers what it reads to its own sink: the other sink's records would go to the wrong API (line 4)`}},
		{"one tier topic twice in a sink", head + "  - name: a\n    url: https://x/\n    retry:\n      tiers: [1s, 1m]\n      tier_topics: [t1, t1]\n",
			[]string{`sinks[0].retry.tier_topics[1]: "t1" is also sinks[0].retry.tier_topics[0]: each tier needs its own topic: a record's delay and its next tier are the topic's (line 7)`}},
		{"negative redis db", "redis: {db: -3}\n" + head + "  - {name: a, url: https://x/}\n",
			[]string{`redis.db: -3 must not be negative (line 1)`}},
		{"negative sizes and counts", head + `  - name: a
    url: https://x/
    max_event_bytes: -10
    max_in_flight: -1
    rate_limit: {rate: -5, burst: -1}
    retry: {attempts: -2}
    batch: {max_events: -1}
    breaker: {min_requests: -1, probes: -2, failure_ratio: 1.5, consecutive_failures: -5}
`, []string{
			`sinks[0].max_event_bytes: -10 must not be negative (line 5)`,
			`sinks[0].max_in_flight: -1 is not within 1..10000 (line 6)`,
			`sinks[0].rate_limit.rate: -5 must not be negative (line 7)`,
			`sinks[0].rate_limit.burst: -1 must not be negative (line 7)`,
			`sinks[0].retry.attempts: -2 is not within 1..100 (line 8)`,
			`sinks[0].batch.max_events: -1 is not within 0..1000 (line 9)`,
			`sinks[0].breaker.min_requests: -1 must not be negative (line 10)`,
			`sinks[0].breaker.probes: -2 must not be negative (line 10)`,
			`sinks[0].breaker.failure_ratio: 1.5 is not within 0..1 (line 10)`,
			`sinks[0].breaker.consecutive_failures: -5 is below -1 (-1 disables it) (line 10)`,
		}},
		{"not a finite number", "tracing: {sample_ratio: NaN}\n" + head + "  - {name: a, url: https://x/, rate_limit: {rate: Inf}, breaker: {failure_ratio: nan}}\n", []string{
			`tracing.sample_ratio: "NaN" is not a number (line 1)`,
			`sinks[0].rate_limit.rate: "Inf" is not a number (line 4)`,
			`sinks[0].breaker.failure_ratio: "nan" is not a number (line 4)`,
		}},
		{"negative durations", head + `  - name: a
    url: https://x/
    timeout: -1s
    max_event_age: -1m
    dedupe: {ttl: -1h, lease: -1s}
    retry: {backoff_base: -1ms, retry_after_cap: -1s, tiers: [-1s]}
    breaker: {window: -1s, open_for: -1s}
`, []string{
			`sinks[0].timeout: "-1s" is not a duration (like 250ms, 10s, 1m) (line 5)`,
			`sinks[0].max_event_age: "-1m" is not a duration`,
			`sinks[0].dedupe.ttl: "-1h" is not a duration`,
			`sinks[0].dedupe.lease: "-1s" is not a duration`,
			`sinks[0].retry.backoff_base: "-1ms" is not a duration`,
			`sinks[0].retry.retry_after_cap: "-1s" is not a duration`,
			`sinks[0].retry.tiers[0]: "-1s" is not a duration`,
			`sinks[0].breaker.window: "-1s" is not a duration`,
			`sinks[0].breaker.open_for: "-1s" is not a duration`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml), env(nil))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q\n%s", w, err)
				}
			}
		})
	}
	// The defaults never collide: <topic>.<sink>.dlq and <topic>.<sink>.retry.<n>.
	if _, err := Parse("f.yaml", []byte(head+"  - {name: a, url: https://x/}\n  - {name: b, url: https://x/}\n"), env(nil)); err != nil {
		t.Errorf("default topics: %v", err)
	}
}

// tracing.sample_ratio and service_name stay unset unless the file sets
// them, so the OTEL_* environment can apply; 0 is a ratio, not "unset".
func TestTracingUnsetUnlessGiven(t *testing.T) {
	const head = "kafka: {brokers: [a:1], topic: events}\nsinks: [{name: a, url: \"https://x/\"}]\n"
	cfg, err := Parse("f.yaml", []byte(head), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tracing.SampleRatio != nil || cfg.Tracing.ServiceName != "" {
		t.Errorf("tracing defaults %+v: want both unset", cfg.Tracing)
	}
	cfg, err = Parse("f.yaml", []byte(head+"tracing: {sample_ratio: 0, service_name: svc}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Tracing.SampleRatio; r == nil || *r != 0 || cfg.Tracing.ServiceName != "svc" {
		t.Errorf("tracing %+v: want ratio 0 and svc", cfg.Tracing)
	}
}
