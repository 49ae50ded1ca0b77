package sink

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backoff returns the wait after failed attempt n (1-based): full jitter,
// uniform in [0, min(cap, base·2^(n-1))).
func backoff(n int, base, limit time.Duration, rand func() float64) time.Duration {
	ceiling := min(base, limit)
	for i := 1; i < n && ceiling < limit; i++ {
		if ceiling >= limit-ceiling { // doubling reaches the cap (and might overflow)
			ceiling = limit
			break
		}
		ceiling *= 2
	}
	if ceiling <= 0 {
		return 0
	}
	r := rand()
	if r < 0 || r >= 1 || math.IsNaN(r) {
		r = 0 // a broken source must not produce a wait at or past the ceiling
	}
	return time.Duration(r * float64(ceiling))
}

// maxRetryAfter bounds a parsed Retry-After so it fits a time.Duration.
const maxRetryAfter = math.MaxInt64 / int64(time.Second)

// parseRetryAfter reads a Retry-After value: delta-seconds or an HTTP-date
// (RFC 9110 §10.2.3). ok is false when the header is absent or unparseable.
// A date in the past is 0, never negative.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			// All digits but too large for int64 is still "a long time".
			if ne, isNum := err.(*strconv.NumError); isNum && ne.Err == strconv.ErrRange {
				return time.Duration(maxRetryAfter) * time.Second, true
			}
			return 0, false
		}
		return time.Duration(min(secs, maxRetryAfter)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// sleep waits d or until ctx is done, whichever is first; it returns ctx's
// error in the second case.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
