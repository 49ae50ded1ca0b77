// Package jsontext writes JSON text by hand where encoding/json would cost an
// allocation per value: Avro records rendered as JSON (schemas) and the
// CloudEvents batch body (sink). It owns JSON's string quoting, and the
// duplicate-name check of rendered bodies (sink).
package jsontext

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Marshal returns v as encoding/json writes it, but without HTML escaping
// ("<" stays "<") and without the Encoder's trailing newline.
func Marshal(v any) (string, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// AppendString appends s to dst as a JSON string, as encoding/json
// writes it but without HTML escaping: '"', '\\' and control characters
// escaped, U+2028 and U+2029 escaped (valid JSON, but line terminators in
// JavaScript), every other rune as UTF-8 (a rune outside the BMP too: JSON
// needs surrogate pairs only when escaping one), and each invalid UTF-8
// byte replaced by U+FFFD. strconv.Quote is not JSON: its \U0001F600 and
// \xff escapes make a parser reject the whole batch.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// DuplicateName finds the first object member name that occurs twice in the
// same object of b, which must be valid JSON (json.Valid). Names are
// compared after unescaping, so "admin" and "\u0061dmin" are one name.
// RFC 8259 leaves duplicates' meaning to the reader, and most readers take
// the last one: in a body built from a template, a duplicate is how spliced
// data overrides a field the template set. off is the byte offset of the
// second occurrence.
func DuplicateName(b []byte) (name string, off int, found bool) {
	type frame struct {
		names   map[string]struct{} // nil for an array
		wantKey bool
	}
	var stack []frame
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{':
			stack = append(stack, frame{names: map[string]struct{}{}, wantKey: true})
		case '[':
			stack = append(stack, frame{})
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if n := len(stack); n > 0 && stack[n-1].names != nil {
				stack[n-1].wantKey = true
			}
		case '"':
			start := i
			esc := false
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					esc = true
					i++
				}
			}
			n := len(stack)
			if n == 0 || stack[n-1].names == nil || !stack[n-1].wantKey {
				continue
			}
			stack[n-1].wantKey = false
			key := string(b[start+1 : min(i, len(b))])
			if esc {
				var s string
				if err := json.Unmarshal(b[start:min(i+1, len(b))], &s); err == nil {
					key = s
				}
			}
			if _, dup := stack[n-1].names[key]; dup {
				return key, start, true
			}
			stack[n-1].names[key] = struct{}{}
		}
	}
	return "", 0, false
}
