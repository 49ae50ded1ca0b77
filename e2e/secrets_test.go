package e2e

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"go.yaml.in/yaml/v3"

	"github.com/fanout-dev/fanout/e2e/services"
	"github.com/fanout-dev/fanout/tracing/otlptest"
)

// auditWorld is what a secret field's value is made from: the services'
// addresses and a directory for ${file:PATH} secrets.
type auditWorld struct {
	dir, redis, target, otlp string
}

// file writes content to a file named for the field and returns
// ${file:PATH} for it.
func (w auditWorld) file(name, content string) string {
	p := filepath.Join(w.dir, name)
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		panic(err)
	}
	return "${file:" + p + "}"
}

// auditField is one secret-bearing config field: the secrets it holds (each
// distinctive, grepped for everywhere), its good value and a wrong one that
// still holds the secret (so a wrong-value error that echoes it is caught).
// wrong "" skips the field in the bad-input round; good "" leaves the field
// out of the good config (a field only ever wrong).
type auditField struct {
	path        string
	secrets     []string
	good, wrong func(w auditWorld) string
	with        map[string]string // other (non-secret) paths the wrong value needs, e.g. a SASL mechanism
}

// auditEnv is the environment every fanout command of the audit gets: the
// ${VAR} secrets.
var auditEnv = []string{"AUDIT_ADMIN_TOKEN=AuditAdminToken-9a8b7c6d5e4f", "AUDIT_MISTYPED=AuditMistyped-6f7a8b"}

// auditFields lists every secret field. ADDING A SECRET FIELD IS ONE ROW
// HERE: the good config, the wrong-value runs and the grep follow. The SASL
// and registry_auth rows are wrong-only (the shared broker is plaintext and
// has no registry); their good paths are the security e2e tests', which grep
// their own secrets (kafka_security_test.go, registry_refs_test.go).
var auditFields = []auditField{
	{"redis.password", []string{"AuditRedisPw-5d1c2b"}, func(w auditWorld) string { return w.file("redis-pw", "AuditRedisPw-5d1c2b") }, func(w auditWorld) string { return w.file("redis-pw-wrong", "AuditRedisPw-5d1c2b-WRONG") }, nil},
	{"run.admin_token", []string{"AuditAdminToken-9a8b7c6d5e4f"}, func(auditWorld) string { return "${AUDIT_ADMIN_TOKEN}" }, func(auditWorld) string { return "${AUDIT_ADMIN_TOKEN} x" }, nil},
	{"sinks[0].headers.Authorization", []string{"AuditBearer-3e4f5a6b"}, func(auditWorld) string { return "Bearer AuditBearer-3e4f5a6b" }, func(auditWorld) string { return "Bearer AuditBearer-3e4f5a6b-OLD" }, nil},
	{"sinks[0].url", []string{"AuditUrlPw-77aa88", "AuditUrlQuery-99bb00"}, func(w auditWorld) string {
		return "http://audit:AuditUrlPw-77aa88@" + w.target + "/x?token=AuditUrlQuery-99bb00"
	}, func(w auditWorld) string {
		return "htps://audit:AuditUrlPw-77aa88@" + w.target + "/x?token=AuditUrlQuery-99bb00"
	}, nil},
	{"tracing.otlp_endpoint", []string{"AuditOtelPw-1b2c3d", "AuditOtelQuery-4d5e6f"}, func(w auditWorld) string {
		return "http://otel:AuditOtelPw-1b2c3d@" + w.otlp + "/?token=AuditOtelQuery-4d5e6f"
	}, func(w auditWorld) string {
		return "htps://otel:AuditOtelPw-1b2c3d@" + w.otlp + "/?token=AuditOtelQuery-4d5e6f"
	}, nil},
	{"tracing.headers.Authorization", []string{"AuditOtlpHeader-3c4d5e"}, func(auditWorld) string { return "Bearer AuditOtlpHeader-3c4d5e" },
		func(auditWorld) string { return "Bearer AuditOtlpHeader-3c4d5e\nX-Injected: 1" }, nil},
	{"sinks[0].auth.value", []string{"AuditApiKey-4b5c6d7e"}, func(auditWorld) string { return "AuditApiKey-4b5c6d7e" },
		func(auditWorld) string { return "AuditApiKey-4b5c6d7e\nX-Injected: 1" }, nil},
	{"sinks[0].signing.secrets", []string{auditSigningSecret, strings.TrimPrefix(auditSigningSecret, "whsec_")}, nil,
		func(w auditWorld) string { return w.file("signing-wrong", auditSigningSecret) }, nil}, // a string, not a list
	{"sinks[0].auth.oauth2.client_secret", []string{"AuditSinkOAuth-9f8e7d"}, nil, func(auditWorld) string { return "AuditSinkOAuth-9f8e7d" },
		map[string]string{"sinks[0].auth.type": "oauth2", "sinks[0].auth.oauth2.token_url": "http://127.0.0.1:1/token", "sinks[0].auth.oauth2.client_id": "audit"}},
	{"redis.db", []string{"AuditMistyped-6f7a8b"}, nil, func(auditWorld) string { return "${AUDIT_MISTYPED}" }, nil},
	{"schemas.registry_url", []string{"AuditRegistryPw-2c3d4e", "AuditRegistryQuery-5f6a7b"}, nil, func(auditWorld) string {
		return "http://sr:AuditRegistryPw-2c3d4e@127.0.0.1:1/?token=AuditRegistryQuery-5f6a7b"
	}, nil},
	{"kafka.sasl.password", []string{"AuditSaslPw-8c9d0e"}, nil, func(auditWorld) string { return "AuditSaslPw-8c9d0e" },
		map[string]string{"kafka.sasl.mechanism": "SCRAM-SHA-512", "kafka.sasl.username": "audit"}},
	{"kafka.sasl.token", []string{"AuditSaslToken-5e6f7a"}, nil, func(auditWorld) string { return "AuditSaslToken-5e6f7a" },
		map[string]string{"kafka.sasl.mechanism": "OAUTHBEARER"}},
	{"kafka.sasl.client_secret", []string{"AuditOAuthSecret-1a2b3c"}, nil, func(auditWorld) string { return "AuditOAuthSecret-1a2b3c" },
		map[string]string{"kafka.sasl.mechanism": "OAUTHBEARER", "kafka.sasl.token_url": "http://127.0.0.1:1/token", "kafka.sasl.client_id": "audit"}},
	{"schemas.registry_auth.password", []string{"AuditRegistryAuthPw-7a8b9c"}, nil, func(auditWorld) string { return "AuditRegistryAuthPw-7a8b9c" },
		map[string]string{"schemas.registry_url": "http://127.0.0.1:1", "schemas.registry_auth.username": "audit"}},
	{"schemas.registry_auth.token", []string{"AuditRegistryToken-0d1e2f"}, nil, func(auditWorld) string { return "AuditRegistryToken-0d1e2f" },
		map[string]string{"schemas.registry_url": "http://127.0.0.1:1"}},
}

