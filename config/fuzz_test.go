package config

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

// FuzzParse checks Parse on any bytes.
//
// Invariants:
//   - it never panics;
//   - it returns either a *Config and no error, or an *Error with at least
//     one Problem, each with a non-empty Path, a Line within 0..the file's
//     lines (as YAML counts them: CR, LF, CRLF, NEL, LS and PS end a line),
//     and a non-empty Msg;
//   - no Msg holds a value an environment variable gave (every variable is
//     set to "fuzzenv-<NAME>", except names starting with UNSET).
//
// Inputs that name special files (/dev/, /proc/, /sys/) are skipped: Parse
// reads ${file:PATH} and the tls ca_file settings, and /dev/zero or
// /dev/stdin would never end.
func FuzzParse(f *testing.F) {
	// Seeds: the README's config reference and examples, the Compose
	// config, the tests' good config and some of their bad ones.
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(readme, -1) {
		f.Add(m[1])
	}
	compose, err := os.ReadFile("../compose/fanout.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(compose)
	for _, s := range []string{
		good,
		"",
		"# only a comment\n",
		"- a\n- b\n",
		"kafka: {brokers: [a:1], topic: t}\nsinks: 5\n",
		"kafka: {brokers: [a:1], topic: t}\nsinks:\n  - {name: a, url: http://x/}\n  - {name: a, url: http://x/}\n",
		"kafka: {brokers: [a:1], topic: t}\nsinks:\n  - {name: a, url: \"${UNSET_URL}\", timeout: -1s, retry: {tiers: [x]}}\n",
		"kafka: {brokers: [a:1], topic: t, sasl: {mechanism: PLAIN, username: u, password: \"${PW}\"}}\nsinks: [{name: a, url: \"http://${HOST}/\"}]\n",
		"kafka:\n  brokers: [a:1]\n  topic: t\n---\nsinks: []\n",
		"kafka: &k {brokers: [a:1], topic: t}\nk2: *k\nsinks: [{name: a, url: 'http://x/', headers: {X-A: '{{ .Record.a '}}]\n",
		"kafka: {brokers: [a:1], topic: t}\nredis: {addr: 'a:1,b:2', db: 3, tls: {enabled: true, ca_file: missing.pem}}\nsinks: [{name: a, url: http://x/, start: yesterday}]\n",
	} {
		f.Add([]byte(s))
	}
	special := regexp.MustCompile(`(dev|proc|sys)/`)
	secret := []byte("fuzzenv-")
	env := func(k string) (string, bool) {
		if len(k) >= 5 && k[:5] == "UNSET" {
			return "", false
		}
		return "fuzzenv-" + k, true
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if special.Match(data) || bytes.Contains(data, secret) {
			t.Skip("names a special file, or holds the environment's marker itself")
		}
		cfg, err := Parse("f.yaml", data, env)
		if err == nil {
			if cfg == nil {
				t.Fatalf("Parse(%q) = nil, nil", data)
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("Parse(%q): error %T %v is not an *Error", data, err, err)
		}
		if len(ce.Problems) == 0 || ce.File != "f.yaml" {
			t.Fatalf("Parse(%q): *Error with file %q and no problems", data, ce.File)
		}
		lines := yamlLines(data)
		for _, p := range ce.Problems {
			if p.Path == "" || p.Msg == "" || p.Line < 0 || p.Line > lines {
				t.Fatalf("Parse(%q): problem %#v lacks a path or a message, or its line is not in the file's %d", data, p, lines)
			}
			if bytes.Contains([]byte(p.Msg), secret) {
				t.Fatalf("Parse(%q): problem %s shows a value from the environment", data, p)
			}
		}
	})
}

// An empty key (found by FuzzParse, testdata/fuzz/FuzzParse) is named "" in
// its problem's path, never an empty path.
func TestEmptyKeyHasAPath(t *testing.T) {
	_, err := Parse("f.yaml", []byte("kafka: {brokers: [a:1], topic: t}\n\"\": 1\nsinks: [{name: a, url: 'http://127.0.0.1/', \"\": x}]\n"), env(nil))
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 2 {
		t.Fatalf("Parse: %v, want two problems", err)
	}
	for i, want := range []string{`"": unknown key (line 2)`, `sinks[0]."": unknown key (line 3)`} {
		if got := ce.Problems[i].String(); got != want {
			t.Errorf("problem %d = %s, want %s", i, got, want)
		}
	}
}

// A value from the environment with a quote in it is hidden in a problem
// that shows it with %q too (found by FuzzParse, testdata/fuzz/FuzzParse).
func TestQuotedExpandedValueIsHidden(t *testing.T) {
	_, err := Parse("f.yaml", []byte("kafka: {brokers: [a:1], topic: t}\nredis: {addr: \"${ADDR}\"}\nsinks: [{name: a, url: 'http://127.0.0.1/'}]\n"),
		env(map[string]string{"ADDR": `pa"ss\word`}))
	if err == nil || !strings.Contains(err.Error(), "redis.addr") {
		t.Fatalf("Parse: %v, want a problem at redis.addr", err)
	}
	if strings.Contains(err.Error(), `pa\"ss\\word`) || strings.Contains(err.Error(), "pa") {
		t.Fatalf("Parse: %v shows the value", err)
	}
	if testing.Verbose() {
		t.Log(err)
	}
}

// yamlLines is how many lines YAML sees in data: CRLF, CR, LF, NEL (U+0085),
// LS (U+2028) and PS (U+2029) each end one.
func yamlLines(data []byte) int {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	n := 1
	for _, br := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
		n += strings.Count(s, br)
	}
	return n
}

// A ${...} URL that redact.URL percent-encodes in a problem is hidden in that
// form too (found by FuzzParse, testdata/fuzz/FuzzParse).
func TestEncodedExpandedURLIsHidden(t *testing.T) {
	_, err := Parse("f.yaml", []byte("kafka: {brokers: [a:1], topic: t}\nschemas: {registry_url: \"${SR}\"}\nsinks: [{name: a, url: 'http://127.0.0.1/'}]\n"),
		env(map[string]string{"SR": `zq"xw vy`}))
	if err == nil || !strings.Contains(err.Error(), "schemas.registry_url") {
		t.Fatalf("Parse: %v, want a problem at schemas.registry_url", err)
	}
	if strings.Contains(err.Error(), "xw") {
		t.Fatalf("Parse: %v shows the value", err)
	}
}
