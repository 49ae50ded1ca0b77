package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/naming"
	"github.com/fanout-dev/fanout/redact"
	"github.com/fanout-dev/fanout/schemas/builtin"
	"github.com/fanout-dev/fanout/sink"
)

// Config is one fanout.yaml. Every field's comment states its default.
type Config struct {
	Kafka   Kafka   `yaml:"kafka"`
	Redis   Redis   `yaml:"redis"`
	Schemas Schemas `yaml:"schemas"`
	Events  Events  `yaml:"events"`
	Run     Run     `yaml:"run"`
	Tracing Tracing `yaml:"tracing"`
	Sinks   []Sink  `yaml:"sinks"`

	lines    map[string]int
	expanded map[string]string // path → value that ${VAR} or ${file:PATH} gave it
}

// Kafka is the cluster and the topic fanout reads.
type Kafka struct {
	Brokers     []string `yaml:"brokers"`      // required, host:port
	Topic       string   `yaml:"topic"`        // required: the topic upstream publishes to
	GroupPrefix string   `yaml:"group_prefix"` // default "fanout.": a sink's group is prefix + sink name
	ClientID    string   `yaml:"client_id"`    // default "fanout"
	// SessionTimeout is how long the group waits for a silent member (a
	// crashed process) before giving its partitions away; default 45s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout bounds how long members may take to rejoin during a
	// rebalance; default 60s. run.revoke_timeout must be below it.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// InstanceID turns on static group membership (KIP-345): the process's
	// member of every group it joins (each sink's and each tier's) carries
	// this id, so a restart within session_timeout takes its partitions
	// back without a rebalance. Default "" (dynamic membership). It must be
	// unique among the processes sharing a config, e.g. ${HOSTNAME};
	// characters [a-zA-Z0-9._-], at most 249.
	InstanceID string `yaml:"instance_id"`
	// TLS and SASL secure the connection to every broker (see KafkaTLS and
	// KafkaSASL); both default to off: a plaintext, unauthenticated cluster.
	TLS  KafkaTLS  `yaml:"tls"`
	SASL KafkaSASL `yaml:"sasl"`
}

// KafkaTLS is TLS to the brokers. File paths are relative to the working
// directory; the files are read when the config is loaded.
type KafkaTLS struct {
	Enabled    bool   `yaml:"enabled"`     // default false
	CAFile     string `yaml:"ca_file"`     // default "": the system roots
	CertFile   string `yaml:"cert_file"`   // default "": no client certificate; with key_file for mTLS
	KeyFile    string `yaml:"key_file"`    // default "": with cert_file
	ServerName string `yaml:"server_name"` // default "": the host of the broker address dialed
}

// SASL mechanisms kafka.sasl.mechanism accepts.
const (
	SASLPlain       = "PLAIN"
	SASLScram256    = "SCRAM-SHA-256"
	SASLScram512    = "SCRAM-SHA-512"
	SASLOAuthBearer = "OAUTHBEARER"
	SASLAWSMSKIAM   = "AWS_MSK_IAM"
)

// KafkaSASL is SASL authentication to the brokers. Secret fields take
// ${VAR}; no error or log line ever holds their values.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or
	// AWS_MSK_IAM; default "": no SASL.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"` // PLAIN, SCRAM: required
	Password  string `yaml:"password"` // PLAIN, SCRAM: required; secret
	// OAUTHBEARER takes either a static Token or client credentials
	// (TokenURL, ClientID, ClientSecret, Scopes) that fetch a token from
	// the endpoint and fetch the next one before it expires.
	Token        string   `yaml:"token"`         // secret
	TokenURL     string   `yaml:"token_url"`     // an absolute http(s) URL
	ClientID     string   `yaml:"client_id"`     // with token_url
	ClientSecret string   `yaml:"client_secret"` // with token_url; secret
	Scopes       []string `yaml:"scopes"`        // default none
	// Extensions are OAUTHBEARER SASL extensions (KIP-342), e.g.
	// logicalCluster and identityPoolId for Confluent Cloud; default none.
	Extensions map[string]string `yaml:"extensions"`
	// AWS_MSK_IAM takes its credentials from the AWS default chain
	// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, the
	// shared config and credentials files with AWS_PROFILE, web identity,
	// the ECS and EC2 instance roles) and needs kafka.tls.enabled.
}

