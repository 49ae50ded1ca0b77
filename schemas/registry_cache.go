package schemas

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// cache holds values (schemas, subject lists) by key, collapses concurrent misses for a key into
// one fetch, and does not cache failures.
type cache[K comparable, V any] struct {
	ttl time.Duration // 0: forever

	mu      sync.Mutex
	entries map[K]cacheEntry[V]
	calls   map[K]*call[V]
}

type cacheEntry[V any] struct {
	s  V
	at time.Time
}

type call[V any] struct {
	done chan struct{}
	s    V
	err  error
	// abandoned: the caller that fetched gave up (its ctx ended), so its
	// error says nothing to the callers that waited for it.
	abandoned bool
}

func (c *cache[K, V]) cached(key K, now func() time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lookup(key, now)
}

func (c *cache[K, V]) lookup(key K, now func() time.Time) (V, bool) {
	e, ok := c.entries[key]
	if !ok || c.ttl > 0 && now().Sub(e.at) >= c.ttl {
		var zero V
		return zero, false
	}
	return e.s, true
}

func (c *cache[K, V]) put(key K, s V, now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[K]cacheEntry[V]{}
	}
	c.entries[key] = cacheEntry[V]{s: s, at: now()}
}

// get returns the cached schema for key, or fetches it. The fetch runs on
// the calling goroutine of the first caller, with its ctx; the others wait
// for it or for their own ctx, and fetch again themselves if the first
// caller gave up.
func (c *cache[K, V]) get(ctx context.Context, key K, now func() time.Time,
	fetch func(context.Context) (V, error)) (V, error) {
	for {
		c.mu.Lock()
		if s, ok := c.lookup(key, now); ok {
			c.mu.Unlock()
			return s, nil
		}
		if cl, ok := c.calls[key]; ok {
			c.mu.Unlock()
			select {
			case <-cl.done:
				if cl.abandoned {
					continue
				}
				return cl.s, cl.err
			case <-ctx.Done():
				var zero V
				return zero, fmt.Errorf("schemas: registry: %w", ctx.Err())
			}
		}
		cl := &call[V]{done: make(chan struct{})}
		if c.calls == nil {
			c.calls = map[K]*call[V]{}
		}
		c.calls[key] = cl
		c.mu.Unlock()

		cl.s, cl.err = fetch(ctx)
		cl.abandoned = cl.err != nil && ctx.Err() != nil
		if cl.err == nil {
			c.put(key, cl.s, now)
		}
		c.mu.Lock()
		delete(c.calls, key)
		c.mu.Unlock()
		close(cl.done)
		return cl.s, cl.err
	}
}
