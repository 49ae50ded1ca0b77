package dlq

import (
	"sync"
	"time"
)

// Pacer spaces records by Interval (--rate of redrive and replay), over all
// lanes. The zero Pacer never waits.
type Pacer struct {
	Interval time.Duration
	mu       sync.Mutex
	next     time.Time
}

// Wait waits for the next slot; false if halt closed first.
func (p *Pacer) Wait(halt <-chan struct{}) bool {
	if p.Interval <= 0 {
		return true
	}
	p.mu.Lock()
	at := p.next
	if now := time.Now(); at.Before(now) {
		at = now
	}
	p.next = at.Add(p.Interval)
	p.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-halt:
		return false
	case <-t.C:
		return true
	}
}
