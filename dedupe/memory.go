package dedupe

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// sweepPerOp bounds the sweep of one call: it removes up to sweepPerOp plus
// one per key it touches of the heap items that are due. A call adds at most
// one item per key it touches, so removal outpaces addition and expired
// entries cannot pile up while the store is in use, yet no call pays for more
// than a sweep proportional to its own size.
const sweepPerOp = 64

// compactSlack is how many superseded heap items Memory tolerates beyond the
// live entries before it compacts the heap.
const compactSlack = 1024

// Memory is an in-process Store and Batcher with the same semantics as Redis:
// for the embedded demo and for tests. It is safe for concurrent use and
// starts no goroutines: expired entries are ignored on lookup and swept a few
// at a time, oldest expiry first, by each call. Its size follows the number of
// keys claimed or done within their lease or TTL; it has no other bound, so
// size the done TTL to the event rate (1k events/s for 24h is 86M keys).
type Memory struct {
	mu      sync.Mutex
	entries map[string]*entry
	expiry  expiryHeap // min-heap by expiry: one item per live entry, plus superseded ones not yet dropped
}

var (
	_ Store   = (*Memory)(nil)
	_ Batcher = (*Memory)(nil)
)

// entry is one key's state. An entry is never modified after it is stored:
// a state change stores a new entry, which makes older heap items stale.
type entry struct {
	token   string // owner of a pending key; empty when done
	done    bool
	expires time.Time
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{entries: make(map[string]*entry)}
}

// Claim implements Store.
func (m *Memory) Claim(ctx context.Context, key, token string, lease time.Duration) (Outcome, error) {
	lease, err := checkClaim(ctx, token, lease)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.sweep(now, 1)
	return m.claim(now, key, token, lease), nil
}

// Done implements Store.
func (m *Memory) Done(ctx context.Context, key string, ttl time.Duration) error {
	return m.DoneBatch(ctx, []string{key}, ttl)
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, key, token string) error {
	if err := checkRelease(ctx, token); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.sweep(now, 1)
	if e := m.live(now, key); e != nil && !e.done && e.token == token {
		delete(m.entries, key)
	}
	return nil
}

// Extend implements Extender.
func (m *Memory) Extend(ctx context.Context, key, token string, lease time.Duration) (bool, error) {
	lease, err := checkClaim(ctx, token, lease)
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.sweep(now, 1)
	e := m.live(now, key)
	if e == nil || e.done || e.token != token {
		return false, nil
	}
	// A new entry, not a mutation: the heap orders by the old expiry.
	m.put(key, &entry{token: token, expires: now.Add(lease)})
	return true, nil
}

// ClaimBatch implements Batcher, atomically for the whole batch.
func (m *Memory) ClaimBatch(ctx context.Context, reqs []ClaimRequest) ([]Outcome, error) {
	leases, err := checkClaims(ctx, reqs)
	if err != nil {
		return nil, err
	}
	outs := make([]Outcome, len(reqs))
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.sweep(now, len(reqs))
	for i, r := range reqs {
		outs[i] = m.claim(now, r.Key, r.Token, leases[i])
	}
	return outs, nil
}

// DoneBatch implements Batcher, atomically for the whole batch.
func (m *Memory) DoneBatch(ctx context.Context, keys []string, ttl time.Duration) error {
	ttl, err := checkDuration(ctx, "done ttl", ttl)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.sweep(now, len(keys))
	for _, k := range keys {
		m.put(k, &entry{done: true, expires: now.Add(ttl)})
	}
	return nil
}

// claim is Claim with m.mu held.
func (m *Memory) claim(now time.Time, key, token string, lease time.Duration) Outcome {
	e := m.live(now, key)
	switch {
	case e == nil:
		m.put(key, &entry{token: token, expires: now.Add(lease)})
		return Claimed
	case e.done:
		return Duplicate
	case e.token == token:
		return Claimed // the owner again; the lease is not extended, as in Redis
	default:
		return Busy
	}
}

// live returns key's entry unless it is absent or expired. m.mu must be held.
func (m *Memory) live(now time.Time, key string) *entry {
	e := m.entries[key]
	if e == nil || !now.Before(e.expires) {
		return nil
	}
	return e
}

// put stores e under key and schedules its expiry. m.mu must be held.
func (m *Memory) put(key string, e *entry) {
	m.entries[key] = e
	heap.Push(&m.expiry, expiryItem{key: key, e: e})
	if len(m.expiry) > 2*len(m.entries)+compactSlack {
		m.compact()
	}
}

// compact drops superseded heap items, which a key finished or released long
// before its lease or TTL is due leaves behind. It runs after at least
// len(m.entries)+compactSlack pushes since the last compaction, so it costs
// O(1) amortized per put and keeps the heap under twice the live entries.
// m.mu must be held.
func (m *Memory) compact() {
	kept := m.expiry[:0]
	for _, it := range m.expiry {
		if m.entries[it.key] == it.e {
			kept = append(kept, it)
		}
	}
	clear(m.expiry[len(kept):])
	m.expiry = kept
	heap.Init(&m.expiry)
}

// sweep pops up to sweepPerOp+keys heap items that are due, deleting their
// entries if still current, for a call that touches keys keys. Superseded
// items (the key was released, finished or reclaimed since) are dropped.
// m.mu must be held.
func (m *Memory) sweep(now time.Time, keys int) {
	for range sweepPerOp + keys {
		if len(m.expiry) == 0 || now.Before(m.expiry[0].e.expires) {
			return
		}
		it := heap.Pop(&m.expiry).(expiryItem)
		if m.entries[it.key] == it.e {
			delete(m.entries, it.key)
		}
	}
}

type expiryItem struct {
	key string
	e   *entry
}

// expiryHeap is a min-heap of items by expiry, for container/heap.
type expiryHeap []expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].e.expires.Before(h[j].e.expires) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = expiryItem{}
	*h = old[:len(old)-1]
	return it
}
