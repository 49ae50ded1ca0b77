package consumer

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Retention overtakes a partition while it is being consumed (its fetch
// position falls below the log start while the partition is paused): the
// consumer resumes at the log start, delivers every retained record, and
// warns and counts the reset with how many offsets were lost.
func TestOutOfRangeWhileConsuming(t *testing.T) {
	const topic = "t-oor"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	addrs := cluster.ListenAddrs()
	produce(t, addrs, topic, 10, 1)

	release := make(chan struct{})
	var mu sync.Mutex
	var got []int64
	h := HandlerFunc(func(ctx context.Context, r *kgo.Record) Outcome {
		if r.Offset == 0 {
			select {
			case <-release:
			case <-ctx.Done():
				return Outcome{Verdict: Abandon}
			}
		}
		mu.Lock()
		got = append(got, r.Offset)
		mu.Unlock()
		return Outcome{Verdict: Done}
	})
	cfg := cfgFor(topic, ByPartition)
	cfg.MaxInFlight, cfg.MaxBuffered = 1, 1
	logs := &lockedBuffer{}
	c, err := New(cfg, h, slog.New(slog.NewTextHandler(logs, nil)), kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for s := c.Stats(); s.Buffered != 10 || s.Paused != 1; s = c.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("the 10 records are not buffered with the partition paused: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Fetch position 10, paused. Produce 90 more and delete up to 60: the
	// position is now below the log start.
	produce(t, addrs, topic, 90, 1)
	adm := adminFor(t, addrs)
	var to kadm.Offsets
	to.AddOffset(topic, 0, 60, -1)
	if resp, err := adm.DeleteRecords(context.Background(), to); err != nil || resp.Error() != nil {
		t.Fatalf("delete records: %v %v", err, resp.Error())
	}
	close(release)
	waitCommitted(t, addrs, cfg.Group, topic)

	mu.Lock()
	defer mu.Unlock()
	var want []int64
	for o := range int64(100) {
		if o < 10 || o >= 60 {
			want = append(want, o)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("handled offsets %v, want 0..9 and 60..99", got)
	}
	if s := c.Stats(); s.OffsetResets != 1 {
		t.Errorf("OffsetResets = %d, want 1", s.OffsetResets)
	}
	if l := logs.String(); !strings.Contains(l, "fetch offset fell below the log start while consuming") ||
		!strings.Contains(l, "partition=0 fetch_offset=10 log_start=60 offsets_lost=50") {
		t.Errorf("no reset warning with the lost offsets in the log:\n%s", l)
	}
}
