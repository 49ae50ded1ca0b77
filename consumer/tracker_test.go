package consumer

import (
	"math/rand/v2"
	"slices"
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

// A range's watermark (fanout replay's progress): pos only moves over a done prefix; gaps are passed
// over only when a later offset is done or the reader closes the range.
func TestRangeTrackerWatermark(t *testing.T) {
	type step struct {
		op       string // add, finish, close
		offset   int64
		ok       bool  // add's answer
		released int   // finish's answer
		pos      int64 // pos after the step
		ahead    []int64
	}
	for _, tc := range []struct {
		name            string
		from, end, pos0 int64
		prior           []int64
		steps           []step
	}{
		{name: "in order", from: 0, end: 3, steps: []step{
			{op: "add", offset: 0, ok: true, pos: 0},
			{op: "add", offset: 1, ok: true, pos: 0},
			{op: "finish", offset: 0, released: 1, pos: 1},
			{op: "finish", offset: 1, released: 1, pos: 2},
			{op: "add", offset: 2, ok: true, pos: 2},
			{op: "finish", offset: 2, released: 1, pos: 3},
		}},
		{name: "out of order keeps the prefix", from: 10, end: 20, steps: []step{
			{op: "add", offset: 10, ok: true, pos: 10},
			{op: "add", offset: 11, ok: true, pos: 10},
			{op: "add", offset: 12, ok: true, pos: 10},
			{op: "finish", offset: 12, released: 0, pos: 10, ahead: []int64{12}},
			{op: "finish", offset: 11, released: 0, pos: 10, ahead: []int64{11, 12}},
			{op: "finish", offset: 11, released: 0, pos: 10, ahead: []int64{11, 12}}, // twice: nothing
			{op: "finish", offset: 10, released: 3, pos: 13},
		}},
		{name: "gaps are passed over by done offsets, the tail by close", from: 0, end: 10, steps: []step{
			{op: "add", offset: 3, ok: true, pos: 0},
			{op: "add", offset: 7, ok: true, pos: 0},
			{op: "finish", offset: 7, released: 0, pos: 0, ahead: []int64{7}},
			{op: "finish", offset: 3, released: 2, pos: 8},
			{op: "close", pos: 10},
		}},
		{name: "close waits for what is pending", from: 0, end: 10, steps: []step{
			{op: "add", offset: 4, ok: true, pos: 0},
			{op: "close", pos: 0},
			{op: "add", offset: 5, ok: false, pos: 0},
			{op: "finish", offset: 4, released: 1, pos: 10},
		}},
		{name: "refuses stale and out-of-range offsets", from: 5, end: 8, steps: []step{
			{op: "add", offset: 4, ok: false, pos: 5},
			{op: "add", offset: 8, ok: false, pos: 5},
			{op: "add", offset: 6, ok: true, pos: 5},
			{op: "add", offset: 6, ok: false, pos: 5},
			{op: "add", offset: 5, ok: false, pos: 5},
		}},
		{name: "resumed: prior done offsets stay done until reached", from: 0, end: 10, pos0: 2, prior: []int64{4, 5, 8},
			steps: []step{
				{op: "add", offset: 2, ok: true, pos: 2, ahead: []int64{4, 5, 8}},
				{op: "add", offset: 3, ok: true, pos: 2, ahead: []int64{4, 5, 8}},
				{op: "finish", offset: 3, pos: 2, ahead: []int64{3, 4, 5, 8}},
				{op: "add", offset: 4, ok: true, pos: 2, ahead: []int64{3, 4, 5, 8}}, // the reader finishes it at once
				{op: "finish", offset: 4, pos: 2, ahead: []int64{3, 4, 5, 8}},
				{op: "finish", offset: 2, released: 3, pos: 5, ahead: []int64{5, 8}},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pos0 := tc.pos0
			if pos0 == 0 {
				pos0 = tc.from
			}
			tr := newRangeTracker(pos0, tc.end, tc.prior)
			for i, s := range tc.steps {
				switch s.op {
				case "add":
					if got := tr.add(s.offset, 0); got != s.ok {
						t.Fatalf("step %d: add(%d) = %v, want %v", i, s.offset, got, s.ok)
					}
				case "finish":
					if got := tr.finish(s.offset); got != s.released {
						t.Fatalf("step %d: finish(%d) released %d, want %d", i, s.offset, got, s.released)
					}
				case "close":
					tr.close()
				}
				if tr.commit.Offset != s.pos {
					t.Fatalf("step %d (%s %d): pos %d, want %d", i, s.op, s.offset, tr.commit.Offset, s.pos)
				}
				if got := tr.doneAhead(); !slices.Equal(got, s.ahead) {
					t.Fatalf("step %d (%s %d): done ahead %v, want %v", i, s.op, s.offset, got, s.ahead)
				}
				if want := tc.end - tr.commit.Offset - int64(len(s.ahead)); tr.remaining() != want {
					t.Fatalf("step %d: remaining %d, want %d", i, tr.remaining(), want)
				}
			}
		})
	}
}
