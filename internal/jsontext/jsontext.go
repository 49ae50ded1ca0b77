// Package jsontext writes JSON text by hand where encoding/json would cost an
// allocation per value: Avro records rendered as JSON (schemas) and the
// CloudEvents batch body (sink). It owns only JSON's string quoting.
package jsontext

import "unicode/utf8"

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
