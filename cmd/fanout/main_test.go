package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fanout.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateNamesEveryProblem(t *testing.T) {
	cfg := writeFile(t, `kafka:
  brokers: [127.0.0.1:9092]
  topic: events
sinks:
  - name: profile
    url: http://127.0.0.1:8081/users
    max_in_fligth: 8
  - name: email
    url: "htp:/nowhere"
  - url: http://127.0.0.1:8083/x
`)
	code, _, stderr := runCLI(t, "validate", "-c", cfg)
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, stderr)
	}
	for _, want := range []string{
		`sinks[0].max_in_fligth: unknown key (did you mean "max_in_flight"?) (line 7)`,
		`sinks[1].url: "htp:/nowhere" is not an absolute http(s) URL (line 9)`,
		`sinks[2].name: required (line 10)`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("validate output lacks %q:\n%s", want, stderr)
		}
	}
}

func TestValidateOKAndTemplateErrors(t *testing.T) {
	good := writeFile(t, `kafka: {brokers: [127.0.0.1:9092], topic: events}
sinks:
  - {name: profile, url: "http://127.0.0.1:8081/users", headers: {X-Plan: "{{ .Record.plan }}"}}
`)
	if code, out, stderr := runCLI(t, "validate", "-c", good); code != 0 || !strings.Contains(out, "ok (1 sinks: profile)") {
		t.Fatalf("exit %d out %q err %q", code, out, stderr)
	}
	bad := writeFile(t, `kafka: {brokers: [127.0.0.1:9092], topic: events}
sinks:
  - {name: profile, url: "http://127.0.0.1:8081/users", body: "{{ .Record.plan "}
`)
	code, _, stderr := runCLI(t, "validate", "-c", bad)
	if code != 2 || !strings.Contains(stderr, "sinks[0]") || !strings.Contains(stderr, "body") {
		t.Fatalf("exit %d, want 2 naming sinks[0] body:\n%s", code, stderr)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nope"},
		{"run"},
		{"emit", "-c", "x.yaml"},
		{"run", "--bogus"},
		{"topics"},
		{"demo", "--output", "xml"},
		{"validate", "-c", "/does/not/exist.yaml"},
	} {
		if code, _, _ := runCLI(t, args...); code != 2 {
			t.Errorf("fanout %v: exit %d, want 2", args, code)
		}
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, c := range commands {
		args := append(strings.Fields(c.name), "--help")
		code, out, _ := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, "Usage: fanout "+c.name) {
			t.Errorf("fanout %s --help: exit %d, output %q", c.name, code, out)
		}
	}
	if code, out, _ := runCLI(t, "--help"); code != 0 || !strings.Contains(out, "topics ensure") {
		t.Errorf("fanout --help: exit %d, output %q", code, out)
	}
}

// The embedded default: no Kafka, no Redis; every demo sink delivers.
func TestDemoJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for up to 15s")
	}
	code, out, stderr := runCLI(t, "demo", "--duration", "15s", "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var sum demoSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	if sum.Produced == 0 || len(sum.Sinks) != 3 {
		t.Fatalf("summary %+v", sum)
	}
	for _, s := range sum.Sinks {
		if s.Delivered == 0 {
			t.Errorf("sink %s delivered nothing", s.Sink)
		}
		if s.AcceptedTwice != 0 {
			t.Errorf("sink %s: the API accepted %d events twice", s.Sink, s.AcceptedTwice)
		}
		if !s.CaughtUp || s.Delivered+s.DeadLettered+s.Duplicates != sum.Produced {
			t.Errorf("sink %s: delivered %d + dead-lettered %d + duplicates %d != produced %d",
				s.Sink, s.Delivered, s.DeadLettered, s.Duplicates, sum.Produced)
		}
	}
	// The analytics sink batches (max_events 16): its API answers fewer
	// requests than events; profile sends one request per attempt.
	if p, a := sum.Sinks[0], sum.Sinks[2]; a.APIRequests == 0 || int64(a.APIRequests) >= a.Delivered || int64(p.APIRequests) < p.Delivered {
		t.Errorf("API requests: profile %d for %d delivered, analytics (batched) %d for %d", p.APIRequests, p.Delivered, a.APIRequests, a.Delivered)
	}
	if sum.Sinks[1].Retried == 0 {
		t.Errorf("the flaky email API caused no retries: %+v", sum.Sinks[1])
	}
}

func TestRunUnknownSinkExit2(t *testing.T) {
	cfg := writeFile(t, `kafka: {brokers: [127.0.0.1:1], topic: events}
sinks:
  - {name: profile, url: "http://127.0.0.1:8081/users"}
`)
	for _, cmd := range []string{"run", "status"} {
		code, _, stderr := runCLI(t, cmd, "-c", cfg, "--sinks", "profile,nope")
		if code != 2 || !strings.Contains(stderr, `no sink named "nope"`) {
			t.Errorf("%s: exit %d, stderr %q", cmd, code, stderr)
		}
	}
}

