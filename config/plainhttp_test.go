package config

import (
	"strings"
	"testing"
)

func TestPlainHTTPOffLoopbackRefused(t *testing.T) {
	const head = "kafka: {brokers: [a:1], topic: t}\nsinks:\n"
	for _, tc := range []struct {
		sink string
		want string // "" = accepted
	}{
		{`{name: a, url: "http://api.internal/x"}`, `sinks[0].url: "http://api.internal/x" is plain http to a host that is not loopback`},
		{`{name: a, url: "http://10.0.0.7:8080/x"}`, "set allow_plain_http: true"},
		{`{name: a, url: "http://api.internal/x", allow_plain_http: true}`, ""},
		{`{name: a, url: "http://127.0.0.1:8080/x"}`, ""},
		{`{name: a, url: "http://[::1]:8080/x"}`, ""},
		{`{name: a, url: "http://localhost:8080/x"}`, ""},
		{`{name: a, url: "https://api.internal/x"}`, ""},
	} {
		_, err := Parse("f.yaml", []byte(head+"  - "+tc.sink+"\n"), env(nil))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.sink, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", tc.sink, err, tc.want)
		}
	}
}
