package services

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKafkaBroker checks that the harness gives tests a real broker that
// keeps records and group offsets across a clean restart and a crash.
func TestKafkaBroker(t *testing.T) {
	start := time.Now()
	k := NewKafka(t, KafkaOptions{})
	t.Logf("startup: %.1fs to a ready Kafka %s broker", time.Since(start).Seconds(), k.Version())

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	adm := newKafkaAdmin(t, k)
	topic := fmt.Sprintf("kafka-broker-test-%d", time.Now().UnixNano())
	group := topic + "-group"

	if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}

	const n = 1000
	produceValues(t, ctx, k, topic, 0, n)
	ends := endOffsets(t, ctx, adm, topic)
	if len(ends) != 3 || sumOffsets(ends) != n {
		t.Fatalf("end offsets %v: want 3 partitions holding %d records", ends, n)
	}
	for p, o := range ends {
		if o == 0 {
			t.Errorf("partition %d got no records (end offsets %v): keys should spread", p, ends)
		}
	}

	got := consumeAndCommit(t, ctx, k, topic, group, n)
	wantValues(t, "first consume", got, 0, n)
	if c := committedOffsets(t, ctx, adm, group, topic); !maps.Equal(c, ends) {
		t.Fatalf("group %s committed %v; want the end offsets %v", group, c, ends)
	}

	// A clean restart: SIGTERM, controlled shutdown, same ports and data.
	restart := time.Now()
	if err := k.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Logf("restart: %.1fs from SIGTERM to a ready broker", time.Since(restart).Seconds())
	checkSurvived(t, ctx, k, adm, topic, group, ends, n)

	// Producing works again, and the group resumes after its commit: it sees
	// exactly the new records, none of the first n.
	produceValues(t, ctx, k, topic, n, 10)
	wantValues(t, "resumed group", consumeAndCommit(t, ctx, k, topic, group, 10), n, 10)
	ends = endOffsets(t, ctx, adm, topic)
	if sumOffsets(ends) != n+10 {
		t.Fatalf("end offsets %v after producing 10 more: want %d records", ends, n+10)
	}

	// A crash: SIGKILL, then recovery from unflushed segments.
	if err := k.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	restart = time.Now()
	if err := k.Restart(); err != nil {
		t.Fatalf("restart after kill: %v", err)
	}
	t.Logf("restart after SIGKILL: %.1fs to a ready broker", time.Since(restart).Seconds())
	checkSurvived(t, ctx, k, adm, topic, group, ends, n+10)

	if err := k.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := k.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}

// checkSurvived checks that, after a restart, topic still ends at ends, group
// still has them committed, and a new group reads back all n values.
func checkSurvived(t *testing.T, ctx context.Context, k *Kafka, adm *kadm.Client, topic, group string, ends map[int32]int64, n int) {
	t.Helper()
	if got := endOffsets(t, ctx, adm, topic); !maps.Equal(got, ends) {
		t.Fatalf("after restart end offsets are %v; want %v", got, ends)
	}
	if c := committedOffsets(t, ctx, adm, group, topic); !maps.Equal(c, ends) {
		t.Fatalf("after restart group %s has committed %v; want %v", group, c, ends)
	}
	reread := fmt.Sprintf("%s-reread-%d", topic, time.Now().UnixNano())
	wantValues(t, "re-read after restart", consumeAndCommit(t, ctx, k, topic, reread, n), 0, n)
}

func newKafkaAdmin(t *testing.T, k *Kafka) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addr))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// produceValues writes values "value-<i>" for i in [from, from+n), keyed so
// they spread over the partitions, and waits for acks from all in-sync replicas.
func produceValues(t *testing.T, ctx context.Context, k *Kafka, topic string, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(k.Addr),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, 0, n)
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "key-%d", i), Value: fmt.Appendf(nil, "value-%d", i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records to %s: %v", n, topic, err)
	}
}

// consumeAndCommit joins group, polls until it has n records, commits what it
// polled, and leaves. It returns how often each value was seen.
func consumeAndCommit(t *testing.T, ctx context.Context, k *Kafka, topic, group string, n int) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(k.Addr),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	seen, total := map[string]int{}, 0
	for total < n {
		fs := cl.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatalf("group %s: %d of %d records before %v", group, total, n, pctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("group %s: fetch %s/%d: %v", group, topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			total++
		})
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("group %s: commit: %v", group, err)
	}
	return seen
}

// wantValues checks that got holds each of "value-<from>".."value-<from+n-1>"
// exactly once, and nothing else.
func wantValues(t *testing.T, what string, got map[string]int, from, n int) {
	t.Helper()
	var bad []string
	for i := from; i < from+n; i++ {
		v := fmt.Sprintf("value-%d", i)
		if got[v] != 1 {
			bad = append(bad, fmt.Sprintf("%s×%d", v, got[v]))
		}
	}
	for v := range got {
		var i int
		if _, err := fmt.Sscanf(v, "value-%d", &i); err != nil || i < from || i >= from+n {
			bad = append(bad, "unexpected "+v)
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		t.Fatalf("%s: %d records, %d wrong, first: %v", what, len(got), len(bad), bad[:min(len(bad), 5)])
	}
}

func endOffsets(t *testing.T, ctx context.Context, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	lo, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func committedOffsets(t *testing.T, ctx context.Context, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	offs, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		t.Fatalf("fetch offsets of group %s: %v", group, err)
	}
	out := map[int32]int64{}
	for p, o := range offs[topic] {
		out[p] = o.At
	}
	return out
}

func sumOffsets(m map[int32]int64) int64 {
	var s int64
	for _, o := range m {
		s += o
	}
	return s
}
