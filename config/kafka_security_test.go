package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/internal/testcert"
)

func TestKafkaSecurityGood(t *testing.T) {
	pki := testcert.NewT(t)
	client := pki.IssueT(t, "client")
	ca, cert, key := pki.CAFile, client.CertFile, client.KeyFile
	for name, sec := range map[string]string{
		"scram mtls": `
  tls: {enabled: true, ca_file: ` + ca + `, cert_file: ` + cert + `, key_file: ` + key + `, server_name: kafka.internal}
  sasl: {mechanism: SCRAM-SHA-512, username: fanout, password: "${PW}"}`,
		"plain system roots": `
  tls: {enabled: true}
  sasl: {mechanism: PLAIN, username: fanout, password: "${PW}"}`,
		"oauth static":  `  sasl: {mechanism: OAUTHBEARER, token: "${PW}"}`,
		"oauth client":  `  sasl: {mechanism: OAUTHBEARER, token_url: "https://idp/token", client_id: fanout, client_secret: "${PW}", scopes: [kafka], extensions: {logicalCluster: lkc-1}}`,
		"aws msk iam":   "  tls: {enabled: true}\n  sasl: {mechanism: AWS_MSK_IAM}",
		"scram-sha-256": `  sasl: {mechanism: SCRAM-SHA-256, username: u, password: p}`,
	} {
		t.Run(name, func(t *testing.T) {
			y := "kafka:\n  brokers: [a:1]\n  topic: t\n" + sec + "\nsinks: [{name: a, url: \"https://x/\"}]\n"
			cfg, err := Parse("f.yaml", []byte(y), env(map[string]string{"PW": "s3cret"}))
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, y)
			}
			if s := cfg.Kafka.SASL; s.Password != "s3cret" && s.Token != "s3cret" && s.ClientSecret != "s3cret" && s.Mechanism != SASLAWSMSKIAM && s.Mechanism != SASLScram256 {
				t.Errorf("secret not expanded: %+v", s.Mechanism)
			}
		})
	}
}

func TestKafkaSecurityProblems(t *testing.T) {
	dir := t.TempDir()
	pki := testcert.NewT(t)
	ca, cert, otherKey := pki.CAFile, pki.IssueT(t, "client").CertFile, pki.IssueT(t, "other").KeyFile
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o644)
	for _, tt := range []struct {
		name, sec string
		want      []string
	}{
		{"tls fields without enabled", `  tls: {ca_file: ` + ca + `}`,
			[]string{"kafka.tls.enabled: false while other kafka.tls fields are set: set enabled: true to use TLS (line 5)"}},
		{"missing files", `  tls: {enabled: true, ca_file: ` + dir + `/nope.pem, cert_file: ` + dir + `/nope-cert.pem, key_file: ` + dir + `/nope-key.pem}`,
			[]string{"kafka.tls.ca_file: open " + dir + "/nope.pem: no such file or directory (line 5)", "kafka.tls.cert_file: client certificate " + dir + "/nope-cert.pem with key " + dir + "/nope-key.pem: open"}},
		{"not PEM, key mismatch", `  tls: {enabled: true, ca_file: ` + notPEM + `, cert_file: ` + cert + `, key_file: ` + otherKey + `}`,
			[]string{"kafka.tls.ca_file: " + notPEM + " holds no PEM certificate", "private key does not match public key"}},
		{"cert without key", `  tls: {enabled: true, cert_file: ` + cert + `}`,
			[]string{"kafka.tls.key_file: required with kafka.tls.cert_file"}},
		{"unknown mechanism", "  sasl: {mechanism: scram-sha-512, username: u, password: SECRETVALUE}",
			[]string{`kafka.sasl.mechanism: "scram-sha-512" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, AWS_MSK_IAM (line 5)`}},
		{"scram without password", "  sasl: {mechanism: SCRAM-SHA-512, username: u}",
			[]string{"kafka.sasl.password: required with mechanism SCRAM-SHA-512"}},
		{"fields without mechanism", "  sasl: {username: u, password: SECRETVALUE}",
			[]string{"kafka.sasl.mechanism: required when other kafka.sasl fields are set"}},
		{"oauth both", "  sasl: {mechanism: OAUTHBEARER, token: SECRETVALUE, token_url: https://x/t}",
			[]string{"kafka.sasl.token: set either token"}},
		{"oauth neither", "  sasl: {mechanism: OAUTHBEARER}",
			[]string{"kafka.sasl.token_url: required with mechanism OAUTHBEARER"}},
		{"oauth bad url", "  sasl: {mechanism: OAUTHBEARER, token_url: \"idp/token?secret=SECRETVALUE\"}",
			[]string{"kafka.sasl.token_url: is not an absolute http(s) URL", "kafka.sasl.client_id: required", "kafka.sasl.client_secret: required"}},
		{"aws without tls", "  sasl: {mechanism: AWS_MSK_IAM}",
			[]string{"kafka.sasl.mechanism: AWS_MSK_IAM needs kafka.tls.enabled: true"}},
		{"plain with token", "  sasl: {mechanism: PLAIN, username: u, password: p, token: SECRETVALUE}",
			[]string{"kafka.sasl.mechanism: PLAIN takes no token"}},
		{"typo", "  sasl: {mechanism: PLAIN, username: u, pasword: SECRETVALUE}",
			[]string{`kafka.sasl.pasword: unknown key (did you mean "password"?)`, "kafka.sasl.password: required"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			y := "kafka:\n  brokers: [a:1]\n  topic: t\n  # security\n" + tt.sec + "\nsinks: [{name: a, url: \"https://x/\"}]\n"
			_, err := Parse("f.yaml", []byte(y), env(nil))
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
			if strings.Contains(msg, "SECRETVALUE") {
				t.Errorf("error holds a secret value:\n%s", msg)
			}
		})
	}
}
