package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bearer token given as ${file:PATH} is read from that file again when it
// changes (token_file); set both explicitly is a problem.
func TestBearerTokenFromFileIsReRead(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(f, []byte("TOKENVALUE-1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const head = "kafka: {brokers: [a:1], topic: t}\nsinks:\n"
	cfg, err := Parse("f.yaml", []byte(head+"  - {name: a, url: \"https://x/\", auth: {type: bearer, token: \"${file:"+f+"}\"}}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Sinks[0].Auth; a.TokenFile != f || a.Token != "TOKENVALUE-1234" {
		t.Fatalf("auth %+v: want token_file %s and the token read", a, f)
	}
	// A token that only contains a file reference is not re-read.
	cfg, err = Parse("f.yaml", []byte(head+"  - {name: a, url: \"https://x/\", auth: {type: bearer, token: \"x${file:"+f+"}\"}}\n"), env(nil))
	if err != nil || cfg.Sinks[0].Auth.TokenFile != "" {
		t.Fatalf("partial reference: %v %+v", err, cfg.Sinks[0].Auth)
	}
	_, err = Parse("f.yaml", []byte(head+"  - {name: a, url: \"https://x/\", auth: {type: bearer, token: abc, token_file: "+f+"}}\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "sinks[0].auth.token_file: set token or token_file, not both") {
		t.Fatalf("both: %v", err)
	}
	if s := strings.Join(cfg.Secrets(), " "); !strings.Contains(s, "TOKENVALUE-1234") {
		t.Fatal("the token is not listed as a secret")
	}
}
