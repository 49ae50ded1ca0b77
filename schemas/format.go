package schemas

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// This file holds the plain-JSON forms of Avro values that both directions
// share: JSON strings and numbers, logical types, decimals.

// appendNumber appends a finite float the way encoding/json does, so that
// Record.JSON and json.Marshal(Record.Fields) agree.
func appendNumber(b []byte, f float64, bits int) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) ||
		bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// nonFinite names NaN and the infinities: JSON has no numbers for them, so
// they are rendered as these strings, and EncodeJSON accepts the strings.
func nonFinite(f float64) (string, bool) {
	switch {
	case math.IsNaN(f):
		return "NaN", true
	case math.IsInf(f, 1):
		return "Infinity", true
	case math.IsInf(f, -1):
		return "-Infinity", true
	}
	return "", false
}

func parseNonFinite(s string) (float64, bool) {
	switch s {
	case "NaN":
		return math.NaN(), true
	case "Infinity":
		return math.Inf(1), true
	case "-Infinity":
		return math.Inf(-1), true
	}
	return 0, false
}

// Logical types. Values whose string form would leave years 0000-9999 (or
// a time of day outside 00:00-24:00) are rendered as the underlying integer
// instead, which EncodeJSON also accepts.

var (
	minTime   = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime   = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	minMillis = minTime.UnixMilli()
	maxMillis = maxTime.UnixMilli()
	minMicros = minTime.UnixMicro()
	maxMicros = maxTime.UnixMicro()
	minDays   = minTime.Unix() / 86400
	maxDays   = maxTime.Unix() / 86400
)

func isTimestamp(l logical) bool {
	return l >= lTimestampMillis && l <= lLocalTimestampMicros
}

func isMicros(l logical) bool {
	return l == lTimestampMicros || l == lLocalTimestampMicros || l == lTimeMicros
}

// formatLogical renders a date, time or timestamp. ok is false when the
// value has no string form.
func formatLogical(v int64, l logical) (s string, ok bool) {
	switch l {
	case lTimestampMillis, lLocalTimestampMillis:
		if v < minMillis || v > maxMillis {
			return "", false
		}
		layout := "2006-01-02T15:04:05.000"
		if l == lTimestampMillis {
			layout += "Z"
		}
		return time.UnixMilli(v).UTC().Format(layout), true
	case lTimestampMicros, lLocalTimestampMicros:
		if v < minMicros || v > maxMicros {
			return "", false
		}
		layout := "2006-01-02T15:04:05.000000"
		if l == lTimestampMicros {
			layout += "Z"
		}
		return time.UnixMicro(v).UTC().Format(layout), true
	case lDate:
		if v < minDays || v > maxDays {
			return "", false
		}
		return time.Unix(v*86400, 0).UTC().Format("2006-01-02"), true
	case lTimeMillis, lTimeMicros:
		unit := int64(1000)
		if l == lTimeMicros {
			unit = 1000000
		}
		if v < 0 || v >= 86400*unit {
			return "", false
		}
		sec := v / unit
		if unit == 1000 {
			return fmt.Sprintf("%02d:%02d:%02d.%03d", sec/3600, sec/60%60, sec%60, v%unit), true
		}
		return fmt.Sprintf("%02d:%02d:%02d.%06d", sec/3600, sec/60%60, sec%60, v%unit), true
	}
	return "", false
}

// parseLogical is the inverse of formatLogical.
func parseLogical(s string, l logical) (int64, string) {
	var (
		t   time.Time
		err error
	)
	switch l {
	case lTimestampMillis, lTimestampMicros:
		t, err = time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, fmt.Sprintf("%s is not an RFC 3339 timestamp (or an integer)", quote(s))
		}
	case lLocalTimestampMillis, lLocalTimestampMicros:
		t, err = time.ParseInLocation("2006-01-02T15:04:05", s, time.UTC)
		if err != nil {
			return 0, fmt.Sprintf("%s is not a local timestamp like 2006-01-02T15:04:05.000 (or an integer)", quote(s))
		}
	case lDate:
		t, err = time.Parse("2006-01-02", s)
		if err != nil {
			return 0, fmt.Sprintf("%s is not a date like 2006-01-02 (or an integer)", quote(s))
		}
		return t.Unix() / 86400, ""
	case lTimeMillis, lTimeMicros:
		t, err = time.Parse("15:04:05", s)
		if err != nil {
			return 0, fmt.Sprintf("%s is not a time of day like 15:04:05.000 (or an integer)", quote(s))
		}
		t = time.Date(1970, 1, 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	}
	t = t.UTC()
	if isMicros(l) {
		if t.Nanosecond()%1000 != 0 {
			return 0, fmt.Sprintf("%s has sub-microsecond precision", quote(s))
		}
		return t.UnixMicro(), ""
	}
	if t.Nanosecond()%1000000 != 0 {
		return 0, fmt.Sprintf("%s has sub-millisecond precision", quote(s))
	}
	return t.UnixMilli(), ""
}

