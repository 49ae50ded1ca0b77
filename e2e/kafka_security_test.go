package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-oauth2/oauth2/v4"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/fanout-dev/fanout/e2e/services"
	"github.com/fanout-dev/fanout/sinktest/oauth2test"
)

// secureBroker starts a second broker with the secured listeners (the shared
// one stays plain) and points the harness's admin helpers at it for the
// test: its PLAINTEXT listener is the super user's.
func secureBroker(t *testing.T) *services.Kafka {
	t.Helper()
	sk := services.NewKafka(t, services.KafkaOptions{Partitions: 3, Secure: &services.KafkaSecure{}})
	shared := kafka
	kafka = sk
	t.Cleanup(func() { kafka = shared })
	return sk
}

// fanoutACLs are the ACLs the README documents for `fanout run`, for user
// fanout and one scenario, each a builder of its own so a test can delete
// exactly one.
func fanoutACLs(s *scenario) map[string]*kadm.ACLBuilder {
	u := "User:fanout"
	return map[string]*kadm.ACLBuilder{
		"read main topic": kadm.NewACLs().Allow(u).AllowHosts().Topics(s.topic).
			ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead, kadm.OpDescribeConfigs),
		"tier and DLQ topics": kadm.NewACLs().Allow(u).AllowHosts().Topics(s.topic+".").
			ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead, kadm.OpWrite, kadm.OpDescribeConfigs),
		"groups": kadm.NewACLs().Allow(u).AllowHosts().Groups(s.prefix).
			ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead),
	}
}

func createACLs(t *testing.T, adm *kadm.Client, acls map[string]*kadm.ACLBuilder) {
	t.Helper()
	for name, b := range acls {
		res, err := adm.CreateACLs(context.Background(), b)
		if err == nil {
			for _, r := range res {
				err = errors.Join(err, r.Err)
			}
		}
		if err != nil {
			t.Fatalf("create ACLs %s: %v", name, err)
		}
	}
}

// addSCRAMUser creates user with a SCRAM-SHA-512 password through the admin
// listener. Both ways work on Kafka 4.4: a user given to the storage format
// (`kafka.tools.StorageTool format … --add-scram
// 'SCRAM-SHA-512=[name=fanout,password=…]'`) logged in over this broker's
// SASL_SSL listener too, once sasl.enabled.mechanisms and the listener's
// ScramLoginModule JAAS line name SCRAM-SHA-512 (tried by hand on
// 2026-12-04). The test adds users after start: a password per test, no
// reformat.
func addSCRAMUser(t *testing.T, adm *kadm.Client, user, password string) {
	t.Helper()
	res, err := adm.AlterUserSCRAMs(context.Background(), nil, []kadm.UpsertSCRAM{{
		User: user, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: password,
	}})
	for _, r := range res {
		err = errors.Join(err, r.Err)
	}
	if err != nil {
		t.Fatalf("create SCRAM user %s: %v", user, err)
	}
}

