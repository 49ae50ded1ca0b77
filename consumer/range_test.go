package consumer

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/letter"
)

// rangeTopic makes a cluster with topic and its DLQ, produces n records with
// keys keys to topic and returns the partitions' end offsets.
func rangeTopic(t *testing.T, topic string, n, keys int) ([]string, map[int32]int64) {
	t.Helper()
	addrs := newCluster(t, topic, topic+".s.dlq")
	produce(t, addrs, topic, n, keys)
	ends, err := adminFor(t, addrs).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	end := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
	return addrs, end
}

// Range mode: each partition from its start to its end (exclusive), records
// an earlier run finished skipped, key order kept, failures parked, progress
// through the Commit hook, and Run returning by itself at the end — with
// records produced past the ends, and a partition outside the range, left
// alone.
func TestRangeMode(t *testing.T) {
	topic := "t-range"
	addrs, end := rangeTopic(t, topic, 400, 20)
	for p := range int32(3) {
		if end[p] < 20 {
			t.Fatalf("partition %d has only %d records", p, end[p])
		}
	}
	rng := map[int32]Span{
		0: {Pos: 2, End: end[0] - 3},
		1: {Pos: 0, End: end[1], Done: []int64{3, 4, 9}},
		2: {Pos: end[2], End: end[2]}, // nothing to do
	}
	produce(t, addrs, topic, 100, 20) // past every end

	type at struct {
		p   int32
		off int64
	}
	var mu sync.Mutex
	var commits []map[int32]Progress
	handled := map[at]int{}
	parked := map[string]bool{}
	keys := newOrderCheck(func(r *kgo.Record) string { return fmt.Sprintf("%d/%s", r.Partition, r.Key) }, time.Millisecond)
	h := HandlerFunc(func(ctx context.Context, r *kgo.Record) Outcome {
		keys.Handle(ctx, r)
		mu.Lock()
		handled[at{r.Partition, r.Offset}]++
		mu.Unlock()
		if i, _ := strconv.Atoi(string(r.Value)); i%10 == 3 {
			return Outcome{Verdict: DeadLetter, Reason: "permanent", Status: 400, Attempts: 1, OnParked: func() {
				mu.Lock()
				parked[string(r.Value)] = true
				mu.Unlock()
			}}
		}
		return Outcome{Verdict: Done}
	})
	cfg := cfgFor(topic, ByKey)
	cfg.Group, cfg.Range = "", rng
	cfg.Commit = func(_ context.Context, p map[int32]Progress) error {
		mu.Lock()
		commits = append(commits, p)
		mu.Unlock()
		return nil
	}
	c, err := New(cfg, h, testLogger(), kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run did not stop by itself at the end of the range")
	}

	want := map[at]int{}
	for p, sp := range rng {
		for o := sp.Pos; o < sp.End; o++ {
			if !slices.Contains(sp.Done, o) {
				want[at{p, o}] = 1
			}
		}
	}
	if fmt.Sprint(handled) != fmt.Sprint(want) {
		t.Errorf("handled %d records %v\nwant %d: %v", len(handled), handled, len(want), want)
	}
	if len(keys.errs) > 0 {
		t.Errorf("key order violated: %v", keys.errs[:min(5, len(keys.errs))])
	}
	st := c.Stats()
	if st.Parked != int64(len(parked)) || st.Parked == 0 || st.Handled != int64(len(want)) || st.Abandoned != 0 {
		t.Errorf("stats %+v, parked %d", st, len(parked))
	}
	for _, r := range readAll(t, addrs, topic+".s.dlq", len(parked)) {
		if h := headersOf(r); !parked[string(r.Value)] || h[letter.HeaderSink] != "s" || h[letter.HeaderErrorClass] != "permanent" {
			t.Errorf("letter %s: %v", r.Value, h)
		}
	}
	if len(commits) == 0 {
		t.Fatal("no progress committed")
	}
	last := commits[len(commits)-1]
	for p, sp := range rng {
		if pr := last[p]; pr.Offset != sp.End || len(pr.DoneAhead) != 0 || pr.Remaining != 0 {
			t.Errorf("partition %d: last progress %+v, want offset %d", p, pr, sp.End)
		}
	}
	if _, ok := last[3]; ok || len(last) != len(rng) {
		t.Errorf("progress names partitions %v", last)
	}
}

// A range interrupted mid-way drains what is in flight, hands the progress
// (the watermark and the records done past it) to Commit, and a second run
// from that progress handles exactly the rest.
func TestRangeInterruptedThenResumed(t *testing.T) {
	topic := "t-range-resume"
	addrs, end := rangeTopic(t, topic, 200, 50)
	rng := map[int32]Span{}
	total := 0
	for p, e := range end {
		rng[p] = Span{Pos: 0, End: e}
		total += int(e)
	}

	var mu sync.Mutex
	seen := map[string]int{}
	var last map[int32]Progress
	runOnce := func(rng map[int32]Span, stopAfter int) {
		h := HandlerFunc(func(ctx context.Context, r *kgo.Record) Outcome {
			time.Sleep(3 * time.Millisecond)
			mu.Lock()
			seen[string(r.Value)]++
			mu.Unlock()
			return Outcome{Verdict: Done}
		})
		cfg := cfgFor(topic, Unordered)
		cfg.Group, cfg.Range, cfg.MaxInFlight = "", rng, 3
		cfg.Commit = func(_ context.Context, p map[int32]Progress) error {
			mu.Lock()
			last = p
			mu.Unlock()
			return nil
		}
		c, err := New(cfg, h, testLogger(), kgo.SeedBrokers(addrs...))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if stopAfter > 0 {
			go func() {
				for {
					mu.Lock()
					n := len(seen)
					mu.Unlock()
					if n >= stopAfter {
						cancel()
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()
		}
		if err := c.Run(ctx); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := c.Progress(); fmt.Sprint(got) != fmt.Sprint(last) {
			t.Errorf("Progress() %v, last committed %v", got, last)
		}
	}
	runOnce(rng, 40)
	mu.Lock()
	first := len(seen)
	var remaining int64
	next := map[int32]Span{}
	for p, pr := range last {
		remaining += pr.Remaining
		next[p] = Span{Pos: pr.Offset, End: rng[p].End, Done: pr.DoneAhead}
	}
	mu.Unlock()
	if first >= total || int64(total-first) != remaining {
		t.Fatalf("first run handled %d of %d; its progress leaves %d", first, total, remaining)
	}
	runOnce(next, 0)
	if len(seen) != total {
		t.Errorf("handled %d distinct records, want %d", len(seen), total)
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("record %s handled %d times", v, n)
		}
	}
	for p, pr := range last {
		if pr.Offset != rng[p].End || pr.Remaining != 0 {
			t.Errorf("partition %d: progress %+v", p, pr)
		}
	}
}
