package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// TestDefaultsNotCopied checks that applyDefaults takes the defaults other
// components own (sink.Default*, dedupe.Default*, naming.*, builtin.Subjects)
// from them instead of writing their values again: a copy would drift.
func TestDefaultsNotCopied(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "config.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Values owned elsewhere; a literal spelling one in applyDefaults is a copy.
	owned := map[string]string{
		`"POST"`:             "sink.DefaultMethod",
		`"application/json"`: "sink.DefaultContentType",
		`64`:                 "consumer.DefaultMaxInFlight",
		`5`:                  "sink.DefaultAttempts",
		`"fanout."`:          "naming.DefaultGroupPrefix",
		`"fanout:dedupe:"`:   "dedupe.DefaultPrefix",
		`".dlq"`:             "naming.DLQTopic",
		`"%s.%s.retry.%d"`:   "naming.TierTopic",
		`"user.registered"`:  "builtin.Subjects",
	}
	var found bool
	ast.Inspect(f, func(n ast.Node) bool {
		fd, ok := n.(*ast.FuncDecl)
		if !ok || fd.Name.Name != "applyDefaults" {
			return true
		}
		found = true
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok {
				if owner, ok := owned[lit.Value]; ok {
					t.Errorf("%s: applyDefaults copies %s; use %s", fset.Position(lit.Pos()), lit.Value, owner)
				}
			}
			return true
		})
		return false
	})
	if !found {
		t.Fatal("applyDefaults not found in config.go")
	}
	// Durations written as n * time.Unit for the sink's and dedupe's defaults.
	b, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)[strings.Index(string(b), "func (c *Config) applyDefaults()"):]
	body = body[:strings.Index(body, "\n}\n")]
	for _, copyOf := range []string{"Timeout = 10 * time.Second", "BackoffBase = 100 * time.Millisecond", "BackoffCap = 10 * time.Second",
		"RetryAfterCap = 30 * time.Second", "TTL = 7 * 24 * time.Hour", "Lease = 30 * time.Second"} {
		if strings.Contains(body, copyOf) {
			t.Errorf("applyDefaults copies %s; use the owning package's Default constant", copyOf)
		}
	}
}
