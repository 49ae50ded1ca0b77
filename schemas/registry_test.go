package schemas

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func TestNewLocal(t *testing.T) {
	user, err := Builtin().Open("user.registered.avsc")
	if err != nil {
		t.Fatal(err)
	}
	user.Close()
	good := `{"type":"record","name":"R","fields":[]}`
	fsys := fstest.MapFS{
		"a.avsc":      {Data: []byte(good)},
		"b.avsc":      {Data: []byte(good)},
		"broken.avsc": {Data: []byte(`{"type":"record","name":"R","fields":[{"name":"x","type":"nope"}]}`)},
		"str.avsc":    {Data: []byte(`"string"`)},
		"json.avsc":   {Data: []byte(`{`)},
	}
	tests := []struct {
		name     string
		subjects map[string]int
		want     string // substring of the error; "" for success
	}{
		{"ok", map[string]int{"a": 1, "b": 2}, ""},
		{"empty", map[string]int{}, ""},
		{"missing file", map[string]int{"c": 1}, `schemas: subject "c": open c.avsc: file does not exist`},
		{"duplicate id", map[string]int{"a": 1, "b": 1}, `schemas: subjects "a" and "b" both have id 1`},
		{"bad schema", map[string]int{"broken": 1}, `schemas: subject "broken": broken.avsc: schemas: unsupported schema: avro: unknown type: nope`},
		{"not a record", map[string]int{"str": 1}, `subject "str": str.avsc: schemas: unsupported schema: top level is string, want a record`},
		{"not json", map[string]int{"json": 1}, `subject "json": json.avsc: schemas: unsupported schema`},
		{"id zero", map[string]int{"a": 0}, `schemas: subject "a": id 0 out of range`},
		{"id too big", map[string]int{"a": 1 << 31}, `schemas: subject "a": id 2147483648 out of range`},
		{"path", map[string]int{"../a": 1}, `schemas: subject "../a": not a valid file name`},
		{"empty subject", map[string]int{"": 1}, `schemas: subject "": not a valid file name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLocal(fsys, tt.subjects)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				for subject, id := range tt.subjects {
					s, err := l.BySubject(context.Background(), subject)
					if err != nil || s.ID != id || s.Subject != subject || s.Name != "R" {
						t.Errorf("BySubject(%q) = %+v, %v", subject, s, err)
					}
					if s2, err := l.ByID(context.Background(), id); err != nil || s2 != s {
						t.Errorf("ByID(%d) = %+v, %v", id, s2, err)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestBuiltin(t *testing.T) {
	l, err := NewLocal(Builtin(), BuiltinSubjects)
	if err != nil {
		t.Fatal(err)
	}
	for subject, name := range map[string]string{
		"user.registered": "fanout.example.UserRegistered",
		"order.placed":    "fanout.example.OrderPlaced",
	} {
		s, err := l.BySubject(context.Background(), subject)
		if err != nil || s.Name != name || s.ID != BuiltinSubjects[subject] {
			t.Errorf("%s: %+v, %v", subject, s, err)
		}
	}
	if _, err := l.ByID(context.Background(), 99); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("ByID(99): %v", err)
	}
	if _, err := l.BySubject(context.Background(), "nope"); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("BySubject(nope): %v", err)
	}
}

// TestSchemasDoNotShareNames: two schemas may define the same full name
// differently (two versions of one record); each keeps its own.
func TestSchemasDoNotShareNames(t *testing.T) {
	l, err := NewLocal(fstest.MapFS{
		"v1.avsc": {Data: []byte(`{"type":"record","name":"E","fields":[{"name":"p","type":{"type":"enum","name":"P","symbols":["A"]}}]}`)},
		"v2.avsc": {Data: []byte(`{"type":"record","name":"E","fields":[{"name":"p","type":{"type":"enum","name":"P","symbols":["A","B"]}}]}`)},
	}, map[string]int{"v1": 1, "v2": 2})
	if err != nil {
		t.Fatal(err)
	}
	c := NewCodec(l)
	if _, _, err := c.EncodeJSON(context.Background(), "v2", []byte(`{"p":"B"}`)); err != nil {
		t.Errorf("v2 lost symbol B: %v", err)
	}
	if _, _, err := c.EncodeJSON(context.Background(), "v1", []byte(`{"p":"B"}`)); err == nil {
		t.Error("v1 gained symbol B")
	}
}