// secure rewrites the scenario's config (written for the admin listener)
// to log in at addr with the given kafka.tls and kafka.sasl YAML.
func (s *scenario) secure(addr, security string) {
	s.t.Helper()
	b, err := os.ReadFile(s.cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	old := fmt.Sprintf("  brokers: [%s]\n", kafka.Addr)
	if !strings.Contains(string(b), old) {
		s.t.Fatalf("config has no %q", old)
	}
	c := strings.Replace(string(b), old, fmt.Sprintf("  brokers: [%s]\n%s", addr, security), 1)
	if err := os.WriteFile(s.cfg, []byte(c), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// runRefused runs `fanout run` and wants it to exit non-zero within 30s
// with a line that says want.
func (s *scenario) runRefused(want string) {
	s.t.Helper()
	s.refused(want, "run", "-c", s.cfg)
}

// refused runs a fanout command and wants it to exit non-zero within 30s
// with a line that says want, and no stack trace.
func (s *scenario) refused(want string, args ...string) {
	s.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, fanoutBin, args...)
	cmd.SysProcAttr = services.ChildProcAttr()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ctx.Err() != nil {
		s.t.Fatalf("fanout %s: %v after %.1fs, want a non-zero exit saying %q:\n%s", args[0], err, took.Seconds(), want, tail(string(out), 30))
	}
	s.t.Logf("fanout %s exited %d after %.1fs: %s", args[0], ee.ExitCode(), took.Seconds(), tail(strings.TrimSpace(string(out)), 1))
	if took > 30*time.Second {
		s.t.Errorf("fanout %s took %.1fs to give up, want within 30s", args[0], took.Seconds())
	}
	if !strings.Contains(string(out), want) {
		s.t.Errorf("fanout %s output does not say %q:\n%s", args[0], want, tail(string(out), 30))
	}
	if strings.Contains(string(out), "goroutine ") || strings.Contains(string(out), "panic:") {
		s.t.Errorf("fanout %s printed a stack trace:\n%s", args[0], tail(string(out), 30))
	}
	noSecrets(s.t, "fanout "+args[0], string(out))
}

// kafkaSecrets are the secrets the security tests configure.
var kafkaSecrets = []string{scramPassword, "oauth-client-Secret", "wrong-secret"}

// noSecrets fails the test if out holds one of kafkaSecrets.
func noSecrets(t *testing.T, what, out string) {
	t.Helper()
	for _, sec := range kafkaSecrets {
		if strings.Contains(out, sec) {
			t.Errorf("%s printed the secret %q", what, sec)
		}
	}
}

const scramPassword = "fanout-scram-Pa55word"

func scramSecurity(k *services.Kafka, password string) string {
	return fmt.Sprintf(`  tls:
    enabled: true
    ca_file: %s
  sasl:
    mechanism: SCRAM-SHA-512
    username: fanout
    password: %s
`, k.CA.CAFile, password)
}

// TestKafkaSASLSSL: over a SASL_SSL listener (SCRAM-SHA-512, the test's CA)
// with the StandardAuthorizer and only the documented ACLs, fanout delivers
// every event to two sinks once; a wrong password and a missing group ACL
// each end `fanout run` within 30s, naming the cause.
func TestKafkaSASLSSL(t *testing.T) {
	sk := secureBroker(t)
	adm := admin(t)
	addSCRAMUser(t, adm, "fanout", scramPassword)

	s := newScenario(t, "sasl", events)
	a, b := newTarget(t, 0, nil), newTarget(t, 0, nil)
	s.writeConfig(
		sinkSpec{name: "profile", target: a, extra: "ordering: partition"},
		sinkSpec{name: "analytics", target: b, extra: "ordering: unordered\nmax_in_flight: 32"},
	)
	s.emitAll() // as the super user, on the admin listener
	acls := fanoutACLs(s)
	createACLs(t, adm, acls)

	refusals := []struct{ name, addr, security, want string }{
		{"wrong password", sk.SASLSSLAddr, scramSecurity(sk, "wrong-"+scramPassword),
			`kafka ` + sk.SASLSSLAddr + `: SASL SCRAM-SHA-512 login as "fanout" refused (wrong username or password?)`},
		{"untrusted certificate", sk.SASLSSLAddr, strings.Replace(scramSecurity(sk, scramPassword), "    ca_file: "+sk.CA.CAFile+"\n", "", 1),
			`kafka ` + sk.SASLSSLAddr + `: TLS: the broker's certificate is signed by an authority fanout does not trust`},
		{"mechanism not offered", sk.SASLSSLAddr, strings.Replace(scramSecurity(sk, scramPassword), "SCRAM-SHA-512", "SCRAM-SHA-256", 1),
			`kafka ` + sk.SASLSSLAddr + `: the broker does not offer SASL mechanism SCRAM-SHA-256`},
		{"plaintext client at the TLS port", sk.SASLSSLAddr, "",
			`check topics (is Kafka at ` + sk.SASLSSLAddr + ` reachable?): ` + "invalid large response size 352518912 > limit 104857600; the first three bytes received appear to be a tls alert record for TLS v1.2; is this a plaintext connection speaking to a tls endpoint?"},
	}
	for _, r := range refusals {
		t.Logf("%s:", r.name)
		s.writeConfig(
			sinkSpec{name: "profile", target: a, extra: "ordering: partition"},
			sinkSpec{name: "analytics", target: b, extra: "ordering: unordered\nmax_in_flight: 32"},
		)
		s.secure(r.addr, r.security)
		s.runRefused(r.want)
	}
	// The other commands that talk to Kafka say the same.
	s.writeConfig(
		sinkSpec{name: "profile", target: a, extra: "ordering: partition"},
		sinkSpec{name: "analytics", target: b, extra: "ordering: unordered\nmax_in_flight: 32"},
	)
	s.secure(sk.SASLSSLAddr, refusals[2].security)
	events := filepath.Join(s.dir, "events.jsonl")
	for _, args := range [][]string{
		{"status", "-c", s.cfg},
		{"topics", "ensure", "-c", s.cfg},
		{"emit", "-c", s.cfg, "--type", "user.registered", "--file", events},
		{"dlq", "list", "-c", s.cfg, "--sink", "profile"},
		{"replay", "-c", s.cfg, "--sink", "profile", "--from-time", "2026-01-01T00:00:00Z", "--dry-run"},
	} {
		s.refused(`kafka `+sk.SASLSSLAddr+`: the broker does not offer SASL mechanism SCRAM-SHA-256`, args...)
	}
	s.writeConfig(
		sinkSpec{name: "profile", target: a, extra: "ordering: partition"},
		sinkSpec{name: "analytics", target: b, extra: "ordering: unordered\nmax_in_flight: 32"},
	)
	s.secure(sk.SASLSSLAddr, "") // the plaintext client at the TLS port: emit's producer would retry it
	s.refused("is this a plaintext connection speaking to a tls endpoint?", "emit", "-c", s.cfg, "--type", "user.registered", "--file", events)

	s.writeConfig(
		sinkSpec{name: "profile", target: a, extra: "ordering: partition"},
		sinkSpec{name: "analytics", target: b, extra: "ordering: unordered\nmax_in_flight: 32"},
	)
	s.secure(sk.SASLSSLAddr, scramSecurity(sk, scramPassword))
	p := s.start()
	s.waitDone(3*time.Minute, map[string]*target{"profile": a, "analytics": b}, map[string][]string{"profile": s.ids, "analytics": s.ids})
	p.term(t)
	for name, tg := range map[string]*target{"profile": a, "analytics": b} {
		checkAccepted(t, name, tg, s.ids, 0)
	}
	// The documented ACLs are all it needs: no warning of anything refused.
	for _, w := range []string{"AUTHORIZATION_FAILED", "level=WARN"} {
		if out := p.out.String(); strings.Contains(out, w) {
			t.Errorf("fanout run said %s with the documented ACLs:\n%s", w, tail(out, 30))
		}
	}
	noSecrets(t, "fanout run", p.out.String())

	// One ACL less: the groups'.
	if _, err := adm.DeleteACLs(context.Background(), acls["groups"]); err != nil {
		t.Fatal(err)
	}
	s.runRefused(`is not authorized for consumer group ` + s.prefix + `profile`)

	// WRITE on the tier and DLQ topics missing: named at start, not at the
	// first park.
	createACLs(t, adm, map[string]*kadm.ACLBuilder{"groups": acls["groups"]})
	noWrite := kadm.NewACLs().Allow("User:fanout").AllowHosts().Topics(s.topic + ".").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpWrite)
	if _, err := adm.DeleteACLs(context.Background(), noWrite); err != nil {
		t.Fatal(err)
	}
	s.runRefused(`user "fanout" may not WRITE topic ` + s.topic + `.analytics.dlq`)
	createACLs(t, adm, map[string]*kadm.ACLBuilder{"write": noWrite})
	if _, err := adm.DeleteACLs(context.Background(), acls["groups"]); err != nil {
		t.Fatal(err)
	}

	// DESCRIBE on the groups passes the start-up check, but joining needs
	// READ: the consumer's refused join ends the run.
	describeOnly := kadm.NewACLs().Allow("User:fanout").AllowHosts().Groups(s.prefix).
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpDescribe)
	createACLs(t, adm, map[string]*kadm.ACLBuilder{"describe groups": describeOnly})
	s.runRefused(`Kafka refused (group ` + s.prefix)
	if _, err := adm.DeleteACLs(context.Background(), describeOnly); err != nil {
		t.Fatal(err)
	}

	// Or the main topic's.
	createACLs(t, adm, map[string]*kadm.ACLBuilder{"groups": acls["groups"]})
	if _, err := adm.DeleteACLs(context.Background(), acls["read main topic"]); err != nil {
		t.Fatal(err)
	}
	s.runRefused(`user "fanout" is not authorized for topic ` + s.topic + ` (a missing ACL`)
}

