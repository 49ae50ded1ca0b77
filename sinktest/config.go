package sinktest

import (
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
	if c.GroupPrefix != "" {
		fmt.Fprintf(&b, "  group_prefix: %s\n", c.GroupPrefix)
	}
	if c.SessionTimeout > 0 {
		fmt.Fprintf(&b, "  session_timeout: %s\n", c.SessionTimeout)
	}
	if c.RebalanceTimeout > 0 {
		fmt.Fprintf(&b, "  rebalance_timeout: %s\n", c.RebalanceTimeout)
	}
	if c.RedisAddr != "" {
		fmt.Fprintf(&b, "redis:\n  addr: %s\n", c.RedisAddr)
		if c.KeyPrefix != "" {
			fmt.Fprintf(&b, "  key_prefix: %s\n", strconv.Quote(c.KeyPrefix))
		}
	}
	if c.DrainTimeout > 0 || c.RevokeTimeout > 0 {
		b.WriteString("run:\n")
		if c.DrainTimeout > 0 {
			fmt.Fprintf(&b, "  drain_timeout: %s\n", c.DrainTimeout)
		}
		if c.RevokeTimeout > 0 {
			fmt.Fprintf(&b, "  revoke_timeout: %s\n", c.RevokeTimeout)
		}
	}
	if top := strings.TrimSpace(c.Top); top != "" {
		b.WriteString(top + "\n")
	}
	b.WriteString("sinks:\n")
	for _, s := range c.Sinks {
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n", s.Name, s.URL)
		if s.Ordering != "" {
			fmt.Fprintf(&b, "    ordering: %s\n", s.Ordering)
		}
		if s.MaxInFlight > 0 {
			fmt.Fprintf(&b, "    max_in_flight: %d\n", s.MaxInFlight)
		}
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

// Write writes the YAML to path.
func (c Config) Write(path string) error {
	return os.WriteFile(path, []byte(c.YAML()), 0o644)
}