// isUUID reports whether s has the RFC 4122 text form (either case).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// Decimals.

// decodeDecimal reads a big-endian two's complement unscaled value and
// renders it with exactly scale digits after the point.
func decodeDecimal(b []byte, precision, scale, maxBytes int) (string, string) {
	for len(b) > 1 && (b[0] == 0 && b[1]&0x80 == 0 || b[0] == 0xff && b[1]&0x80 != 0) {
		b = b[1:]
	}
	if len(b) > maxBytes {
		return "", fmt.Sprintf("decimal of %d bytes has more than %d digits", len(b), precision)
	}
	v := new(big.Int).SetBytes(b)
	neg := len(b) > 0 && b[0]&0x80 != 0
	if neg {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
		v.Neg(v)
	}
	digits := v.String()
	if len(digits) > precision {
		return "", fmt.Sprintf("decimal has %d digits, more than its precision %d", len(digits), precision)
	}
	return formatDecimal(neg, digits, scale), ""
}

func formatDecimal(neg bool, digits string, scale int) string {
	var sb strings.Builder
	if neg {
		sb.WriteByte('-')
	}
	if scale == 0 {
		sb.WriteString(digits)
		return sb.String()
	}
	if pad := scale + 1 - len(digits); pad > 0 {
		digits = strings.Repeat("0", pad) + digits
	}
	sb.WriteString(digits[:len(digits)-scale])
	sb.WriteByte('.')
	sb.WriteString(digits[len(digits)-scale:])
	return sb.String()
}

// parseDecimal parses a decimal number (JSON number syntax) into its
// unscaled two's complement bytes. It refuses to round.
func parseDecimal(s string, precision, scale int) ([]byte, string) {
	bad := func() ([]byte, string) {
		return nil, fmt.Sprintf("%s is not a decimal number", quote(s))
	}
	rest := s
	neg := strings.HasPrefix(rest, "-")
	if neg {
		rest = rest[1:]
	}
	mant, exp := rest, 0
	if i := strings.IndexAny(rest, "eE"); i >= 0 {
		mant = rest[:i]
		e, err := strconv.Atoi(rest[i+1:])
		if err != nil || e < -10000 || e > 10000 {
			return bad()
		}
		exp = e
	}
	intPart, frac, hasPoint := strings.Cut(mant, ".")
	if !allDigits(intPart) || hasPoint && !allDigits(frac) {
		return bad()
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	shift := exp - len(frac) + scale // unscaled = digits * 10^shift
	if shift < 0 {
		drop := -shift
		if drop > len(digits) {
			drop = len(digits)
		}
		if strings.Trim(digits[len(digits)-drop:], "0") != "" {
			return nil, fmt.Sprintf("%s has more than %d digits after the decimal point", quote(s), scale)
		}
		digits, shift = digits[:len(digits)-drop], 0
	}
	if len(digits) > 0 && len(digits)+shift > precision {
		return nil, fmt.Sprintf("%s has more than %d digits (precision %d)", quote(s), precision, precision)
	}
	if digits == "" {
		return []byte{0}, ""
	}
	v, _ := new(big.Int).SetString(digits+strings.Repeat("0", shift), 10)
	if neg {
		v.Neg(v)
	}
	return twosComplement(v), ""
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// twosComplement returns the shortest big-endian two's complement form of v.
func twosComplement(v *big.Int) []byte {
	if v.Sign() >= 0 {
		b := v.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	n := v.BitLen()/8 + 1
	x := new(big.Int).Lsh(big.NewInt(1), uint(8*n))
	x.Add(x, v)
	b := x.FillBytes(make([]byte, n))
	for len(b) > 1 && b[0] == 0xff && b[1]&0x80 != 0 {
		b = b[1:]
	}
	return b
}

// quote shortens and quotes an input value for an error message.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:61] + "..."
	}
	return strconv.Quote(s)
}