// TestKafkaMTLS: over an SSL listener that requires a client certificate
// (ssl.client.auth=required; the certificate's CN is the principal), fanout
// delivers every event to two sinks once with the documented ACLs; without
// a client certificate the run ends, naming the broker; and a group ACL
// removed while it runs ends it too.
func TestKafkaMTLS(t *testing.T) {
	sk := secureBroker(t)
	adm := admin(t)
	s := newScenario(t, "mtls", events)
	a, b := newTarget(t, 0, nil), newTarget(t, 0, nil)
	sinks := []sinkSpec{
		{name: "profile", target: a, extra: "ordering: key"},
		{name: "analytics", target: b, extra: "ordering: unordered\nmax_in_flight: 32"},
	}
	s.writeConfig(sinks...)
	s.emitAll()
	createACLs(t, adm, fanoutACLs(s))

	s.secure(sk.SSLAddr, fmt.Sprintf("  tls: {enabled: true, ca_file: %s}\n", sk.CA.CAFile))
	s.runRefused(`kafka ` + sk.SSLAddr + `: TLS: the broker refused the handshake; if it requires a client certificate (mTLS), set kafka.tls.cert_file and key_file to one it trusts (remote error: tls: `)

	s.writeConfig(sinks...)
	s.secure(sk.SSLAddr, fmt.Sprintf("  tls: {enabled: true, ca_file: %s, cert_file: %s, key_file: %s}\n", sk.CA.CAFile, sk.Client.CertFile, sk.Client.KeyFile))
	p := s.start()
	s.waitDone(3*time.Minute, map[string]*target{"profile": a, "analytics": b}, map[string][]string{"profile": s.ids, "analytics": s.ids})
	// The group ACL removed while it runs: the next heartbeat is refused,
	// and the run ends saying so instead of warning forever.
	before := p.out.String()
	acls := fanoutACLs(s)
	if _, err := adm.DeleteACLs(context.Background(), acls["groups"]); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	select {
	case err := <-p.done:
		t.Logf("fanout run exited %.1fs after the group ACL was removed: %v: %s", time.Since(removed).Seconds(), err,
			tail(strings.TrimSpace(p.out.String()), 1))
		if err == nil || !strings.Contains(p.out.String(), "fanout run: consumer ") || !strings.Contains(p.out.String(), "GROUP_AUTHORIZATION_FAILED") {
			t.Errorf("fanout run ended with %v, want a non-zero exit naming the refused group:\n%s", err, tail(p.out.String(), 20))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("fanout run still running 60s after its group ACL was removed:\n%s", tail(p.out.String(), 20))
	}
	for name, tg := range map[string]*target{"profile": a, "analytics": b} {
		checkAccepted(t, name, tg, s.ids, 0)
	}
	if out := before; strings.Contains(out, "AUTHORIZATION_FAILED") {
		t.Errorf("fanout run was refused something with the documented ACLs:\n%s", tail(out, 30))
	}
	noSecrets(t, "fanout run", p.out.String())
}

// unsecuredJWS is a go-oauth2 access-token generator issuing what Kafka's
// unsecured validator accepts: an unsigned JWS ({"alg":"none"}) whose "sub"
// is the client id, with the token's own issue and expiry times.
type unsecuredJWS struct{}

func (unsecuredJWS) Token(_ context.Context, data *oauth2.GenerateBasic, _ bool) (string, string, error) {
	enc := base64.RawURLEncoding.EncodeToString
	iat := data.CreateAt
	exp := iat.Add(data.TokenInfo.GetAccessExpiresIn())
	claims := fmt.Sprintf(`{"sub":%q,"iat":%d,"exp":%d}`, data.Client.GetID(), iat.Unix(), exp.Unix())
	return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(claims)) + ".", "", nil
}