// Redis is the dedupe store. An empty addr means the in-memory store, which only
// protects a single process and forgets everything on restart.
type Redis struct {
	Addr        string        `yaml:"addr"`         // default "": the in-memory store, unless sentinel is set; comma-separated = cluster
	Username    string        `yaml:"username"`     // default ""
	Password    string        `yaml:"password"`     // default ""; use ${REDIS_PASSWORD}
	DB          int           `yaml:"db"`           // default 0
	KeyPrefix   string        `yaml:"key_prefix"`   // default "fanout:dedupe:"
	DialTimeout time.Duration `yaml:"dial_timeout"` // default 2s
	Mode        string        `yaml:"mode"`         // default "" (auto): sentinel when sentinel.master_name is set, cluster when addr lists several addresses, else single
	TLS         RedisTLS      `yaml:"tls"`          // default off
	Sentinel    Sentinel      `yaml:"sentinel"`     // default none
}

// Schemas says where writer schemas are found by id.
type Schemas struct {
	Dir         string         `yaml:"dir"`          // default "": the schemas shipped inside fanout
	Subjects    map[string]int `yaml:"subjects"`     // subject → schema id for dir; default the shipped mapping
	RegistryURL string         `yaml:"registry_url"` // default "": when set, a Confluent-compatible Schema Registry is used instead of dir
	TypeFrom    string         `yaml:"type_from"`    // default "subject": an event's type is its schema's subject, or "record": the record's Avro full name
	// RegistryAuth and RegistryTLS are how fanout authenticates to the
	// registry and trusts it; default none and the system roots.
	RegistryAuth RegistryAuth `yaml:"registry_auth"`
	RegistryTLS  RegistryTLS  `yaml:"registry_tls"`
}

// RegistryAuth is basic auth (username and password; Confluent Cloud: API
// key and secret) or a bearer token, not both. User info in registry_url
// is basic auth too, as before; not together with these.
type RegistryAuth struct {
	Username string `yaml:"username"` // default ""
	Password string `yaml:"password"` // default ""; use ${SR_PASSWORD}
	Token    string `yaml:"token"`    // default ""; use ${SR_TOKEN}
}

// RegistryTLS is the TLS of an https registry_url.
type RegistryTLS struct {
	CAFile     string `yaml:"ca_file"`     // default "": the system roots
	CertFile   string `yaml:"cert_file"`   // default "": no client certificate; with key_file for mutual TLS
	KeyFile    string `yaml:"key_file"`    // default ""
	ServerName string `yaml:"server_name"` // default the URL's host
}

func (t RegistryTLS) set() bool { return t != RegistryTLS{} }

// Events says how an event's identity and key are found.
type Events struct {
	IDField  string `yaml:"id_field"`  // default "id": Avro field holding the event id (else header event-id, else topic/partition/offset)
	KeyField string `yaml:"key_field"` // default "id": field fanout emit uses as the Kafka record key
}

// Run holds process-wide settings of fanout run.
type Run struct {
	DrainTimeout  time.Duration `yaml:"drain_timeout"`  // default 30s: how long SIGTERM waits for in-flight deliveries
	RevokeTimeout time.Duration `yaml:"revoke_timeout"` // default 20s: in-flight deadline of revoked partitions (below the rebalance timeout)
	AdminAddr     string        `yaml:"admin_addr"`     // default "": no admin HTTP listener
	// AdminToken, when set, is the bearer token the admin endpoint requires
	// for everything but /healthz and /readyz; default "" (no token, only a
	// loopback admin_addr is allowed). Give it as ${ADMIN_TOKEN} or
	// ${file:/run/secrets/admin-token}; at least 16 characters.
	AdminToken string `yaml:"admin_token"`
	AdminPprof bool   `yaml:"admin_pprof"` // default false: /debug/pprof is not served
}

// Tracing is where fanout's spans go: a consume span per record and a client
// span per HTTP attempt, continuing each event's trace.
type Tracing struct {
	OTLPEndpoint string   `yaml:"otlp_endpoint"` // default "": OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT, else no spans exported; e.g. http://127.0.0.1:4318 (OTLP/HTTP)
	SampleRatio  *float64 `yaml:"sample_ratio"`  // default OTEL_TRACES_SAMPLER/_ARG, else 1: share of new traces sampled; an event's own sampling decision is always followed
	ServiceName  string   `yaml:"service_name"`  // default OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES), else "fanout"
	// Headers go with every export, e.g. {Authorization: "Bearer ${OTLP_TOKEN}"}
	// or a vendor's API-key header; default none (OTEL_EXPORTER_OTLP_HEADERS
	// applies then). Every value is treated as a secret.
	Headers map[string]string `yaml:"headers"`
}

