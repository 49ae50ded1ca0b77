package pipeline

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/letter"
)

// TestReasonsAreEveryReasonParked parses this package and the consumer (the
// code that builds Outcomes) and finds every reason a record can be parked
// with: each deadLetter(reason, …) call, each Outcome{Reason: …} literal and
// each assignment to a .Reason field. Every one must be a constant or literal
// listed in letter.Reasons (the constants are read from package letter), and
// every listed reason must be parked somewhere, so the dlq commands' --class
// accepts exactly what the handler writes.
func TestReasonsAreEveryReasonParked(t *testing.T) {
	fset := token.NewFileSet()
	var files, parkers []*ast.File // parkers: the code that parks (letter only reads Reasons)
	for _, dir := range []string{".", "../consumer", "../letter"} {
		names, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if strings.HasSuffix(n, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, n, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
			if dir != "../letter" {
				parkers = append(parkers, f)
			}
		}
	}
	consts := map[string]string{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok {
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							consts[name.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
			return true
		})
	}
	parked := map[string]bool{}
	check := func(e ast.Expr) {
		pos := fset.Position(e.Pos())
		var v string
		switch x := e.(type) {
		case *ast.BasicLit:
			v, _ = strconv.Unquote(x.Value)
		case *ast.Ident:
			c, ok := consts[x.Name]
			if !ok {
				t.Errorf("%s: reason %s is not a string constant: park with one of letter.Reasons", pos, x.Name)
				return
			}
			v = c
		case *ast.SelectorExpr: // letter.ReasonX
			c, ok := consts[x.Sel.Name]
			if pkg, isPkg := x.X.(*ast.Ident); !ok || !isPkg || pkg.Name != "letter" {
				t.Errorf("%s: reason is not a constant of package letter: park with one of letter.Reasons", pos)
				return
			}
			v = c
		default:
			t.Errorf("%s: reason is not a constant: park with one of letter.Reasons", pos)
			return
		}
		if !slices.Contains(letter.Reasons, letter.Reason(v)) {
			t.Errorf("%s: reason %q is parked but not in letter.Reasons (the dlq commands would refuse --class %s)", pos, v, v)
		}
		parked[v] = true
	}
	for _, f := range parkers {
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.FuncDecl:
				// deadLetter passes its callers' reason on (they are checked);
				// consumer.ParkOverhead sizes a parked record with a
				// placeholder reason longer than any real one, parking nothing.
				return x.Name.Name != "deadLetter" && x.Name.Name != "ParkOverhead"
			case *ast.CallExpr:
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "deadLetter" && len(x.Args) > 0 {
					check(x.Args[0])
				}
			case *ast.CompositeLit: // Outcome{Reason: …} (other types' Reason fields are not park classes)
				if !isOutcome(x.Type) {
					return true
				}
				for _, e := range x.Elts {
					if kv, ok := e.(*ast.KeyValueExpr); ok {
						if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Reason" {
							check(kv.Value)
						}
					}
				}
			case *ast.AssignStmt:
				for i, l := range x.Lhs {
					if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "Reason" && i < len(x.Rhs) {
						check(x.Rhs[i])
					}
				}
			}
			return true
		})
	}
	for _, r := range letter.Reasons {
		if !parked[string(r)] {
			t.Errorf("Reasons lists %q, which nothing parks", r)
		}
	}
}

// isOutcome reports whether a composite literal's type is (consumer.)Outcome.
func isOutcome(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name == "Outcome"
	case *ast.SelectorExpr:
		return x.Sel.Name == "Outcome"
	}
	return false
}
