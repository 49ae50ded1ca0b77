package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// docs/architecture.md's package table has a row for every top-level
// folder holding Go code and every internal/ package.
func TestArchitecturePackageTable(t *testing.T) {
	b, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(b), "## Packages\n")
	table, _, _ = strings.Cut(table, "\n## ")
	rows := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		if cell, ok := strings.CutPrefix(line, "| `"); ok {
			name, _, _ := strings.Cut(cell, "`")
			rows[strings.TrimSuffix(name, "/")] = true
		}
	}
	dirs, _ := filepath.Glob("../../*")
	more, _ := filepath.Glob("../../internal/*")
	for _, d := range append(dirs, more...) {
		name := strings.TrimPrefix(filepath.ToSlash(d), "../../")
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() || name == "cmd" || name == "internal" || !hasGo(t, d) {
			continue
		}
		if !rows[name] {
			t.Errorf("docs/architecture.md's package table has no row for %s/", name)
		}
	}
	if len(rows) < 10 || !rows["cmd/fanout"] {
		t.Errorf("docs/architecture.md's package table has no row for cmd/fanout")
	}
}

// hasGo reports whether dir holds a .go file, in it or below.
func hasGo(t *testing.T, dir string) bool {
	t.Helper()
	found := false
	_ = filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".go") {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}