// Sink is one downstream API.
type Sink struct {
	Name          string            `yaml:"name"`            // required, [a-z0-9_-]
	URL           string            `yaml:"url"`             // required, absolute http(s)
	Method        string            `yaml:"method"`          // default POST
	Headers       map[string]string `yaml:"headers"`         // default none; values may be templates ({{ .Record.plan }})
	Body          string            `yaml:"body"`            // default "": the record's JSON
	ContentType   string            `yaml:"content_type"`    // default application/json
	Timeout       time.Duration     `yaml:"timeout"`         // default 10s per attempt
	Retry         Retry             `yaml:"retry"`           // in-line retries
	Ordering      string            `yaml:"ordering"`        // default "partition": partition | key | unordered
	MaxInFlight   int               `yaml:"max_in_flight"`   // default consumer.DefaultMaxInFlight (64)
	Start         string            `yaml:"start"`           // default "earliest": earliest | latest | RFC 3339 time (new group only)
	Types         []string          `yaml:"types"`           // default all: event types (schema subjects) this sink receives
	IDField       string            `yaml:"id_field"`        // default events.id_field
	DLQTopic      string            `yaml:"dlq_topic"`       // default <topic>.<sink>.dlq
	Dedupe        Dedupe            `yaml:"dedupe"`          // idempotency store use
	MaxEventBytes int               `yaml:"max_event_bytes"` // default 1 MiB: larger records are dead-lettered
	MaxEventAge   time.Duration     `yaml:"max_event_age"`   // default 0 (none): older events are dead-lettered (too-old)
	Breaker       Breaker           `yaml:"breaker"`         // circuit breaker
	RateLimit     RateLimit         `yaml:"rate_limit"`      // flow control
	Batch         Batch             `yaml:"batch"`           // several events per request (CloudEvents batch)
	// PropagateHeaders forwards these Kafka record headers (case-insensitive
	// names) as request headers, e.g. [authorization, x-tenant-id]; default
	// none. Header templates read record headers as {{ index .Headers "k" }}.
	PropagateHeaders []string `yaml:"propagate_headers"`
	// AllowPlainHTTP lets url be http:// to a host that is not loopback;
	// default false: such a url is refused (events and credentials would go
	// in the clear).
	AllowPlainHTTP bool    `yaml:"allow_plain_http"`
	TLS            SinkTLS `yaml:"tls"`            // TLS to an https url: a private CA, mutual TLS
	Auth           Auth    `yaml:"auth"`           // the sink's own credentials (see sink.AuthConfig)
	Signing        Signing `yaml:"signing"`        // Standard Webhooks signatures
	MaxBodyBytes   int     `yaml:"max_body_bytes"` // default 8 MiB (at most 64 MiB): a larger rendered body is parked (render-failed)
}

// Auth is a sink's own credentials: one type and its fields.
type Auth struct {
	Type string `yaml:"type"` // default "": none; bearer | basic | header | oauth2
	// Token is the bearer token (type bearer); given as ${file:PATH} it is
	// read again when the file changes, as token_file is.
	Token     string      `yaml:"token"`
	TokenFile string      `yaml:"token_file"` // type bearer: a file holding the token, read again when it changes
	Username  string      `yaml:"username"`   // type basic
	Password  string      `yaml:"password"`   // type basic
	Header    string      `yaml:"header"`     // type header: the header's name, e.g. X-Api-Key
	Value     string      `yaml:"value"`      // type header: its value
	OAuth2    OAuth2Grant `yaml:"oauth2"`     // type oauth2

	tokenFromFile bool // Token was ${file:TokenFile}
}

