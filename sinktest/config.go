package sinktest

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is a fanout.yaml built from typed fields; YAML renders it. Zero
// fields are left out, so fanout's defaults apply.
type Config struct {
	Brokers          []string
	Topic            string
	GroupPrefix      string        // kafka.group_prefix
	SessionTimeout   time.Duration // kafka.session_timeout
	RebalanceTimeout time.Duration // kafka.rebalance_timeout

	RedisAddr string // redis.addr; empty: no redis section
	KeyPrefix string // redis.key_prefix

	DrainTimeout  time.Duration // run.drain_timeout
	RevokeTimeout time.Duration // run.revoke_timeout

	// Top is YAML appended verbatim at the top level (other sections).
	Top   string
	Sinks []Sink
}

// Sink is one entry of sinks.
type Sink struct {
	Name        string
	URL         string
	Ordering    string // unordered | key | partition
	MaxInFlight int
	BatchEvents int               // > 0: batch.max_events
	Headers     map[string]string // headers, in key order; values are quoted
	// Extra is YAML appended to the sink's block, one line per line.
	Extra string
}

// YAML renders the config.
func (c Config) YAML() string {
	var b strings.Builder
	b.WriteString("kafka:\n")
	fmt.Fprintf(&b, "  brokers: [%s]\n", strings.Join(c.Brokers, ", "))
	fmt.Fprintf(&b, "  topic: %s\n", c.Topic)
	opt(&b, "  group_prefix", c.GroupPrefix)
	opt(&b, "  session_timeout", c.SessionTimeout)
	opt(&b, "  rebalance_timeout", c.RebalanceTimeout)
	if c.RedisAddr != "" {
		fmt.Fprintf(&b, "redis:\n  addr: %s\n", c.RedisAddr)
		if c.KeyPrefix != "" {
			fmt.Fprintf(&b, "  key_prefix: %s\n", strconv.Quote(c.KeyPrefix))
		}
	}
	if c.DrainTimeout > 0 || c.RevokeTimeout > 0 {
		b.WriteString("run:\n")
		opt(&b, "  drain_timeout", c.DrainTimeout)
		opt(&b, "  revoke_timeout", c.RevokeTimeout)
	}
	if top := strings.TrimSpace(c.Top); top != "" {
		b.WriteString(top + "\n")
	}
	b.WriteString("sinks:\n")
	for _, s := range c.Sinks {
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n", s.Name, s.URL)
		opt(&b, "    ordering", s.Ordering)
		opt(&b, "    max_in_flight", s.MaxInFlight)
		if s.BatchEvents > 0 {
			fmt.Fprintf(&b, "    batch: {max_events: %d}\n", s.BatchEvents)
		}
		if len(s.Headers) > 0 {
			b.WriteString("    headers:\n")
			for _, k := range slices.Sorted(maps.Keys(s.Headers)) {
				fmt.Fprintf(&b, "      %s: %s\n", k, strconv.Quote(s.Headers[k]))
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(s.Extra), "\n") {
			if line = strings.TrimRight(line, " \t"); line != "" {
				fmt.Fprintf(&b, "    %s\n", line)
			}
		}
	}
	return b.String()
}

// opt writes "key: v" on a line of its own if v is above its type's zero
// value (key carries its indent).
func opt[T cmp.Ordered](b *strings.Builder, key string, v T) {
	var zero T
	if v > zero {
		fmt.Fprintf(b, "%s: %v\n", key, v)
	}
}

// Write writes the YAML to path.
func (c Config) Write(path string) error {
	return os.WriteFile(path, []byte(c.YAML()), 0o644)
}
