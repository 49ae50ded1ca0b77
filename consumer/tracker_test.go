package consumer

import (
	"math/rand/v2"
	"testing"
)

func TestTrackerWatermark(t *testing.T) {
	tests := []struct {
		name    string
		offsets []int64
		finish  []int64
		want    int64 // expected commit offset, -1 = nothing committable
	}{
		{"nothing done", []int64{0, 1, 2}, nil, -1},
		{"prefix", []int64{0, 1, 2}, []int64{0, 1}, 2},
		{"hole blocks", []int64{0, 1, 2}, []int64{1, 2}, -1},
		{"hole filled", []int64{0, 1, 2}, []int64{2, 1, 0}, 3},
		{"gaps in offsets", []int64{5, 9, 30}, []int64{5, 9}, 10},
		{"unknown offset ignored", []int64{0, 1}, []int64{7, 0}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker()
			for _, o := range tt.offsets {
				if !tr.add(o, 3) {
					t.Fatalf("add(%d) refused", o)
				}
			}
			for _, o := range tt.finish {
				tr.finish(o)
			}
			got, ok := tr.take()
			if tt.want < 0 {
				if ok {
					t.Fatalf("committable %v, want nothing", got)
				}
				return
			}
			if !ok || got.Offset != tt.want || got.Epoch != 3 {
				t.Fatalf("commit = %v %v, want offset %d epoch 3", got, ok, tt.want)
			}
			if _, again := tr.take(); again {
				t.Fatal("take reported the same commit twice")
			}
		})
	}
}

func TestTrackerRefusesStale(t *testing.T) {
	tr := newTracker()
	tr.add(10, 0)
	if tr.add(10, 0) || tr.add(4, 0) {
		t.Fatal("accepted an offset not above the last added")
	}
	tr.finish(10)
	if tr.add(9, 0) {
		t.Fatal("accepted an offset below the committed watermark")
	}
}

// Random completion order: the watermark never passes an unfinished offset and
// ends one past the last offset once all are finished.
func TestTrackerRandomOrder(t *testing.T) {
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 1))
		tr := newTracker()
		n := 1 + r.IntN(500)
		offs := make([]int64, n)
		var o int64
		for i := range offs {
			o += 1 + int64(r.IntN(3))
			offs[i] = o
			tr.add(o, 0)
		}
		done := map[int64]bool{}
		for _, i := range r.Perm(n) {
			tr.finish(offs[i])
			done[offs[i]] = true
			if c, ok := tr.take(); ok {
				for _, x := range offs {
					if x < c.Offset && !done[x] {
						t.Fatalf("seed %d: commit %d passes unfinished %d", seed, c.Offset, x)
					}
				}
			}
		}
		if tr.commit.Offset != offs[n-1]+1 || tr.inflight() != 0 {
			t.Fatalf("seed %d: final commit %d inflight %d, want %d 0", seed, tr.commit.Offset, tr.inflight(), offs[n-1]+1)
		}
	}
}