// OAuth2Grant is an OAuth 2.0 client-credentials grant (see sink.OAuth2Config).
type OAuth2Grant struct {
	TokenURL     string            `yaml:"token_url"`     // required
	ClientID     string            `yaml:"client_id"`     // required
	ClientSecret string            `yaml:"client_secret"` // required; a secret
	Scopes       []string          `yaml:"scopes"`        // default none
	Audience     string            `yaml:"audience"`      // default "": sent as the audience parameter when set
	Params       map[string]string `yaml:"params"`        // default none: extra token-request parameters
	AuthStyle    string            `yaml:"auth_style"`    // default auto: auto | header | params
	TLS          SinkTLS           `yaml:"tls"`           // TLS to an https token_url; default the system roots
}

// Signing signs every request the Standard Webhooks way (webhook-id,
// webhook-timestamp, webhook-signature).
type Signing struct {
	// Secrets sign each request, one signature per secret, so a receiver
	// can rotate: whsec_ and base64 (as Svix and Standard Webhooks issue
	// them), from ${VAR} or ${file:PATH}. Default none: unsigned.
	Secrets []string `yaml:"secrets"`
}

// SinkTLS is a sink's TLS to its API (see sink.TLSConfig).
type SinkTLS struct {
	CAFile     string `yaml:"ca_file"`     // default "": the system roots; else the CAs this sink trusts instead
	CertFile   string `yaml:"cert_file"`   // default "": no client certificate; with key_file for mutual TLS (re-read when the files change)
	KeyFile    string `yaml:"key_file"`    // default ""
	ServerName string `yaml:"server_name"` // default the url's host
	MinVersion string `yaml:"min_version"` // default "1.2"; or "1.3"
}

// Batch sends a sink's concurrent deliveries together: one request carries up
// to MaxEvents events as a CloudEvents JSON batch, and the API may answer per
// event. Dedupe, retries, tiers and dead letters stay per event.
type Batch struct {
	MaxEvents int           `yaml:"max_events"` // default 0 (off): most events per request, up to 1000
	MaxWait   time.Duration `yaml:"max_wait"`   // default 0: a batch that is not full goes as soon as a request slot is free; >0: it waits up to this long to fill
	MaxBytes  int           `yaml:"max_bytes"`  // default 0: 1 MiB; most bytes of a request body (a single larger event goes alone), up to 64 MiB
}

// Breaker is a sink's circuit breaker: when the API keeps failing, the sink
// stops sending (its records wait, its partitions stop being fetched) instead of
// filling the retry tiers, probes with real records, and resumes when healthy.
type Breaker struct {
	Enabled      *bool         `yaml:"enabled"`       // default true
	Window       time.Duration `yaml:"window"`        // default 30s: outcomes considered
	MinRequests  int           `yaml:"min_requests"`  // default 20: fewer outcomes never open it
	FailureRatio float64       `yaml:"failure_ratio"` // default 0.5: retryable failures / outcomes that opens it
	OpenFor      time.Duration `yaml:"open_for"`      // default 10s before probing, doubling per failed probe
	MaxOpenFor   time.Duration `yaml:"max_open_for"`  // default 2m
	Probes       int           `yaml:"probes"`        // default 1: probe records at a time; this many successes close it
	// ConsecutiveFailures opens it on that many retryable failures in a row,
	// whatever the window holds; default 20, -1 disables.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
}

// RateLimit paces a sink's requests.
type RateLimit struct {
	Rate  float64 `yaml:"rate"`  // default 0 (unlimited): attempts per second, retries included (one per event, also in a batch)
	Burst int     `yaml:"burst"` // default max(1, rate/10)
}

// Retry is a sink's in-line retry budget.
type Retry struct {
	Attempts        int           `yaml:"attempts"`         // default 5
	BackoffBase     time.Duration `yaml:"backoff_base"`     // default 100ms
	BackoffCap      time.Duration `yaml:"backoff_cap"`      // default 10s
	RetryAfterCap   time.Duration `yaml:"retry_after_cap"`  // default 30s
	RetryStatus     []int         `yaml:"retry_status"`     // default none: extra retryable statuses
	PermanentStatus []int         `yaml:"permanent_status"` // default none: statuses never retried
	// Tiers are the delays of the retry tiers a record goes through once its
	// in-line attempts are spent on a retryable failure; after the last, the
	// DLQ. Default [10s, 1m, 10m]; [] = straight to the DLQ.
	Tiers []time.Duration `yaml:"tiers"`
	// TierTopics names the tiers' topics; default <topic>.<sink>.retry.<n>.
	TierTopics []string `yaml:"tier_topics"`
}