// TestKafkaOAuthBearer: over SASL_PLAINTEXT with OAUTHBEARER, tokens from a
// client-credentials endpoint the test runs (go-oauth2's server; Kafka's
// unsecured validator on the broker), fanout delivers every event to two
// sinks once with the documented ACLs; a wrong client secret ends the run.
func TestKafkaOAuthBearer(t *testing.T) {
	sk := secureBroker(t)
	adm := admin(t)
	// Tokens live 15s; x/oauth2 takes one as expired 10s early, and the
	// broker ends a session when its token expires (KIP-368, with
	// connections.max.reauth.ms set): the run must fetch and present new
	// tokens while it runs.
	as := oauth2test.New(t, oauth2test.Config{Clients: map[string]string{"fanout": "oauth-client-Secret"},
		Lifetime: 15 * time.Second, Generate: unsecuredJWS{}})
	tokenURL := as.URL
	s := newScenario(t, "oauth", events)
	a, b := newTarget(t, 0, nil), newTarget(t, 0, nil)
	sinks := []sinkSpec{
		{name: "profile", target: a, extra: "ordering: partition"},
		{name: "analytics", target: b, extra: "ordering: unordered\nmax_in_flight: 32"},
	}
	s.writeConfig(sinks...)
	s.emitAll()
	createACLs(t, adm, fanoutACLs(s))
	security := func(secret string) string {
		return fmt.Sprintf("  sasl: {mechanism: OAUTHBEARER, token_url: %q, client_id: fanout, client_secret: %q}\n", tokenURL, secret)
	}

	s.secure(sk.OAuthAddr, security("wrong-secret"))
	s.runRefused(`kafka.sasl: OAUTHBEARER token from kafka.sasl.token_url: the token endpoint refused: invalid_client`)

	s.writeConfig(sinks...)
	s.secure(sk.OAuthAddr, security("oauth-client-Secret"))
	p := s.start()
	s.waitDone(3*time.Minute, map[string]*target{"profile": a, "analytics": b}, map[string][]string{"profile": s.ids, "analytics": s.ids})

	// Outlive several tokens, then deliver a second batch over the same run.
	first := as.Requests.Load()
	time.Sleep(40 * time.Second)
	var more []string
	var docs [][]byte
	for i := events; i < events+500; i++ {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		more, docs = append(more, id), append(docs, userRegistered(i, id))
	}
	path := filepath.Join(s.dir, "more.jsonl")
	if err := os.WriteFile(path, append(bytes.Join(docs, []byte("\n")), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	running := s.cfg
	s.writeConfig(sinks...) // the admin listener's config, for emit
	s.fanout("emit", "-c", s.cfg, "--type", "user.registered", "--file", path)
	s.cfg = running
	s.ids = append(s.ids, more...)
	s.waitDone(2*time.Minute, map[string]*target{"profile": a, "analytics": b}, map[string][]string{"profile": s.ids, "analytics": s.ids})
	t.Logf("token endpoint issued %d tokens before the first batch was done, %d in all", first, as.Requests.Load())
	if as.Requests.Load() <= first {
		t.Errorf("no token fetched in the 40s after the first batch (%d in all): the run did not refresh its 15s tokens", as.Requests.Load())
	}
	p.term(t)
	for name, tg := range map[string]*target{"profile": a, "analytics": b} {
		checkAccepted(t, name, tg, s.ids, 0)
	}
	if out := p.out.String(); strings.Contains(out, "AUTHORIZATION_FAILED") || strings.Contains(out, "SASL") {
		t.Errorf("fanout run was refused something with the documented ACLs:\n%s", tail(out, 30))
	}
	noSecrets(t, "fanout run", p.out.String())
}
