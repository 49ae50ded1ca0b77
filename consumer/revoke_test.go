package consumer

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A revoke returns within RevokeTimeout although every worker is busy with a
// partition that stays assigned: the revoked partition's records waiting in
// the ready queue are finished as not done at once (uncommitted), instead of
// waiting for a worker that never comes. The drain on shutdown is bounded the
// same way.
func TestRevokeNotBlockedByOtherPartitions(t *testing.T) {
	const topic = "t-revoke-busy"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	addrs := cluster.ListenAddrs()

	// Every record holds its worker until its context ends (revoke or drain
	// deadline), then reports Done, as a request that completes when cut off.
	h := HandlerFunc(func(ctx context.Context, r *kgo.Record) Outcome {
		<-ctx.Done()
		return Outcome{Verdict: Done}
	})
	cfg := cfgFor(topic, Unordered)
	cfg.MaxInFlight = 2
	cfg.RevokeTimeout = time.Second
	cfg.DrainTimeout = 2 * time.Second
	c, err := New(cfg, h, testLogger(), kgo.SeedBrokers(addrs...), kgo.RebalanceTimeout(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	done := make(chan struct{})
	go func() { runErr = c.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
		}
	})

	pcl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	next := map[int32]int{}
	to := func(p int32, n int) {
		t.Helper()
		for range n {
			r := &kgo.Record{Partition: p, Value: []byte(strconv.Itoa(next[p]))}
			next[p]++
			if err := pcl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitStats := func(what string, ok func(Stats) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok(c.Stats()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not reached; stats %+v", what, c.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Both workers busy, one per partition; then the ready queue holds
	// p0×3, p1×3, p0×3: whichever partition is revoked, records of the one
	// that stays sit in front of some of its own.
	to(0, 1)
	waitStats("p0's first record in flight", func(s Stats) bool { return s.InFlight == 1 })
	to(1, 1)
	waitStats("p1's first record in flight", func(s Stats) bool { return s.InFlight == 2 })
	to(0, 3)
	waitStats("5 buffered", func(s Stats) bool { return s.Buffered == 5 })
	to(1, 3)
	waitStats("8 buffered", func(s Stats) bool { return s.Buffered == 8 })
	to(0, 3)
	waitStats("11 buffered", func(s Stats) bool { return s.Buffered == 11 })

	// A second member joins: the cooperative balancer moves one partition
	// to it, which it gets only once the first member's revoke returned.
	assigned := make(chan int32, 4)
	joined := time.Now()
	b, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumerGroup(cfg.Group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			for _, p := range m[topic] {
				assigned <- p
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithCancel(context.Background())
	bdone := make(chan struct{})
	go func() {
		defer close(bdone)
		for bctx.Err() == nil {
			b.PollFetches(bctx)
		}
	}()
	defer func() { bcancel(); <-bdone; b.Close() }()

	var moved int32
	select {
	case moved = <-assigned:
	case <-time.After(20 * time.Second):
		t.Fatalf("the second member got no partition within 20s (revoke_timeout 1s): the revoke is blocked; stats %+v", c.Stats())
	}
	t.Logf("partition %d moved %s after the second member joined (revoke_timeout %s)", moved, time.Since(joined).Round(time.Millisecond), cfg.RevokeTimeout)

	// The moved partition committed its first record (done when cut off)
	// and nothing queued behind it: its records were finished as not done
	// at the revoke, not handled by the worker it freed.
	com, err := adminFor(t, addrs).FetchOffsets(context.Background(), cfg.Group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := com.Lookup(topic, moved); !ok || o.At != 1 {
		t.Fatalf("moved partition %d: committed %+v (found %v), want 1: queued records must stay uncommitted", moved, o, ok)
	}

	// Drain: the partition that stayed has two records in flight (the
	// worker freed by the revoke took its next one) and its queued ones;
	// Run returns once the in-flight ones are cut off at the drain
	// deadline, the queued ones uncommitted.
	stopped := time.Now()
	cancel()
	select {
	case <-done:
		if runErr != nil {
			t.Fatalf("Run: %v", runErr)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return within 20s of its context ending (drain_timeout %s)", cfg.DrainTimeout)
	}
	t.Logf("drain took %s (drain_timeout %s)", time.Since(stopped).Round(time.Millisecond), cfg.DrainTimeout)
	kept := 1 - moved
	com, err = adminFor(t, addrs).FetchOffsets(context.Background(), cfg.Group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := com.Lookup(topic, kept); !ok || o.At != 2 {
		t.Fatalf("kept partition %d: committed %+v (found %v), want 2", kept, o, ok)
	}
	// Queued and never started: 3+3 of p0 and 3 of p1, less the one the
	// freed worker took.
	if s := c.Stats(); s.Abandoned != 8 || s.Buffered != 0 {
		t.Fatalf("stats %+v: want 8 queued records abandoned and nothing buffered", s)
	}
}

// No rebalance callback runs between a poll returning records and their
// accept (BlockRebalanceOnPoll): a second member joins while the first
// member's records sit between PollFetches and accept, and no revoke begins
// until they are accepted. Without the gate, a revoke (and a reassignment)
// could run there and bind the records to a later assignment.
func TestNoRevokeBetweenPollAndAccept(t *testing.T) {
	const topic = "t-poll-window"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	addrs := cluster.ListenAddrs()
	produce(t, addrs, topic, 200, 20)
	cfg := cfgFor(topic, Unordered)
	c, err := New(cfg, HandlerFunc(func(context.Context, *kgo.Record) Outcome { return Outcome{Verdict: Done} }), testLogger(),
		kgo.SeedBrokers(addrs...), kgo.HeartbeatInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var before map[int32]*partition
	snapshot := func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		before = map[int32]*partition{}
		for id, p := range c.parts {
			before[id] = p
		}
	}
	// revoking reports whether a revoke began (or ended) since snapshot.
	revoking := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for id, p := range before {
			if p.revoked.Load() || c.parts[id] != p {
				return true
			}
		}
		return false
	}
	var b *kgo.Client
	hooked := make(chan bool, 1)
	var once bool
	c.afterPoll = func() {
		if once {
			return
		}
		once = true
		snapshot()
		// A second member joins now; give the group 5s to start revoking
		// from the first (its heartbeat is every 100ms).
		var err error
		b, err = kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumerGroup(cfg.Group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit())
		if err != nil {
			t.Error(err)
			hooked <- false
			return
		}
		go func() {
			for {
				if fs := b.PollFetches(context.Background()); fs.IsClientClosed() {
					return
				}
			}
		}()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if revoking() {
				hooked <- true
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		hooked <- false
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if b != nil {
			b.Close()
		}
	}()
	select {
	case revoked := <-hooked:
		if revoked {
			t.Fatal("a revoke began while polled records were not accepted yet: the poll/rebalance window is open")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no poll returned records")
	}
	// Once the records are accepted the rebalance goes ahead: the second
	// member gets a partition and the first commits everything it kept.
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.parts)
		c.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first member still has %d partitions after the rebalance", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
