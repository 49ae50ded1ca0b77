package pipeline

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"
)

// consumer.Outcome.Reason's comment lists the reasons (consumer cannot import
// this package): the list after "Reasons:" is exactly Reasons, in order.
func TestOutcomeReasonDocListsReasons(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../consumer/handler.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "Outcome" {
			return true
		}
		for _, fld := range ts.Type.(*ast.StructType).Fields.List {
			if len(fld.Names) > 0 && fld.Names[0].Name == "Reason" {
				doc = fld.Doc.Text()
			}
		}
		return false
	})
	_, list, ok := strings.Cut(strings.Join(strings.Fields(doc), " "), "Reasons: ")
	list, _, _ = strings.Cut(list, ".")
	if got := strings.Split(list, ", "); !ok || !slices.Equal(got, Reasons) {
		t.Errorf("consumer.Outcome.Reason's comment lists %q, want pipeline.Reasons %q:\n%s", got, Reasons, doc)
	}
}
