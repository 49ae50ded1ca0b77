package dlq

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The value parsers the dlq and replay commands share; their flags are
// defined in cmd/fanout, which turns these errors into usage errors.

// SplitList splits a comma-separated list, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ParseWhen reads a point in time: RFC 3339, or a positive duration meaning
// that long before now (Go syntax, plus whole days: 7d). "" is the zero time.
func ParseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
		}
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("duration %q must be positive (it counts back from now)", s)
	}
	return now.Add(-d), nil
}

// ParseRate reads a rate: N, N/s or N/m records. It returns the interval
// between two records; 0 means unlimited.
func ParseRate(s string) (time.Duration, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	num, per := s, time.Second
	if n, unit, ok := strings.Cut(s, "/"); ok {
		num = n
		switch unit {
		case "s":
		case "m":
			per = time.Minute
		default:
			return 0, fmt.Errorf("%q: the unit is /s or /m", s)
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || n > 1e6 {
		return 0, fmt.Errorf("%q is not a positive rate such as 10/s", s)
	}
	return time.Duration(float64(per) / n), nil
}

// ParseAt reads a letter's place: partition:offset.
func ParseAt(s string) (int32, int64, error) {
	ps, os, ok := strings.Cut(s, ":")
	p, perr := strconv.ParseInt(ps, 10, 32)
	o, oerr := strconv.ParseInt(os, 10, 64)
	if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
		return 0, 0, fmt.Errorf("%q is not partition:offset, e.g. 2:117", s)
	}
	return int32(p), o, nil
}

// Shorten cuts s to n runes on one line (runs of white space become one
// space), ending in … where it cut: a value quoted in a message or a table.
func Shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
