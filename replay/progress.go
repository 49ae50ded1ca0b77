package replay

import "time"

// Percent is the share of the range done, 100 for an empty one.
func (p Progress) Percent() float64 {
	if p.Total <= 0 {
		return 100
	}
	return 100 * float64(p.Done) / float64(p.Total)
}

// ETA is the time left at rate records per second, rounded to the second;
// "?" when it cannot be told.
func (p Progress) ETA(rate float64) string {
	left := p.Total - p.Done
	switch {
	case left <= 0:
		return "0s"
	case rate <= 0:
		return "?"
	}
	return (time.Duration(float64(left)/rate*float64(time.Second)) + time.Second/2).Truncate(time.Second).String()
}

// Rate measures records sent per second over the last 5s of samples. It is
// not safe for concurrent use.
type Rate struct {
	samples []rateSample
}

type rateSample struct {
	at   time.Time
	sent int64
}

// Add records that sent records were sent by now and returns the rate.
func (r *Rate) Add(sent int64, now time.Time) float64 {
	r.samples = append(r.samples, rateSample{at: now, sent: sent})
	for len(r.samples) > 2 && now.Sub(r.samples[1].at) >= 5*time.Second {
		r.samples = r.samples[1:]
	}
	first := r.samples[0]
	if dt := now.Sub(first.at).Seconds(); dt > 0 {
		return float64(sent-first.sent) / dt
	}
	return 0
}
