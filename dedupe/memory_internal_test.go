package dedupe

import (
	"fmt"
	"testing"
	"time"
)

// TestMemorySweep: entries whose lease or TTL ran out are removed by later
// calls a bounded number at a time, with no goroutine of the store's own, and
// superseded heap items do not pile up.
func TestMemorySweep(t *testing.T) {
	const n = 2000
	lease := 50 * time.Millisecond
	cases := []struct {
		name  string
		setup func(t *testing.T, m *Memory, key string)
	}{
		{"lease", func(t *testing.T, m *Memory, key string) {
			mustClaim(t, m, key, "a", lease)
		}},
		{"done ttl", func(t *testing.T, m *Memory, key string) {
			mustClaim(t, m, key, "a", time.Hour)
			if err := m.Done(t.Context(), key, lease); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := NewMemory()
			for i := range n {
				c.setup(t, m, fmt.Sprintf("k%d", i))
			}
			expired := time.Now().Add(lease) // every lease or TTL set above is due by then
			// Probe with calls that sweep until the store is empty; count the
			// calls made after everything was due.
			deadline := time.Now().Add(5 * time.Second)
			calls := 0
			for size(m) > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d entries left after %d calls", size(m), calls)
				}
				if err := m.Release(t.Context(), "probe", "nobody"); err != nil {
					t.Fatal(err)
				}
				if time.Now().After(expired) {
					calls++
				}
				select {
				case <-t.Context().Done():
					t.Fatal(t.Context().Err())
				case <-time.After(time.Millisecond):
				}
			}
			if limit := n/(sweepPerOp+1) + 1; calls > limit {
				t.Errorf("sweeping %d expired entries took %d calls, want at most %d", n, calls, limit)
			}
			// Superseded items (the hour-long leases that Done replaced) go
			// at the next compaction, which the next write triggers.
			mustClaim(t, m, "probe", "a", time.Hour)
			m.mu.Lock()
			defer m.mu.Unlock()
			if len(m.entries) != 1 || len(m.expiry) > 2*len(m.entries)+compactSlack {
				t.Fatalf("after the sweep and a claim: %d entries, %d heap items", len(m.entries), len(m.expiry))
			}
		})
	}
}

// TestMemorySweepKeepsUpWithBatches: a call sweeps in proportion to its size,
// so big batches of short-lived keys do not leave a growing backlog of expired
// entries behind them.
func TestMemorySweepKeepsUpWithBatches(t *testing.T) {
	const rounds, batch = 50, 500
	m := NewMemory()
	for r := range rounds {
		reqs := make([]ClaimRequest, batch)
		for i := range reqs {
			reqs[i] = ClaimRequest{Key: fmt.Sprintf("r%d-k%d", r, i), Token: "a", Lease: time.Millisecond}
		}
		if _, err := m.ClaimBatch(t.Context(), reqs); err != nil {
			t.Fatal(err)
		}
		// Let this round's 1ms leases run out before the next round.
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	// Only the last round's keys may be left (and a little sweep lag).
	if n := size(m); n > 2*batch {
		t.Fatalf("%d entries after %d rounds of %d expiring keys, want at most %d", n, rounds, batch, 2*batch)
	}
}

// TestMemoryCompact: finishing or releasing keys long before their lease is
// due leaves superseded heap items; compaction keeps them under twice the live
// entries plus compactSlack.
func TestMemoryCompact(t *testing.T) {
	m := NewMemory()
	ctx := t.Context()
	for i := range 20_000 {
		key := fmt.Sprintf("k%d", i%100) // 100 live keys, each claimed and released many times
		mustClaim(t, m, key, "a", time.Hour)
		if err := m.Release(ctx, key, "a"); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			mustClaim(t, m, key, "a", time.Hour)
			if err := m.Done(ctx, key, time.Hour); err != nil {
				t.Fatal(err)
			}
			if err := m.Release(ctx, key, "a"); err != nil { // no effect: done
				t.Fatal(err)
			}
		}
		m.mu.Lock()
		entries, items := len(m.entries), len(m.expiry)
		m.mu.Unlock()
		if items > 2*entries+compactSlack+1 {
			t.Fatalf("after %d rounds: %d heap items for %d entries", i, items, entries)
		}
	}
	// Done keys stayed done through compactions.
	for i := 0; i < 100; i += 2 {
		if o := mustClaim(t, m, fmt.Sprintf("k%d", i), "b", time.Hour); o != Duplicate {
			t.Fatalf("k%d after compactions: %v, want duplicate", i, o)
		}
	}
}

func mustClaim(t *testing.T, m *Memory, key, token string, lease time.Duration) Outcome {
	t.Helper()
	o, err := m.Claim(t.Context(), key, token, lease)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func size(m *Memory) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
