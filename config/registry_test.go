package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/internal/testcert"
)

func TestRegistryAuthTLS(t *testing.T) {
	c := testcert.NewT(t).IssueT(t, "fanout")
	cert, key := c.CertFile, c.KeyFile
	notPEM := filepath.Join(t.TempDir(), "n.pem")
	if err := os.WriteFile(notPEM, []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	const base = "kafka: {brokers: [a:1], topic: t}\nsinks: [{name: a, url: \"https://x/\"}]\nschemas:\n"
	vars := map[string]string{"SR_PASSWORD": "PW-SECRET-1", "SR_TOKEN": "TK-SECRET-2", "CERT": cert, "KEY": key, "NOTPEM": notPEM}
	tests := []struct {
		name, schemas string
		want          string // "" = valid; else in the error
	}{
		{"url only (as before)", `  registry_url: "https://u:p@sr:8081"`, ""},
		{"basic", "  registry_url: https://sr\n  registry_auth: {username: key, password: \"${SR_PASSWORD}\"}", ""},
		{"bearer", "  registry_url: https://sr\n  registry_auth: {token: \"${SR_TOKEN}\"}", ""},
		{"mtls", "  registry_url: https://sr\n  registry_tls: {ca_file: \"${CERT}\", cert_file: \"${CERT}\", key_file: \"${KEY}\", server_name: sr.internal}", ""},
		{"both", "  registry_url: https://sr\n  registry_auth: {username: key, password: \"${SR_PASSWORD}\", token: \"${SR_TOKEN}\"}",
			"schemas.registry_auth: set either token (bearer) or username and password (basic), not both (line 5)"},
		{"no password", "  registry_url: https://sr\n  registry_auth: {username: key}", "schemas.registry_auth.password: required with username"},
		{"no username", "  registry_url: https://sr\n  registry_auth: {password: \"${SR_PASSWORD}\"}", "schemas.registry_auth.username: required with password"},
		{"twice", "  registry_url: https://u:p@sr\n  registry_auth: {token: \"${SR_TOKEN}\"}", "schemas.registry_auth: schemas.registry_url holds credentials too"},
		{"no url", "  registry_auth: {token: \"${SR_TOKEN}\"}\n  registry_tls: {server_name: x}", "schemas.registry_auth: needs schemas.registry_url"},
		{"http", "  registry_url: http://sr\n  registry_tls: {server_name: x}", "schemas.registry_tls: needs an https registry_url"},
		{"key alone", "  registry_url: https://sr\n  registry_tls: {key_file: \"${KEY}\"}", "schemas.registry_tls.cert_file: required with key_file"},
		{"cert alone", "  registry_url: https://sr\n  registry_tls: {cert_file: \"${CERT}\"}", "schemas.registry_tls.key_file: required with cert_file"},
		{"ca missing", "  registry_url: https://sr\n  registry_tls: {ca_file: /nonexistent/ca.pem}", "schemas.registry_tls.ca_file: cannot read"},
		{"ca not pem", "  registry_url: https://sr\n  registry_tls: {ca_file: \"${NOTPEM}\"}", "holds no PEM certificate"},
		{"key not pem", "  registry_url: https://sr\n  registry_tls: {cert_file: \"${CERT}\", key_file: \"${NOTPEM}\"}", "schemas.registry_tls.cert_file: with key_file:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("f.yaml", []byte(base+tt.schemas+"\n"), env(vars))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Parse: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if err != nil && (strings.Contains(err.Error(), "PW-SECRET-1") || strings.Contains(err.Error(), "TK-SECRET-2")) {
				t.Fatalf("the error shows a secret: %v", err)
			}
			if tt.name == "basic" && cfg.Schemas.RegistryAuth.Password != "PW-SECRET-1" {
				t.Fatalf("password not expanded: %+v", cfg.Schemas.RegistryAuth)
			}
		})
	}
}
