package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fanout-dev/fanout/redact"
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
	MaxInFlight   int               `yaml:"max_in_flight"`   // default 64
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
	if c.Kafka.GroupPrefix == "" {
		c.Kafka.GroupPrefix = "fanout."
	}
	if c.Kafka.ClientID == "" {
		c.Kafka.ClientID = "fanout"
	}
	if c.Kafka.SessionTimeout == 0 {
		c.Kafka.SessionTimeout = 45 * time.Second
	}
	if c.Kafka.RebalanceTimeout == 0 {
		c.Kafka.RebalanceTimeout = 60 * time.Second
	}
	if c.Redis.KeyPrefix == "" {
		c.Redis.KeyPrefix = "fanout:dedupe:"
	}
	if c.Redis.DialTimeout == 0 {
		c.Redis.DialTimeout = 2 * time.Second
	}
	if c.Events.IDField == "" {
		c.Events.IDField = "id"
	}
	if c.Events.KeyField == "" {
		c.Events.KeyField = "id"
	}
	if c.Run.DrainTimeout == 0 {
		c.Run.DrainTimeout = 30 * time.Second
	}
	if c.Run.RevokeTimeout == 0 {
		c.Run.RevokeTimeout = 20 * time.Second
	}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		if s.Method == "" {
			s.Method = "POST"
		}
		s.Method = strings.ToUpper(s.Method)
		if s.ContentType == "" {
			s.ContentType = "application/json"
		}
		if s.Timeout == 0 {
			s.Timeout = 10 * time.Second
		}
		if s.Retry.Attempts == 0 {
			s.Retry.Attempts = 5
		}
		if s.Retry.BackoffBase == 0 {
			s.Retry.BackoffBase = 100 * time.Millisecond
		}
		if s.Retry.BackoffCap == 0 {
			s.Retry.BackoffCap = 10 * time.Second
		}
		if s.Retry.RetryAfterCap == 0 {
			s.Retry.RetryAfterCap = 30 * time.Second
		}
		if s.Retry.Tiers == nil {
			s.Retry.Tiers = []time.Duration{10 * time.Second, time.Minute, 10 * time.Minute}
		}
		if s.Retry.TierTopics == nil && c.Kafka.Topic != "" && s.Name != "" {
			for n := range s.Retry.Tiers {
				s.Retry.TierTopics = append(s.Retry.TierTopics, fmt.Sprintf("%s.%s.retry.%d", c.Kafka.Topic, s.Name, n+1))
			}
		}
		if s.Ordering == "" {
			s.Ordering = OrderPartition
		}
		if s.MaxInFlight == 0 {
			s.MaxInFlight = 64
		}
		if s.Start == "" {
			s.Start = "earliest"
		}
		if s.IDField == "" {
			s.IDField = c.Events.IDField
		}
		if s.DLQTopic == "" && c.Kafka.Topic != "" && s.Name != "" {
			s.DLQTopic = c.Kafka.Topic + "." + s.Name + ".dlq"
		}
		if s.Dedupe.Enabled == nil {
			t := true
			s.Dedupe.Enabled = &t
		}
		if s.Dedupe.Policy == "" {
			s.Dedupe.Policy = FailClosed
		}
		if s.Dedupe.TTL == 0 {
			s.Dedupe.TTL = 7 * 24 * time.Hour
		}
		if s.Dedupe.Lease == 0 {
			s.Dedupe.Lease = 30 * time.Second
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
		for k, v := range builtinSubjects {
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

// builtinSubjects mirrors schemas.BuiltinSubjects; config must not import the
// schemas package's Avro machinery, and cmd checks the two agree.
var builtinSubjects = map[string]int{"user.registered": 1, "order.placed": 2}

// StartTime returns the timestamp of a start position given as a time, ok=false
// for earliest/latest.
func (s *Sink) StartTime() (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s.Start)
	return t, err == nil
}

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
	if s.Batch.MaxBytes < 0 || s.Batch.MaxBytes > 64<<20 {
		add("batch.max_bytes", "%d is not within 0..%d (0: 1 MiB)", s.Batch.MaxBytes, 64<<20)
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
