package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/redact"
	"github.com/fanout-dev/fanout/sink"
)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	topicRE  = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	methods  = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true}
	orderSet = map[string]bool{OrderPartition: true, OrderKey: true, OrderUnordered: true}
)

// absoluteHTTP reports whether s is an http or https URL with a host.
func absoluteHTTP(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// registrySecurityProblems checks schemas.registry_auth and registry_tls.
// Problems name fields, never a credential's value.
func (c *Config) registrySecurityProblems() []Problem {
	var ps []Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Line: c.lineOf(path), Msg: fmt.Sprintf(format, args...)})
	}
	a, t := c.Schemas.RegistryAuth, c.Schemas.RegistryTLS
	if c.Schemas.RegistryURL == "" {
		if a != (RegistryAuth{}) {
			add("schemas.registry_auth", "needs schemas.registry_url")
		}
		if t.set() {
			add("schemas.registry_tls", "needs schemas.registry_url")
		}
		return ps
	}
	u, err := url.Parse(c.Schemas.RegistryURL)
	if err != nil {
		return ps // reported as registry_url
	}
	switch {
	case a.Token != "" && (a.Username != "" || a.Password != ""):
		add("schemas.registry_auth", "set either token (bearer) or username and password (basic), not both")
	case a.Username != "" && a.Password == "":
		add("schemas.registry_auth.password", "required with username")
	case a.Password != "" && a.Username == "":
		add("schemas.registry_auth.username", "required with password")
	}
	if u.User != nil && a != (RegistryAuth{}) {
		add("schemas.registry_auth", "schemas.registry_url holds credentials too: set them in one place")
	}
	if !t.set() {
		return ps
	}
	if u.Scheme != "https" {
		add("schemas.registry_tls", "needs an https registry_url")
	}
	if t.CAFile != "" {
		if b, err := os.ReadFile(t.CAFile); err != nil {
			add("schemas.registry_tls.ca_file", "cannot read: %v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
			add("schemas.registry_tls.ca_file", "%s holds no PEM certificate", t.CAFile)
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		add("schemas.registry_tls.key_file", "required with cert_file")
	case t.KeyFile != "" && t.CertFile == "":
		add("schemas.registry_tls.cert_file", "required with key_file")
	case t.CertFile != "":
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			add("schemas.registry_tls.cert_file", "with key_file: %v", err)
		}
	}
	return ps
}

func (c *Config) validate() []Problem {
	var ps []Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Line: c.lineOf(path), Msg: fmt.Sprintf(format, args...)})
	}
	if len(c.Kafka.Brokers) == 0 {
		add("kafka.brokers", "required: at least one host:port")
	}
	for i, b := range c.Kafka.Brokers {
		if !strings.Contains(b, ":") {
			add(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if c.Kafka.Topic == "" {
		add("kafka.topic", "required")
	} else if !topicRE.MatchString(c.Kafka.Topic) {
		add("kafka.topic", "%q is not a valid topic name", c.Kafka.Topic)
	}
	if id := c.Kafka.InstanceID; id != "" && (!topicRE.MatchString(id) || id == "." || id == "..") {
		add("kafka.instance_id", "%q is not a valid group instance id: use [a-zA-Z0-9._-], at most 249 characters, not \".\" or \"..\"", id)
	}
	ps = append(ps, c.validateKafkaSecurity()...)
	if c.Run.RevokeTimeout >= c.Kafka.RebalanceTimeout {
		add("run.revoke_timeout", "%s must be below kafka.rebalance_timeout %s: a slow API must not hold a rebalance hostage", c.Run.RevokeTimeout, c.Kafka.RebalanceTimeout)
	}
	if c.Schemas.RegistryURL != "" {
		if !absoluteHTTP(c.Schemas.RegistryURL) {
			add("schemas.registry_url", "%q is not an absolute http(s) URL", redact.URL(c.Schemas.RegistryURL))
		}
	} else if c.Schemas.Dir != "" && len(c.Schemas.Subjects) == 0 {
		add("schemas.subjects", "required with schemas.dir: map each subject (file <subject>.avsc) to its schema id")
	}
	ps = append(ps, c.registrySecurityProblems()...)
	if c.Schemas.TypeFrom != TypeFromSubject && c.Schemas.TypeFrom != TypeFromRecord {
		add("schemas.type_from", "%q is not subject or record", c.Schemas.TypeFrom)
	}
	for subj, id := range c.Schemas.Subjects {
		if id <= 0 {
			add("schemas.subjects."+subj, "schema id %d must be positive", id)
		}
	}
	if e := c.Tracing.OTLPEndpoint; e != "" && !absoluteHTTP(e) {
		add("tracing.otlp_endpoint", "%q is not an absolute http(s) URL", redact.URL(e))
	}
	if r := c.Tracing.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		add("tracing.sample_ratio", "%g is not within 0..1", *r)
	}
	for k, v := range c.Tracing.Headers {
		path := "tracing.headers." + k
		if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) }) {
			add(path, "is not a valid header name")
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			add(path, "holds a control character (a header value cannot)") // never the value: it is a secret
		}
	}
	if len(c.Sinks) == 0 {
		add("sinks", "required: at least one sink")
	}
	if c.Redis.DB < 0 {
		add("redis.db", "%d must not be negative", c.Redis.DB)
	}
	ps = append(ps, c.validateAdmin()...)
	ps = append(ps, c.validateRedis()...)
	names := map[string]int{}
	for i := range c.Sinks {
		ps = append(ps, c.validateSink(i, names)...)
	}
	return append(ps, c.validateTopics()...)
}

