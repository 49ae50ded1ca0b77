package replay

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// dlq and replay are logic below the commands: they take what they need as
// parameters and return values, so they import neither the command nor the
// assembly package, and read no flags and no environment (issue 12's
// dependency rule for these packages).
func TestPackagesBelowTheCommands(t *testing.T) {
	forbidden := []string{"flag", "os", "github.com/fanout-dev/fanout/cmd", "github.com/fanout-dev/fanout/app"}
	for _, dir := range []string{".", "../dlq"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				for _, bad := range forbidden {
					if path == bad || strings.HasPrefix(path, bad+"/") {
						t.Errorf("%s imports %s", f, path)
					}
				}
			}
		}
	}
}
