package schemas

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// testSubjects are the shipped subjects plus the test-only ones in
// testdata/avro.
var testSubjects = map[string]int{
	"user.registered": 1,
	"order.placed":    2,
	"kitchen":         3,
	"list":            4,
}

// testFS merges the shipped schemas with testdata/avro.
func testFS(t testing.TB) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	for _, fsys := range []fs.FS{Builtin(), os.DirFS("testdata/avro")} {
		names, err := fs.Glob(fsys, "*.avsc")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			b, err := fs.ReadFile(fsys, name)
			if err != nil {
				t.Fatal(err)
			}
			m[name] = &fstest.MapFile{Data: b}
		}
	}
	return m
}

func testCodec(t testing.TB) *Codec {
	t.Helper()
	reg, err := NewLocal(testFS(t), testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	return NewCodec(reg)
}

// goldenInput is one testdata/<subject>--<case>.input.json file.
type goldenInput struct {
	name    string // <subject>--<case>
	subject string
	doc     []byte
}

func goldenInputs(t testing.TB) []goldenInput {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.input.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no testdata/*.input.json")
	}
	var ins []goldenInput
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".input.json")
		subject, _, ok := strings.Cut(name, "--")
		if !ok {
			t.Fatalf("%s: want <subject>--<case>.input.json", p)
		}
		doc, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, goldenInput{name: name, subject: subject, doc: doc})
	}
	return ins
}

// encodeGolden returns the wire bytes of every golden input.
func encodeGolden(t testing.TB, c *Codec) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, in := range goldenInputs(t) {
		data, _, err := c.EncodeJSON(context.Background(), in.subject, in.doc)
		if err != nil {
			t.Fatalf("%s: %v", in.name, err)
		}
		out[in.name] = data
	}
	return out
}
