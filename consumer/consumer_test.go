package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/letter"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const partitions = 4

func newCluster(t *testing.T, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// produce writes n records keyed k0..k(keys-1) with value "i".
func produce(t *testing.T, addrs []string, topic string, n, keys int) {
	t.Helper()
	if err := produceErr(addrs, topic, n, keys); err != nil {
		t.Fatal(err)
	}
}

func produceErr(addrs []string, topic string, n, keys int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Key: []byte("k" + strconv.Itoa(i%keys)), Value: []byte(strconv.Itoa(i))}
	}
	return cl.ProduceSync(context.Background(), recs...).FirstErr()
}

func adminFor(t *testing.T, addrs []string) *kadm.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// waitCommitted polls until the group's committed offsets equal the topic's end offsets.
func waitCommitted(t *testing.T, addrs []string, group, topic string) {
	t.Helper()
	adm := adminFor(t, addrs)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ends, err := adm.ListEndOffsets(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		com, err := adm.FetchOffsets(context.Background(), group)
		if err == nil {
			ok := true
			ends.Each(func(o kadm.ListedOffset) {
				c, found := com.Lookup(topic, o.Partition)
				if o.Offset > 0 && (!found || c.At != o.Offset) {
					ok = false
				}
			})
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s never committed the end offsets %v (committed %v, err %v)", group, ends, com, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func cfgFor(topic string, o Ordering) Config {
	return Config{
		Sink: "s", Topic: topic, Group: "g-" + topic, DLQTopic: topic + ".s.dlq", Ordering: o,
		MaxInFlight: 8, CommitInterval: 50 * time.Millisecond, DrainTimeout: 5 * time.Second,
	}
}

// run starts a consumer in the background and returns its stop function.
func run(t *testing.T, addrs []string, cfg Config, h Handler) (*Consumer, func()) {
	t.Helper()
	c, err := New(cfg, h, testLogger(), kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// orderCheck records each record once and the concurrency of its lanes.
type orderCheck struct {
	mu       sync.Mutex
	seen     map[string]int // value → times handled
	last     map[string]int64
	busy     map[string]bool
	laneOf   func(r *kgo.Record) string
	errs     []string
	cur, max atomic.Int64
	delay    time.Duration
}

func newOrderCheck(laneOf func(r *kgo.Record) string, delay time.Duration) *orderCheck {
	return &orderCheck{seen: map[string]int{}, last: map[string]int64{}, busy: map[string]bool{}, laneOf: laneOf, delay: delay}
}

func (o *orderCheck) Handle(ctx context.Context, r *kgo.Record) Outcome {
	n := o.cur.Add(1)
	for m := o.max.Load(); n > m && !o.max.CompareAndSwap(m, n); m = o.max.Load() {
	}
	defer o.cur.Add(-1)
	lane := o.laneOf(r)
	o.mu.Lock()
	if lane != "" {
		if o.busy[lane] {
			o.errs = append(o.errs, fmt.Sprintf("lane %s: two records in flight", lane))
		}
		if last, ok := o.last[lane]; ok && r.Offset <= last {
			o.errs = append(o.errs, fmt.Sprintf("lane %s: offset %d after %d", lane, r.Offset, last))
		}
		o.busy[lane] = true
		o.last[lane] = r.Offset
	}
	o.seen[string(r.Value)]++
	o.mu.Unlock()
	time.Sleep(o.delay)
	o.mu.Lock()
	o.busy[lane] = false
	o.mu.Unlock()
	return Outcome{Verdict: Done, Attempts: 1}
}

func (o *orderCheck) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.seen)
}

func TestOrderingModes(t *testing.T) {
	tests := []struct {
		name    string
		o       Ordering
		laneOf  func(r *kgo.Record) string
		minConc int64 // concurrency that must be reached
		maxConc int64
	}{
		{"partition", ByPartition, func(r *kgo.Record) string { return strconv.Itoa(int(r.Partition)) }, 2, partitions},
		{"key", ByKey, func(r *kgo.Record) string { return fmt.Sprintf("%d/%s", r.Partition, r.Key) }, 5, 8},
		{"unordered", Unordered, func(*kgo.Record) string { return "" }, 6, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := "t-" + tt.name
			addrs := newCluster(t, topic)
			const n = 600
			produce(t, addrs, topic, n, 40)
			h := newOrderCheck(tt.laneOf, 2*time.Millisecond)
			_, stop := run(t, addrs, cfgFor(topic, tt.o), h)
			waitCommitted(t, addrs, "g-"+topic, topic)
			stop()
			if got := h.count(); got != n {
				t.Fatalf("handled %d distinct records, want %d", got, n)
			}
			for v, times := range h.seen {
				if times != 1 {
					t.Errorf("record %s handled %d times", v, times)
				}
			}
			if len(h.errs) > 0 {
				t.Fatalf("ordering violated: %v", h.errs[:min(5, len(h.errs))])
			}
			if m := h.max.Load(); m < tt.minConc || m > tt.maxConc {
				t.Fatalf("max concurrency %d, want within [%d, %d]", m, tt.minConc, tt.maxConc)
			}
		})
	}
}

func TestDeadLetterParkedWithHeaders(t *testing.T) {
	topic := "t-dlq"
	addrs := newCluster(t, topic, topic+".s.dlq")
	produce(t, addrs, topic, 100, 10)
	h := HandlerFunc(func(_ context.Context, r *kgo.Record) Outcome {
		if i, _ := strconv.Atoi(string(r.Value)); i%10 == 3 {
			return Outcome{Verdict: DeadLetter, Reason: "permanent", Err: fmt.Errorf("http 400: bad %d", i), Status: 400, Attempts: 1}
		}
		return Outcome{Verdict: Done}
	})
	c, stop := run(t, addrs, cfgFor(topic, Unordered), h)
	waitCommitted(t, addrs, "g-"+topic, topic)
	stop()
	if got := c.Stats().Parked; got != 10 {
		t.Fatalf("parked %d, want 10", got)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic+".s.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(got) < 10 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			got[string(r.Value)] = true
			if h[letter.HeaderSink] != "s" || h[letter.HeaderTopic] != topic || h[letter.HeaderStatus] != "400" ||
				h[letter.HeaderErrorClass] != "permanent" || h[letter.HeaderAttempts] != "1" || h[letter.HeaderOffset] == "" ||
				h[letter.HeaderPartition] == "" || h[letter.HeaderTimestamp] == "" || h[letter.HeaderError] != "http 400: bad "+string(r.Value) {
				t.Errorf("record %s: headers %v", r.Value, h)
			}
		})
	}
	for i := 3; i < 100; i += 10 {
		if !got[strconv.Itoa(i)] {
			t.Errorf("record %d not in the DLQ", i)
		}
	}
}

