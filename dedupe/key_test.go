package dedupe_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/dedupe"
)

// splitKey inverts dedupe.Key. That it exists proves Key injective: two pairs
// with the same key would have to split into the same pair.
func splitKey(key string) (sink, eventID string, ok bool) {
	sink, eventID, ok = strings.Cut(key, ":")
	if !ok {
		return "", "", false
	}
	var b strings.Builder
	for i := 0; i < len(sink); i++ {
		if sink[i] != '%' {
			b.WriteByte(sink[i])
			continue
		}
		switch {
		case strings.HasPrefix(sink[i:], "%25"):
			b.WriteByte('%')
		case strings.HasPrefix(sink[i:], "%3A"):
			b.WriteByte(':')
		default:
			return "", "", false // Key never writes a bare '%'
		}
		i += 2
	}
	return b.String(), eventID, true
}

// FuzzContractKey checks the invariant behind every dedupe key: Key(sink, id)
// splits back into exactly (sink, id), for any bytes in either, so distinct
// pairs never share a key; and a valid sink name ([a-z0-9_-]) is not escaped.
func FuzzContractKey(f *testing.F) {
	for _, seed := range [][2]string{
		{"a:b", "c"}, {"a", "b:c"}, {"a%3A", "b"}, {"a%", "3A:b"}, {"%", "%"},
		{"", ""}, {":", ":"}, {"profile", "0b6f-1"}, {"email", "events/3/1042"},
	} {
		f.Add(seed[0], seed[1])
	}
	valid := regexp.MustCompile(`^[a-z0-9_-]*$`)
	f.Fuzz(func(t *testing.T, sink, eventID string) {
		key := dedupe.Key(sink, eventID)
		s, id, ok := splitKey(key)
		if !ok || s != sink || id != eventID {
			t.Fatalf("Key(%q, %q) = %q splits into (%q, %q, %v)", sink, eventID, key, s, id, ok)
		}
		if valid.MatchString(sink) && key != sink+":"+eventID {
			t.Fatalf("Key(%q, %q) = %q escapes a valid sink name", sink, eventID, key)
		}
	})
}

func TestContractNewToken(t *testing.T) {
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for range 1000 {
		tok := dedupe.NewToken()
		if !hex32.MatchString(tok) {
			t.Fatalf("NewToken() = %q, want 32 lowercase hex digits", tok)
		}
		if seen[tok] {
			t.Fatalf("NewToken() repeated %q", tok)
		}
		seen[tok] = true
	}
}

func TestContractOutcomeString(t *testing.T) {
	for _, c := range []struct {
		o    dedupe.Outcome
		want string
	}{
		{dedupe.Claimed, "claimed"},
		{dedupe.Duplicate, "duplicate"},
		{dedupe.Busy, "busy"},
		{0, "Outcome(0)"},
		{42, "Outcome(42)"},
	} {
		if got := c.o.String(); got != c.want {
			t.Errorf("Outcome(%d).String() = %q, want %q", int(c.o), got, c.want)
		}
	}
}