// auditSigningSecret is the good config's signing secret (given through a
// ${file:PATH}); its key is grepped too.
const auditSigningSecret = "whsec_QXVkaXRTaWduaW5nS2V5LTAxMjM0NTY3ODlhYmNkZWY="

// setPath sets a dotted path (sinks[0].headers.Authorization) in a YAML tree.
func setPath(tree map[string]any, path, value string) {
	parts := strings.Split(path, ".")
	var cur any = tree
	for i, p := range parts {
		last := i == len(parts)-1
		name, idx := p, -1
		if m := regexp.MustCompile(`^(.*)\[(\d+)\]$`).FindStringSubmatch(p); m != nil {
			name, idx = m[1], func() int { n, _ := strconv.Atoi(m[2]); return n }()
		}
		m := cur.(map[string]any)
		if idx >= 0 {
			cur = m[name].([]any)[idx]
			continue
		}
		if last {
			m[name] = value
			return
		}
		if _, ok := m[name]; !ok {
			m[name] = map[string]any{}
		}
		cur = m[name]
	}
}

// TestNoSecretPrinted is the secret audit: a config with a distinctive
// secret in every secret field runs every command on good and bad inputs
// (each field wrong, an unreachable broker, an API that echoes the request
// into its 400 and 503 bodies); then all output, every DLQ and tier record
// (headers and value), every exported span and the admin endpoints are
// searched for each secret: zero hits.
func TestNoSecretPrinted(t *testing.T) {
	const n = 30
	s := newScenario(t, "secrets", n)
	rcv, err := otlptest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()

	// A redis-server of its own, with a password.
	rs := services.NewRedis(t)
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr})
	if err := rc.ConfigSet(context.Background(), "requirepass", "AuditRedisPw-5d1c2b").Err(); err != nil {
		t.Fatal(err)
	}
	rc.Close()

	// The API echoes everything it got (headers and URL) in its error
	// bodies: a third of the events are accepted, a third refused (400,
	// dead-lettered at once), a third fail (503: retries, the tier, the DLQ).
	var accepted = map[string]bool{}
	var mu = make(chan struct{}, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		key := r.Header.Get("Idempotency-Key")
		h := fnv.New32a()
		h.Write([]byte(key))
		echo := fmt.Sprintf(`{"error":"refused","url":%q,"headers":%q}`, r.URL.String(), fmt.Sprint(r.Header))
		switch h.Sum32() % 3 {
		case 0:
			mu <- struct{}{}
			accepted[key] = true
			<-mu
			w.WriteHeader(200)
		case 1:
			w.WriteHeader(400)
			io.WriteString(w, echo)
		default:
			w.WriteHeader(503)
			io.WriteString(w, echo)
		}
	}))
	defer api.Close()

	w := auditWorld{dir: t.TempDir(), redis: rs.Addr, target: strings.TrimPrefix(api.URL, "http://"), otlp: strings.TrimPrefix(rcv.URL, "http://")}
	adminAddr := freeLoopback(t)
	base := func() map[string]any {
		doc := fmt.Sprintf(`kafka: {brokers: [%q], topic: %s, group_prefix: %s, session_timeout: 6s, rebalance_timeout: 20s}
redis: {addr: %q, key_prefix: "%s:"}
run: {drain_timeout: 10s, revoke_timeout: 5s, admin_addr: %q, admin_pprof: true}
tracing: {service_name: fanout-audit}
sinks:
  - name: audit
    url: %q
    headers: {X-Trace: plain}
    auth: {type: header, header: X-Api-Key}
    signing: {secrets: [%q]}
    retry: {attempts: 2, backoff_base: 5ms, backoff_cap: 10ms, tiers: [1s]}
    breaker: {enabled: false}
`, kafka.Addr, s.topic, s.prefix, rs.Addr, s.topic, adminAddr, api.URL, w.file("signing-secret", auditSigningSecret))
		var tree map[string]any
		if err := yaml.Unmarshal([]byte(doc), &tree); err != nil {
			t.Fatal(err)
		}
		return tree
	}
	write := func(name string, tree map[string]any) string {
		b, err := yaml.Marshal(tree)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(s.dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := base()
	for _, f := range auditFields {
		if f.good != nil {
			setPath(good, f.path, f.good(w))
		}
	}
	goodCfg := write("good.yaml", good)

	// Everything fanout writes, by where it came from.
	corpus := map[string]string{}
	cmd := func(label string, timeout time.Duration, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c := exec.CommandContext(ctx, fanoutBin, args...)
		c.Env = append(os.Environ(), auditEnv...)
		out, err := c.CombinedOutput()
		corpus["output of "+label+": fanout "+strings.Join(args, " ")] = string(out)
		t.Logf("fanout %s (%s): %v\n%s", strings.Join(args, " "), label, err, tail(string(out), 8))
		return string(out)
	}

	// Good inputs: every command.
	cmd("good", time.Minute, "validate", "-c", goodCfg)
	cmd("good", time.Minute, "topics", "ensure", "-c", goodCfg, "--partitions", "3")
	events := filepath.Join(s.dir, "events.jsonl")
	var lines []string
	for _, d := range s.docs {
		lines = append(lines, string(d))
	}
	os.WriteFile(events, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	cmd("good", time.Minute, "emit", "-c", goodCfg, "--type", "user.registered", "--file", events)

	run := exec.Command(fanoutBin, "run", "-c", goodCfg, "--stats-interval", "1s")
	run.Env = append(os.Environ(), auditEnv...)
	runOut := &syncBuffer{}
	run.Stdout, run.Stderr = runOut, runOut
	run.SysProcAttr = services.ChildProcAttr()
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	runDone := make(chan struct{})
	go func() { run.Wait(); close(runDone) }()
	defer func() {
		select {
		case <-runDone:
		default:
			run.Process.Kill()
			<-runDone
		}
	}()
	dlq := s.topic + ".audit.dlq"
	waitFor(t, 2*time.Minute, "every event accepted or dead-lettered", func() (bool, string) {
		mu <- struct{}{}
		acc := len(accepted)
		<-mu
		ends, err := admin(t).ListEndOffsets(context.Background(), dlq)
		var dead int64
		if err == nil {
			ends.Each(func(o kadm.ListedOffset) { dead += o.Offset })
		}
		return int64(acc)+dead == n, fmt.Sprintf("%d accepted, %d dead letters", acc, dead)
	})
	// The admin endpoints, with and without the token.
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/api/sinks", "/debug/pprof/cmdline", "/debug/pprof/"} {
		for _, auth := range []string{"", "Bearer AuditAdminToken-9a8b7c6d5e4f"} {
			req, _ := http.NewRequest("GET", "http://"+adminAddr+path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("admin %s: %v", path, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			corpus[fmt.Sprintf("admin %s (token %v): %d", path, auth != "", resp.StatusCode)] = string(b)
			if path == "/metrics" && (resp.StatusCode == 200) != (auth != "") {
				t.Errorf("admin /metrics with token %v: %d", auth != "", resp.StatusCode)
			}
		}
	}
	cmd("good", time.Minute, "status", "-c", goodCfg)
	list := cmd("good", time.Minute, "dlq", "list", "-c", goodCfg, "--sink", "audit", "--output", "json")
	if m := regexp.MustCompile(`"partition":\s*(\d+),\s*"offset":\s*(\d+)`).FindStringSubmatch(list); m != nil {
		cmd("good", time.Minute, "dlq", "show", "-c", goodCfg, "--sink", "audit", "--at", m[1]+":"+m[2])
	}
	cmd("good", time.Minute, "replay", "-c", goodCfg, "--sink", "audit", "--from-time", "1h", "--dry-run")
	run.Process.Signal(os.Interrupt)
	select {
	case <-runDone:
	case <-time.After(time.Minute):
		t.Error("fanout run did not stop within a minute of SIGINT")
	}
	corpus["output of fanout run (good)"] = runOut.String()
	// The commands that deliver again: their failures (the echoing API) are
	// parked again and so grepped with the records below.
	cmd("good", 2*time.Minute, "dlq", "redrive", "-c", goodCfg, "--sink", "audit", "--limit", "5", "--max-redrives", "3")
	cmd("good", 2*time.Minute, "replay", "-c", goodCfg, "--sink", "audit", "--from-time", "1h", "--bypass-dedupe")

	// Bad inputs: each field wrong, then an unreachable broker.
	for i, f := range auditFields {
		if f.wrong == nil {
			continue
		}
		tree := base()
		for _, g := range auditFields {
			if g.good != nil && g.path != f.path {
				setPath(tree, g.path, g.good(w))
			}
		}
		setPath(tree, f.path, f.wrong(w))
		for path, v := range f.with {
			setPath(tree, path, v)
		}
		p := write(fmt.Sprintf("wrong-%d.yaml", i), tree)
		label := f.path + " wrong"
		cmd(label, time.Minute, "validate", "-c", p)
		cmd(label, 30*time.Second, "status", "-c", p)
		cmd(label, 30*time.Second, "emit", "-c", p, "--type", "user.registered", "--json", string(s.docs[0]))
		cmd(label, 30*time.Second, "run", "-c", p)
	}
	down := base()
	for _, f := range auditFields {
		if f.good != nil {
			setPath(down, f.path, f.good(w))
		}
	}
	down["kafka"].(map[string]any)["brokers"] = []any{"127.0.0.1:1"}
	downCfg := write("down.yaml", down)
	for _, c := range [][]string{{"run", "-c", downCfg}, {"status", "-c", downCfg}, {"emit", "-c", downCfg, "--type", "user.registered", "--file", events}, {"topics", "ensure", "-c", downCfg}} {
		cmd("unreachable broker", 30*time.Second, c...)
	}

	// Every parked record: the DLQ and the tier, headers and value.
	parked := 0
	for _, topic := range []string{dlq, s.topic + ".audit.retry.1"} {
		for _, r := range readTopic(t, topic) {
			parked++
			var b strings.Builder
			for _, h := range r.Headers {
				fmt.Fprintf(&b, "%s=%s\n", h.Key, h.Value)
			}
			b.Write(r.Value)
			corpus[fmt.Sprintf("record %s/%d@%d", topic, r.Partition, r.Offset)] = b.String()
		}
	}
	// Every exported span: name, attributes, status message.
	spans := rcv.Spans()
	for i, sp := range spans {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s %s\n", sp.Name, sp.StatusCode, sp.StatusMsg)
		for k, v := range sp.Attrs {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
		corpus[fmt.Sprintf("span %d %s", i, sp.Name)] = b.String()
	}
	if parked == 0 || len(spans) == 0 {
		t.Fatalf("nothing to audit: %d parked records, %d spans", parked, len(spans))
	}
	echoed := 0
	for k, v := range corpus {
		if strings.HasPrefix(k, "record ") && strings.Contains(v, "fanout-response-excerpt=") && strings.Contains(v, `"error":"refused"`) {
			echoed++
		}
	}
	if echoed == 0 {
		t.Fatal("no parked record carries the API's echo: the audit would not see a leak there")
	}
	t.Logf("audited %d texts: %d parked records (%d with the echoing excerpt), %d spans", len(corpus), parked, echoed, len(spans))

	// The grep.
	names := make([]string, 0, len(corpus))
	for k := range corpus {
		names = append(names, k)
	}
	sort.Strings(names)
	hits := 0
	for _, f := range auditFields {
		for _, secret := range f.secrets {
			for _, k := range names {
				if i := strings.Index(corpus[k], secret); i >= 0 {
					if hits++; hits <= 20 {
						t.Errorf("%s's secret %s in %s: …%s…", f.path, secret, k, excerptAround(corpus[k], i, len(secret)))
					}
				}
			}
		}
	}
	if hits > 0 {
		t.Errorf("%d secret hits", hits)
	}
}

func excerptAround(s string, i, n int) string {
	from, to := max(0, i-60), min(len(s), i+n+60)
	return strings.ReplaceAll(s[from:to], "\n", "⏎")
}

// freeLoopback is a loopback host:port nobody listens on.
func freeLoopback(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