// topicUse is one place a topic is named: the main topic, a sink's DLQ or one
// of its retry tiers.
type topicUse struct {
	path string // kafka.topic, sinks[0].dlq_topic, sinks[0].retry.tier_topics[1]
	sink int    // -1 for kafka.topic
	dlq  bool
}

// validateTopics refuses every topic named twice among the main topic, the
// DLQs and the retry tiers. Each such collision loops or misdelivers: a
// record parked on the main topic (or on a tier that is also a DLQ) is read
// again as new work and parked again, without end; a shared tier delivers one
// sink's records to another; a shared DLQ mixes two sinks' letters.
func (c *Config) validateTopics() []Problem {
	var ps []Problem
	seen := map[string]topicUse{}
	use := func(topic string, u topicUse) {
		if topic == "" {
			return
		}
		first, dup := seen[topic]
		if !dup {
			seen[topic] = u
			return
		}
		var why string
		switch {
		case first.sink < 0:
			why = "a record parked there would be read again as a new event and parked again, without end"
		case first.dlq != u.dlq:
			why = "a retry tier's consumer would deliver the dead letters again, and the DLQ would hold live retries"
		case u.dlq:
			why = "each sink needs its own dead-letter topic: dlq redrive and status read one sink's letters from it"
		case first.sink == u.sink:
			why = "each tier needs its own topic: a record's delay and its next tier are the topic's"
		default:
			why = "a tier's consumer delivers what it reads to its own sink: the other sink's records would go to the wrong API"
		}
		ps = append(ps, Problem{Path: u.path, Line: c.lineOf(u.path), Msg: fmt.Sprintf("%q is also %s: %s", topic, first.path, why)})
	}
	use(c.Kafka.Topic, topicUse{path: "kafka.topic", sink: -1})
	for i, s := range c.Sinks {
		use(s.DLQTopic, topicUse{path: fmt.Sprintf("sinks[%d].dlq_topic", i), sink: i, dlq: true})
		for j, tp := range s.Retry.TierTopics {
			use(tp, topicUse{path: fmt.Sprintf("sinks[%d].retry.tier_topics[%d]", i, j), sink: i})
		}
	}
	return ps
}

