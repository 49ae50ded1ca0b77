package redact

import (
	"fmt"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://user:SINKSECRET@127.0.0.1:5/x?token=SINKQUERYTOKEN", "https://user:***@127.0.0.1:5/x?token=***"},
		{"htps://user:SINKSECRET@127.0.0.1:5/x?token=SINKQUERYTOKEN&a=b", "htps://user:***@127.0.0.1:5/x?token=***&a=***"},
		{"http://host:8080/path", "http://host:8080/path"},
		{"http://onlyuser@host/", "http://onlyuser@host/"},
		{"https://u:p%40ss@h/x?t=a%20b#frag", "https://u:***@h/x?t=***#frag"},
		// does not parse: masked by pattern
		{"http://user:SEC RET@ho st/x?token=QT", "http://user:***@ho st/x?token=***"},
		{"://u:SECRET@%zz?token=QT", "://u:***@%zz?token=***"},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactor(t *testing.T) {
	r := New("Bearer BEARERTOKEN", "BEARERTOKEN", "abc", "", "PASSWORD1")
	got := r.String(`400: {"echo":"Authorization: Bearer BEARERTOKEN","p":"PASSWORD1PASSWORD1","short":"abc"}`)
	want := `400: {"echo":"Authorization: ***","p":"******","short":"abc"}`
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var nilR *Redactor
	if nilR.String("x") != "x" || New().String("BEARERTOKEN") != "BEARERTOKEN" {
		t.Error("an empty Redactor changed its input")
	}
}

func TestURLSecrets(t *testing.T) {
	got := New(URLSecrets("https://user:p%40ssword@h/x?token=QUERY%2FTOKEN")...).String("p@ssword p%40ssword QUERY/TOKEN QUERY%2FTOKEN user Basic dXNlcjpwQHNzd29yZA==")
	if want := "*** *** *** *** user Basic ***"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestWriterAndAdd(t *testing.T) {
	r := New()
	var b strings.Builder
	w := r.Writer(&b)
	fmt.Fprintln(w, "before LATESECRET")
	r.Add("LATESECRET")
	fmt.Fprintln(w, "after LATESECRET")
	if got, want := b.String(), "before LATESECRET\nafter ***\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