// run refuses to start, naming them, when the topics it needs are missing.
func TestRunNamesMissingTopics(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events", "events.profile.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := writeFile(t, `kafka: {brokers: [`+c.ListenAddrs()[0]+`], topic: events}
sinks:
  - {name: profile, url: "http://127.0.0.1:8081/users", retry: {tiers: [1s]}}
`)
	code, _, stderr := runCLI(t, "run", "-c", cfg)
	if code != 1 || !strings.Contains(stderr, "missing topics events.profile.retry.1: create them with fanout topics ensure") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// validate and run on a file that is not a YAML mapping: a config error
// (exit 2) naming the file, never a crash.
func TestValidateAndRunOnUnreadableYAML(t *testing.T) {
	for _, tt := range []struct{ name, body, want string }{
		{"empty", "", "holds no YAML document"},
		{"comments only", "# nothing\n  \n", "holds no YAML document"},
		{"syntax error", "[", "not valid YAML"},
		{"scalar", "fanout\n", `want a mapping with kafka and sinks, got "fanout" (line 1)`},
		{"list", "- a\n- b\n", "want a mapping with kafka and sinks, got a list (line 1)"},
		{"sinks not a list", "kafka: {brokers: [127.0.0.1:9092], topic: events}\nsinks: 5\n", `sinks: want a list, got "5" (line 2)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := writeFile(t, tt.body)
			for _, cmd := range []string{"validate", "run"} {
				code, _, stderr := runCLI(t, cmd, "-c", f)
				if code != 2 || !strings.HasPrefix(stderr, f+": 1 problem(s)") || !strings.Contains(stderr, tt.want) {
					t.Errorf("%s: exit %d, want 2 with %q naming %s:\n%s", cmd, code, tt.want, f, stderr)
				}
			}
		})
	}
}

// validate names every problem of a config that would loop or lose data, and
// every template that does not parse, each at its own path: exit 2.
func TestValidateNamesEveryDestructiveSetting(t *testing.T) {
	cfg := writeFile(t, `kafka: {brokers: [127.0.0.1:9092], topic: events}
redis: {addr: "127.0.0.1:6379", db: -3}
sinks:
  - name: profile
    url: http://127.0.0.1:8081/users
    dlq_topic: events
    max_event_bytes: -10
    headers:
      X-Plan: "{{ .Record.plan "
      X-Tenant: "{{ .Record.tenant | nosuchfunc }}"
      X-Static: fine
    body: "{{ if }}"
  - name: email
    url: http://127.0.0.1:8082/mail
    dlq_topic: shared.dlq
    retry: {tiers: [1s], tier_topics: [events]}
  - name: audit
    url: http://127.0.0.1:8083/audit
    dlq_topic: shared.dlq
`)
	code, _, stderr := runCLI(t, "validate", "-c", cfg)
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, stderr)
	}
	for _, want := range []string{
		`redis.db: -3 must not be negative (line 2)`,
		`sinks[0].dlq_topic: "events" is also kafka.topic`,
		`sinks[0].max_event_bytes: -10 must not be negative (line 7)`,
		`sinks[0].headers.X-Plan: template: X-Plan:1: unclosed action (line 9)`,
		`sinks[0].headers.X-Tenant: template: X-Tenant:1: function "nosuchfunc" not defined (line 10)`,
		`sinks[0].body: template: body:1: missing value for if (line 12)`,
		`sinks[1].retry.tier_topics[0]: "events" is also kafka.topic`,
		`sinks[2].dlq_topic: "shared.dlq" is also sinks[1].dlq_topic`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("validate output lacks %q:\n%s", want, stderr)
		}
	}
}

// validate names a sink's security problems at their own paths and lines:
// plain http off loopback, an oauth2 grant without its secret, an unreadable
// CA file, a signing secret that is not one.
func TestValidateNamesSinkSecurityFields(t *testing.T) {
	cfg := writeFile(t, `kafka: {brokers: [127.0.0.1:9092], topic: events}
sinks:
  - name: a
    url: http://api.internal/x
  - name: b
    url: https://api.internal/x
    auth: {type: oauth2, oauth2: {token_url: "https://idp/t", client_id: c}}
  - name: c
    url: https://api.internal/x
    tls:
      ca_file: /nonexistent/ca.pem
  - name: d
    url: https://api.internal/x
    signing: {secrets: ["whsec_abc"]}
`)
	code, _, stderr := runCLI(t, "validate", "-c", cfg)
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, stderr)
	}
	for _, want := range []string{
		`sinks[0].url: "http://api.internal/x" is plain http to a host that is not loopback`,
		`sinks[1].auth.oauth2.client_secret: required with auth.type oauth2 (line 7)`,
		`sinks[2].tls.ca_file: open /nonexistent/ca.pem: no such file or directory (line 11)`,
		`sinks[3].signing.secrets[0]: is not whsec_ and base64 (a Standard Webhooks secret) (line 14)`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("validate output lacks %q:\n%s", want, stderr)
		}
	}
}

// TestRunRefusesExposedAdminAddress: an admin address off loopback without a
// token is refused by fanout run before it connects to anything (the broker
// here does not exist), naming why (admin's TestAdminRefusesExposedAddress
// checks admin.Serve).
func TestRunRefusesExposedAdminAddress(t *testing.T) {
	path := writeFile(t, `kafka: {brokers: [127.0.0.1:1], topic: events}
sinks: [{name: a, url: "http://127.0.0.1:8081/x"}]
`)
	code, _, stderr := runCLI(t, "run", "-c", path, "--admin", ":0")
	if code != 2 || !strings.Contains(stderr, `":0" is not a loopback address and run.admin_token is not set`) {
		t.Errorf("fanout run --admin :0 = %d\n%s", code, stderr)
	}
	// In the config: fanout validate names the field.
	path = writeFile(t, `kafka: {brokers: [127.0.0.1:1], topic: events}
run: {admin_addr: "0.0.0.0:9090"}
sinks: [{name: a, url: "http://127.0.0.1:8081/x"}]
`)
	code, _, stderr = runCLI(t, "validate", "-c", path)
	if code != 2 || !strings.Contains(stderr, `run.admin_addr: "0.0.0.0:9090" is not a loopback address`) {
		t.Errorf("fanout validate with admin_addr 0.0.0.0:9090 = %d\n%s", code, stderr)
	}
}
