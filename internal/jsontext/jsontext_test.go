package jsontext

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzAppendJSONString: for any string, appendJSONString writes valid JSON
// in valid UTF-8 that reads back as encoding/json's own encoding of it does
// (invalid bytes as U+FFFD).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "😀", "\xff", "\xed\xa0\x80", "a\u2028b\u2029", "\x00\x1f\x7f", `"\`, "<&>", "\uFFFD", "\xf4\x90\x80\x80", "\xf0\x9f\x98"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendString([]byte("x"), s)[1:]
		if !json.Valid(got) || !utf8.Valid(got) {
			t.Fatalf("%q encodes as %q: not valid JSON in UTF-8", s, got)
		}
		var back, want string
		_ = json.Unmarshal(got, &back)
		wb, _ := json.Marshal(s)
		_ = json.Unmarshal(wb, &want)
		if back != want {
			t.Fatalf("%q reads back as %q, encoding/json's as %q", s, back, want)
		}
	})
}

func TestDuplicateName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		name string
		off  int
	}{
		{`{"name": "x", "admin": true, "y": "", "admin": false}`, "admin", 38},
		{`{"a":1,"b":{"a":2}}`, "", -1},
		{`[{"a":1},{"a":2}]`, "", -1},
		{`{"a":"{\"a\":1}","b":2}`, "", -1},
		{`{"a":1,"\u0061":2}`, "a", 7},
		{`{"k":[1,{"x":1,"x":2}]}`, "x", 15},
		{`{"a\"b":1,"a\"b":2}`, `a"b`, 10},
		{`"a"`, "", -1},
		{`{}`, "", -1},
	} {
		name, off, found := DuplicateName([]byte(tc.in))
		if found != (tc.off >= 0) || name != tc.name || (found && off != tc.off) {
			t.Errorf("%s: got %q at %d (%v), want %q at %d", tc.in, name, off, found, tc.name, tc.off)
		}
	}
}