// Dedupe is how a sink uses the idempotency store.
type Dedupe struct {
	Enabled *bool         `yaml:"enabled"` // default true
	Policy  string        `yaml:"policy"`  // default fail-closed: fail-closed | fail-open when Redis is unreachable
	TTL     time.Duration `yaml:"ttl"`     // default 168h: how long a delivered id is remembered
	Lease   time.Duration `yaml:"lease"`   // default 30s, renewed every lease/3 while a delivery runs: how long a crashed owner's claims block redelivery
}

// Ordering modes.
const (
	OrderPartition = "partition"
	OrderKey       = "key"
	OrderUnordered = "unordered"
)

// Dedupe policies.
const (
	FailClosed = "fail-closed"
	FailOpen   = "fail-open"
)

// Load reads, expands, decodes, defaults and validates path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, osEnv)
}

// FilePath is the Problem.Path of what is wrong with the file as a whole: it
// is empty, is not YAML, or its document is not a mapping.
const FilePath = "(file)"

// Parse is Load on bytes; env looks variables up (os.LookupEnv in Load).
//
// A file that is not one YAML mapping (empty, only comments, a syntax error, a
// list or a scalar) returns a nil *Config and an *Error whose only problem is
// at FilePath: nothing in it can be checked further.
func Parse(name string, data []byte, env func(string) (string, bool)) (*Config, error) {
	fileErr := func(line int, msg string) error {
		return &Error{File: name, Problems: []Problem{{Path: FilePath, Line: line, Msg: msg}}}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fileErr(0, "holds no YAML document (empty or only comments): want a mapping with kafka and sinks")
		}
		return nil, fileErr(0, "not valid YAML: "+yamlMsg(err))
	}
	if len(root.Content) != 1 {
		return nil, fileErr(0, "holds no YAML document: want a mapping with kafka and sinks")
	}
	if doc := root.Content[0]; doc.Kind != yaml.MappingNode && !(doc.Kind == yaml.ScalarNode && doc.Tag == "!!null") {
		return nil, fileErr(doc.Line, "want a mapping with kafka and sinks, got "+kindName(doc))
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		line := 0
		if err == nil {
			line = next.Line
		}
		return nil, fileErr(line, "holds more than one YAML document (a second ---): want one mapping")
	}
	d := &decoder{lines: map[string]int{}, env: env, readFile: os.ReadFile, expanded: map[string]string{}, fileRefs: map[string]string{}}
	cfg := &Config{}
	d.decode("", root.Content[0], reflectValue(cfg))
	cfg.lines = d.lines
	cfg.expanded = d.expanded
	for i := range cfg.Sinks {
		a := &cfg.Sinks[i].Auth
		if f, ok := d.fileRefs[fmt.Sprintf("sinks[%d].auth.token", i)]; ok && a.TokenFile == "" {
			a.TokenFile, a.tokenFromFile = f, true
		}
	}
	cfg.applyDefaults()
	problems := d.problems
	for _, p := range cfg.validate() {
		if !hasPath(d.problems, p.Path) { // the decoder's problem there is the cause
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		// No value that came from ${...}, and no secret, is ever shown.
		hide := redact.New(withShownForms(append(cfg.Secrets(), slices.Collect(maps.Values(d.expanded))...))...)
		for i := range problems {
			problems[i].Msg = hide.String(problems[i].Msg)
		}
		return cfg, &Error{File: name, Problems: problems}
	}
	return cfg, nil
}

func hasPath(ps []Problem, path string) bool {
	for _, p := range ps {
		if p.Path == path {
			return true
		}
	}
	return false
}