func (c *Config) validateSink(i int, names map[string]int) []Problem {
	s := &c.Sinks[i]
	p := fmt.Sprintf("sinks[%d]", i)
	var ps []Problem
	add := func(field, format string, args ...any) {
		path := p + "." + field
		ps = append(ps, Problem{Path: path, Line: c.lineOf(path), Msg: fmt.Sprintf(format, args...)})
	}
	switch {
	case s.Name == "":
		add("name", "required")
	case !nameRE.MatchString(s.Name):
		add("name", "%q must be lowercase letters, digits, - or _ (at most 63)", s.Name)
	default:
		if j, dup := names[s.Name]; dup {
			add("name", "%q is also the name of sinks[%d]", s.Name, j)
		}
		names[s.Name] = i
	}
	if s.URL == "" {
		add("url", "required")
	} else if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("url", "%q is not an absolute http(s) URL", redact.URL(s.URL))
	} else if strings.Contains(u.Host, "{{") {
		add("url", "the host may not be a template: event data never chooses the destination")
	} else if u.Scheme == "http" && !s.AllowPlainHTTP && !loopbackHost(u.Hostname()) {
		add("url", "%q is plain http to a host that is not loopback: events and credentials would cross the network in the clear; use https, or set allow_plain_http: true for a network you trust", redact.URL(s.URL))
	}
	if s.Auth.Token != "" && s.Auth.TokenFile != "" && !s.Auth.tokenFromFile {
		add("auth.token_file", "set token or token_file, not both")
	}
	if !methods[s.Method] {
		add("method", "%q is not one of GET, POST, PUT, PATCH, DELETE", s.Method)
	}
	if !orderSet[s.Ordering] {
		add("ordering", "%q is not one of partition, key, unordered", s.Ordering)
	}
	if s.MaxInFlight < 1 || s.MaxInFlight > 10000 {
		add("max_in_flight", "%d is not within 1..10000", s.MaxInFlight)
	}
	if s.Start != "earliest" && s.Start != "latest" {
		if _, ok := s.StartTime(); !ok {
			add("start", "%q is not earliest, latest or an RFC 3339 time", s.Start)
		}
	}
	if s.Retry.Attempts < 1 || s.Retry.Attempts > 100 {
		add("retry.attempts", "%d is not within 1..100", s.Retry.Attempts)
	}
	if s.Retry.BackoffCap < s.Retry.BackoffBase {
		add("retry.backoff_cap", "%s is below retry.backoff_base %s", s.Retry.BackoffCap, s.Retry.BackoffBase)
	}
	for j, st := range append(append([]int{}, s.Retry.RetryStatus...), s.Retry.PermanentStatus...) {
		if st < 100 || st > 599 {
			field := fmt.Sprintf("retry.retry_status[%d]", j)
			if j >= len(s.Retry.RetryStatus) {
				field = fmt.Sprintf("retry.permanent_status[%d]", j-len(s.Retry.RetryStatus))
			}
			add(field, "%d is not an HTTP status", st)
		}
	}
	for j, d := range s.Retry.Tiers {
		if d <= 0 || d > 24*time.Hour {
			add(fmt.Sprintf("retry.tiers[%d]", j), "%s is not within (0, 24h]", d)
		}
	}
	if len(s.Retry.TierTopics) != len(s.Retry.Tiers) {
		add("retry.tier_topics", "names %d topics for %d tiers", len(s.Retry.TierTopics), len(s.Retry.Tiers))
	}
	for j, tp := range s.Retry.TierTopics {
		if !topicRE.MatchString(tp) {
			add(fmt.Sprintf("retry.tier_topics[%d]", j), "%q is not a valid topic name", tp)
		}
	}
	if s.Batch.MaxEvents < 0 || s.Batch.MaxEvents > 1000 {
		add("batch.max_events", "%d is not within 0..1000", s.Batch.MaxEvents)
	}
	if s.Batch.MaxWait < 0 {
		add("batch.max_wait", "must not be negative, got %s", s.Batch.MaxWait)
	}
	if s.Batch.MaxBytes < 0 || s.Batch.MaxBytes > sink.MaxBatchBytesLimit {
		add("batch.max_bytes", "%d is not within 0..%d (0: 1 MiB)", s.Batch.MaxBytes, sink.MaxBatchBytesLimit)
	}
	if s.RateLimit.Rate < 0 {
		add("rate_limit.rate", "%g must not be negative", s.RateLimit.Rate)
	}
	if s.RateLimit.Burst < 0 {
		add("rate_limit.burst", "%d must not be negative", s.RateLimit.Burst)
	}
	if r := s.Breaker.FailureRatio; r < 0 || r > 1 {
		add("breaker.failure_ratio", "%g is not within 0..1", r)
	}
	if s.Breaker.MinRequests < 0 {
		add("breaker.min_requests", "%d must not be negative", s.Breaker.MinRequests)
	}
	if s.Breaker.Probes < 0 {
		add("breaker.probes", "%d must not be negative", s.Breaker.Probes)
	}
	if s.Breaker.ConsecutiveFailures < -1 {
		add("breaker.consecutive_failures", "%d is below -1 (-1 disables it)", s.Breaker.ConsecutiveFailures)
	}
	if s.MaxEventBytes < 0 {
		add("max_event_bytes", "%d must not be negative", s.MaxEventBytes)
	}
	if s.Dedupe.Lease < time.Second {
		add("dedupe.lease", "%s is below 1s: the lease is renewed every third of it", s.Dedupe.Lease)
	}
	if s.Dedupe.Policy != FailClosed && s.Dedupe.Policy != FailOpen {
		add("dedupe.policy", "%q is not fail-closed or fail-open", s.Dedupe.Policy)
	}
	if s.DLQTopic != "" && !topicRE.MatchString(s.DLQTopic) {
		add("dlq_topic", "%q is not a valid topic name", s.DLQTopic)
	}
	for j, t := range s.Types {
		switch p := fmt.Sprintf("types[%d]", j); {
		case c.Schemas.TypeFrom == TypeFromRecord:
			if !fullNameRE.MatchString(t) {
				add(p, "sink %q: type %q is not an Avro full name (namespace.Name), the event type under schemas.type_from: record", s.Name, t)
			}
		case c.Schemas.RegistryURL == "":
			if _, ok := c.Schemas.Subjects[t]; !ok {
				add(p, "%q is not a known subject (schemas.subjects)", t)
			}
		case strings.HasSuffix(t, "-key"):
			add(p, "sink %q: type %q is a key subject and can never match: an event's type is the subject of its value schema (with TopicNameStrategy %q)", s.Name, t, c.Kafka.Topic+"-value")
		}
	}
	return ps
}

// loopbackHost reports whether host names this machine: localhost or a
// loopback address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