// A handler stuck past the drain deadline is cancelled; its record stays
// uncommitted and is handled again by the next run; nothing after a stuck
// record is committed.
func TestDrainLeavesUnfinishedUncommitted(t *testing.T) {
	topic := "t-drain"
	addrs := newCluster(t, topic)
	produce(t, addrs, topic, 40, 40)
	var stuck atomic.Int64
	block := HandlerFunc(func(ctx context.Context, r *kgo.Record) Outcome {
		if string(r.Value) == "7" {
			stuck.Add(1)
			<-ctx.Done()
			return Outcome{Verdict: Abandon}
		}
		return Outcome{Verdict: Done}
	})
	cfg := cfgFor(topic, ByPartition)
	cfg.DrainTimeout = 200 * time.Millisecond
	c, stop := run(t, addrs, cfg, block)
	deadline := time.Now().Add(10 * time.Second)
	for stuck.Load() == 0 || c.Stats().Handled < 30 {
		if time.Now().After(deadline) {
			t.Fatalf("stuck=%d handled=%d", stuck.Load(), c.Stats().Handled)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if c.Stats().Abandoned == 0 {
		t.Fatal("nothing abandoned")
	}
	seen := map[string]int{}
	var mu sync.Mutex
	again := HandlerFunc(func(_ context.Context, r *kgo.Record) Outcome {
		mu.Lock()
		seen[string(r.Value)]++
		mu.Unlock()
		return Outcome{Verdict: Done}
	})
	_, stop2 := run(t, addrs, cfg, again)
	waitCommitted(t, addrs, cfg.Group, topic)
	stop2()
	if seen["7"] != 1 {
		t.Fatalf("the abandoned record was handled %d times after restart, want 1 (seen %v)", seen["7"], seen)
	}
}

// Fetching stops while the partitions hold their share of MaxBuffered: with
// every handler blocked, the records buffered stay within the shares plus one
// fetch per partition, however large the backlog.
func TestBufferedIsBounded(t *testing.T) {
	topic := "t-bound"
	addrs := newCluster(t, topic)
	const batch, batches = 1000, 20 // 20,000 records in batches of 1,000
	for range batches {
		produce(t, addrs, topic, batch, 1) // one key: one partition per call, one batch
	}
	release := make(chan struct{})
	var accepted atomic.Int64
	h := HandlerFunc(func(ctx context.Context, r *kgo.Record) Outcome {
		accepted.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return Outcome{Verdict: Abandon}
		}
		return Outcome{Verdict: Done}
	})
	cfg := cfgFor(topic, Unordered)
	cfg.MaxInFlight, cfg.MaxBuffered = 10, 50
	cfg.FetchMaxPartitionBytes = 1 // one batch per partition per fetch
	before := runtime.NumGoroutine()
	c, stop := run(t, addrs, cfg, h)
	deadline := time.Now().Add(10 * time.Second)
	for accepted.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatal("nothing started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // give an unbounded poll loop the chance to overrun
	c.mu.Lock()
	got, share := c.buffered, c.share()
	c.mu.Unlock()
	if bound := partitions * (share + batch); got > bound {
		t.Fatalf("%d records buffered, bound is %d (%d partitions × (share %d + one fetch of %d))", got, bound, partitions, share, batch)
	}
	if got := accepted.Load(); got > 10 {
		t.Fatalf("%d handlers started, MaxInFlight is 10", got)
	}
	// Buffered records wait in queues, not on goroutines of their own:
	// MaxInFlight workers plus franz-go's and the consumer's few.
	if n := runtime.NumGoroutine() - before; n > cfg.MaxInFlight+40 {
		t.Fatalf("%d goroutines more than before the consumer started, with %d records buffered and MaxInFlight %d", n, got, cfg.MaxInFlight)
	}
	close(release)
	waitCommitted(t, addrs, cfg.Group, topic)
	stop()
}

// A partition-ordered sink with a backlog in every partition runs every
// partition at once: one partition's queue filling the buffer must not keep
// the others from being fetched (each is paused at its share instead).
func TestPartitionsRunTogether(t *testing.T) {
	topic := "t-fair"
	addrs := newCluster(t, topic)
	produce(t, addrs, topic, 1600, 1600)
	var mu sync.Mutex
	running := map[int32]int{}
	peak := 0
	h := HandlerFunc(func(ctx context.Context, r *kgo.Record) Outcome {
		mu.Lock()
		running[r.Partition]++
		if len(running) > peak {
			peak = len(running)
		}
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		if running[r.Partition]--; running[r.Partition] == 0 {
			delete(running, r.Partition)
		}
		mu.Unlock()
		return Outcome{Verdict: Done}
	})
	cfg := cfgFor(topic, ByPartition)
	cfg.MaxInFlight, cfg.MaxBuffered = 8, 64
	_, stop := run(t, addrs, cfg, h)
	waitCommitted(t, addrs, cfg.Group, topic)
	stop()
	mu.Lock()
	defer mu.Unlock()
	if peak != partitions {
		t.Fatalf("at most %d partitions were in flight at once, want all %d", peak, partitions)
	}
}

// Two members share the group and a third joins and leaves while records
// flow: every record is handled, and the group commits the end offsets.
func TestRebalanceLosesNothing(t *testing.T) {
	topic := "t-rebal"
	addrs := newCluster(t, topic)
	const n = 3000
	seen := map[string]int{}
	where := map[string][]string{}
	var mu sync.Mutex
	h := HandlerFunc(func(_ context.Context, r *kgo.Record) Outcome {
		time.Sleep(4 * time.Millisecond)
		mu.Lock()
		seen[string(r.Value)]++
		where[string(r.Value)] = append(where[string(r.Value)], fmt.Sprintf("p%d@%d", r.Partition, r.Offset))
		mu.Unlock()
		return Outcome{Verdict: Done}
	})
	cfg := cfgFor(topic, ByKey)
	_, stopA := run(t, addrs, cfg, h)
	produced := make(chan error, 1)
	go func() { produced <- produceErr(addrs, topic, n, 100) }()
	time.Sleep(200 * time.Millisecond)
	_, stopB := run(t, addrs, cfg, h)
	time.Sleep(500 * time.Millisecond)
	_, stopC := run(t, addrs, cfg, h)
	time.Sleep(500 * time.Millisecond)
	stopB()
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	waitCommitted(t, addrs, cfg.Group, topic)
	stopA()
	stopC()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Fatalf("handled %d distinct records, want %d", len(seen), n)
	}
	dups := 0
	for v, c := range seen {
		if c > 1 {
			t.Logf("record %s handled %d times: %v", v, c, where[v])
		}
		dups += c - 1
	}
	// Clean revokes commit what is done, so a handover repeats nothing in
	// the common case. A member fenced out of the group (the classic
	// protocol's zombie window) can repeat what it had fetched and not
	// committed: at most MaxBuffered per partition move. Dedupe absorbs those.
	if bound := 2 * 256; dups > bound {
		t.Fatalf("%d records handled twice across rebalances, bound is %d", dups, bound)
	}
}

// A new group starting at "latest" sees only what is produced after it joined;
// one starting at a time sees records from that time on.
func TestStartPosition(t *testing.T) {
	topic := "t-start"
	addrs := newCluster(t, topic)
	produce(t, addrs, topic, 50, 5)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	produce(t, addrs, topic, 30, 5)

	count := func(start kgo.Offset, group string, after func()) int {
		var n atomic.Int64
		cfg := cfgFor(topic, Unordered)
		cfg.Group, cfg.Start = group, start
		c, stop := run(t, addrs, cfg, HandlerFunc(func(context.Context, *kgo.Record) Outcome {
			n.Add(1)
			return Outcome{Verdict: Done}
		}))
		deadline := time.Now().Add(10 * time.Second)
		assigned := func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.parts) > 0
		}
		for !assigned() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if after != nil {
			time.Sleep(500 * time.Millisecond) // let the group settle at the end offsets
			after()
		}
		waitCommitted(t, addrs, group, topic)
		stop()
		return int(n.Load())
	}
	if got := count(kgo.NewOffset().AtStart(), "g-earliest", nil); got != 80 {
		t.Errorf("earliest: handled %d, want 80", got)
	}
	if got := count(kgo.NewOffset().AfterMilli(mid.UnixMilli()), "g-time", nil); got != 30 {
		t.Errorf("from a time: handled %d, want 30", got)
	}
	if got := count(kgo.NewOffset().AtEnd(), "g-latest", func() { produce(t, addrs, topic, 7, 7) }); got != 7 {
		t.Errorf("latest: handled %d, want 7", got)
	}
}