func yamlMsg(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// Line returns the line a path was read from, 0 if it was not in the file.
func (c *Config) Line(path string) int { return c.lines[path] }

// LineNear returns the line of path or, when path was not in the file (a
// required field left out), of its nearest parent that was.
func (c *Config) LineNear(path string) int { return c.lineOf(path) }

func (c *Config) applyDefaults() {
	c.Kafka.GroupPrefix = cmp.Or(c.Kafka.GroupPrefix, naming.DefaultGroupPrefix)
	c.Kafka.ClientID = cmp.Or(c.Kafka.ClientID, "fanout")
	c.Kafka.SessionTimeout = cmp.Or(c.Kafka.SessionTimeout, 45*time.Second)
	c.Kafka.RebalanceTimeout = cmp.Or(c.Kafka.RebalanceTimeout, 60*time.Second)
	c.Redis.KeyPrefix = cmp.Or(c.Redis.KeyPrefix, dedupe.DefaultPrefix)
	c.Redis.DialTimeout = cmp.Or(c.Redis.DialTimeout, 2*time.Second)
	c.Events.IDField = cmp.Or(c.Events.IDField, "id")
	c.Events.KeyField = cmp.Or(c.Events.KeyField, "id")
	c.Run.DrainTimeout = cmp.Or(c.Run.DrainTimeout, 30*time.Second)
	c.Run.RevokeTimeout = cmp.Or(c.Run.RevokeTimeout, 20*time.Second)
	for i := range c.Sinks {
		s := &c.Sinks[i]
		if s.Method == "" {
			s.Method = sink.DefaultMethod
		}
		s.Method = strings.ToUpper(s.Method)
		if s.ContentType == "" {
			s.ContentType = sink.DefaultContentType
		}
		if s.Timeout == 0 {
			s.Timeout = sink.DefaultTimeout
		}
		if s.Retry.Attempts == 0 {
			s.Retry.Attempts = sink.DefaultAttempts
		}
		if s.Retry.BackoffBase == 0 {
			s.Retry.BackoffBase = sink.DefaultBackoffBase
		}
		if s.Retry.BackoffCap == 0 {
			s.Retry.BackoffCap = sink.DefaultBackoffCap
		}
		if s.Retry.RetryAfterCap == 0 {
			s.Retry.RetryAfterCap = sink.DefaultRetryAfterCap
		}
		if s.Retry.Tiers == nil {
			s.Retry.Tiers = []time.Duration{10 * time.Second, time.Minute, 10 * time.Minute}
		}
		if s.Retry.TierTopics == nil && c.Kafka.Topic != "" && s.Name != "" {
			for n := range s.Retry.Tiers {
				s.Retry.TierTopics = append(s.Retry.TierTopics, naming.TierTopic(c.Kafka.Topic, s.Name, n+1))
			}
		}
		if s.Ordering == "" {
			s.Ordering = OrderPartition
		}
		if s.MaxInFlight == 0 {
			s.MaxInFlight = consumer.DefaultMaxInFlight
		}
		if s.Start == "" {
			s.Start = "earliest"
		}
		if s.IDField == "" {
			s.IDField = c.Events.IDField
		}
		if s.DLQTopic == "" && c.Kafka.Topic != "" && s.Name != "" {
			s.DLQTopic = naming.DLQTopic(c.Kafka.Topic, s.Name)
		}
		if s.Dedupe.Enabled == nil {
			t := true
			s.Dedupe.Enabled = &t
		}
		if s.Dedupe.Policy == "" {
			s.Dedupe.Policy = FailClosed
		}
		if s.Dedupe.TTL == 0 {
			s.Dedupe.TTL = dedupe.DefaultDoneTTL
		}
		if s.Dedupe.Lease == 0 {
			s.Dedupe.Lease = dedupe.DefaultLease
		}
		if s.MaxEventBytes == 0 {
			s.MaxEventBytes = 1 << 20
		}
		if s.Breaker.Enabled == nil {
			t := true
			s.Breaker.Enabled = &t
		}
	}
	if c.Schemas.TypeFrom == "" {
		c.Schemas.TypeFrom = TypeFromSubject
	}
	if c.Schemas.Dir == "" && c.Schemas.RegistryURL == "" && c.Schemas.Subjects == nil {
		c.Schemas.Subjects = map[string]int{}
		for k, v := range builtin.Subjects {
			c.Schemas.Subjects[k] = v
		}
	}
}

// Values of schemas.type_from (schemas.TypeFromSubject, schemas.TypeFromRecord).
const (
	TypeFromSubject = "subject"
	TypeFromRecord  = "record"
)

// fullNameRE is an Avro full name (namespace.name), the shape of an event
// type under type_from: record.
var fullNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// StartTime returns the timestamp of a start position given as a time, ok=false
// for earliest/latest.
func (s *Sink) StartTime() (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s.Start)
	return t, err == nil
}

// lineOf finds the line of path or of its nearest parent that was in the file.
func (c *Config) lineOf(path string) int {
	for path != "" {
		if l, ok := c.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}
