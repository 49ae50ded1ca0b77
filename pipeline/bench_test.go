package pipeline

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/dedupe"
)

// BenchmarkHandle is fanout's per-record overhead on the delivery path:
// decode, type filter, event id, dedupe claim, one HTTP POST to a real
// in-process server (its cost included), done. Each iteration is a new event
// (the id falls back to the record's offset), so nothing is a duplicate.
//
//	go test -run '^$' -bench Handle -benchmem ./pipeline/
func BenchmarkHandle(b *testing.B) {
	for _, bc := range []struct {
		name     string
		dedupe   bool
		parallel bool
	}{
		{"serial/no-dedupe", false, false},
		{"serial/memory-dedupe", true, false},
		{"parallel64/memory-dedupe", true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a := newAPI(b, 200)
			h := newHandler(b, Config{Dedupe: bc.dedupe, IDField: "no_such_field"}, dedupe.NewMemory(), a.srv.URL)
			base := record(b, codec(b), "user.registered", userDoc)
			ctx := context.Background()
			var off atomic.Int64
			one := func() {
				r := *base
				r.Offset = off.Add(1)
				if out := h.Handle(ctx, &r); out.Verdict != consumer.Done {
					b.Fatalf("verdict %v: %v", out.Verdict, out.Err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			if !bc.parallel {
				for b.Loop() {
					one()
				}
				return
			}
			b.SetParallelism(32) // × GOMAXPROCS (2 here) = 64 in flight
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					one()
				}
			})
		})
	}
}
