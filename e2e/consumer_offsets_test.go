package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/e2e/services"
)

// A group whose committed offsets fell below the log start (DeleteRecords,
// as retention does) resumes at the earliest retained record even with
// `start: latest`: every retained event is delivered, and fanout warns and
// counts the reset per partition.
func TestRetentionBelowCommitDeliversRetained(t *testing.T) {
	s := newScenario(t, "retained", 300)
	tg := newTarget(t, 0, nil)
	s.writeConfig(sinkSpec{name: "profile", target: tg, extra: "ordering: unordered\nstart: latest"})
	s.emitAll()

	adm := admin(t)
	ctx := context.Background()
	ends, err := adm.ListEndOffsets(ctx, s.topic)
	if err != nil || ends.Error() != nil {
		t.Fatalf("end offsets: %v %v", err, ends.Error())
	}
	// The group committed a quarter of each partition; then half of each
	// partition is deleted, so every commit is below its log start.
	commits, deleteTo := kadm.Offsets{}, kadm.Offsets{}
	lost := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset < 8 {
			t.Fatalf("partition %d holds only %d events", o.Partition, o.Offset)
		}
		commits.AddOffset(s.topic, o.Partition, o.Offset/4, -1)
		deleteTo.AddOffset(s.topic, o.Partition, o.Offset/2, -1)
		lost[o.Partition] = o.Offset/2 - o.Offset/4
	})
	group := s.prefix + "profile"
	if resp, err := adm.CommitOffsets(ctx, group, commits); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	if resp, err := adm.DeleteRecords(ctx, deleteTo); err != nil || resp.Error() != nil {
		t.Fatalf("delete records: %v %v", err, resp.Error())
	}
	var retained []string
	for _, r := range readTopic(t, s.topic) {
		retained = append(retained, header(r, "event-id"))
	}
	if len(retained) == 0 || len(retained) >= len(s.ids) {
		t.Fatalf("%d of %d events retained: the deletion did not take", len(retained), len(s.ids))
	}

	adminAddr := fmt.Sprintf("127.0.0.1:%d", services.FreePort(t))
	p := s.start("--admin", adminAddr)
	s.waitDone(2*time.Minute, map[string]*target{"profile": tg}, map[string][]string{"profile": retained})
	want := fmt.Sprintf(`fanout_offset_resets_total{sink="profile",tier="0"} %d`, len(lost))
	waitFor(t, 10*time.Second, "/metrics to say "+want, func() (bool, string) {
		m := httpGet(t, "http://"+adminAddr+"/metrics")
		return strings.Contains(m, want), m
	})
	p.term(t)
	checkAccepted(t, "profile", tg, retained, 0)
	out := p.out.String()
	for part, n := range lost {
		line := fmt.Sprintf("topic=%s partition=%d committed=", s.topic, part)
		if !strings.Contains(out, "committed offset is below the log start") || !strings.Contains(out, line) ||
			!strings.Contains(out, fmt.Sprintf("offsets_lost=%d", n)) {
			t.Errorf("no reset warning for partition %d (%d offsets lost) in the log:\n%s", part, n, tail(out, 40))
		}
	}
	t.Logf("%d of %d events retained, all delivered with start: latest; resets per partition %v", len(retained), len(s.ids), lost)
}

// Records of an aborted transaction never reach the API; records of
// committed ones do, and the group commits the end offset (past the
// aborted records and every transaction marker).
func TestAbortedTransactionsNotDelivered(t *testing.T) {
	s := newScenario(t, "txn", 90)
	tg := newTarget(t, 0, nil)
	s.writeConfig(sinkSpec{name: "profile", target: tg, extra: "ordering: unordered"})
	s.fanout("topics", "ensure", "-c", s.cfg, "--partitions", "3")

	codec := builtinCodec(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr), kgo.DefaultProduceTopic(s.topic),
		kgo.TransactionalID(s.topic+"-tx"), kgo.TransactionTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	// Three transactions of 30 events: committed, aborted, committed, so
	// every partition ends in a commit marker after an aborted stretch.
	var committed, aborted []string
	for tx := range 3 {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := tx * 30; i < (tx+1)*30; i++ {
			value, _, err := codec.EncodeJSON(ctx, "user.registered", s.docs[i])
			if err != nil {
				t.Fatal(err)
			}
			r := &kgo.Record{Key: []byte(s.ids[i]), Value: value, Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte(s.ids[i])}}}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		end := kgo.TryCommit
		if tx == 1 {
			end = kgo.TryAbort
			aborted = append(aborted, s.ids[tx*30:(tx+1)*30]...)
		} else {
			committed = append(committed, s.ids[tx*30:(tx+1)*30]...)
		}
		if err := cl.EndTransaction(ctx, end); err != nil {
			t.Fatal(err)
		}
	}

	p := s.start()
	waitFor(t, 2*time.Minute, "every committed event delivered", func() (bool, string) {
		got := tg.snapshot()
		n := 0
		for _, id := range committed {
			if got[id] > 0 {
				n++
			}
		}
		return n == len(committed), fmt.Sprintf("%d of %d", n, len(committed))
	})
	got := tg.snapshot()
	n := 0
	for _, id := range aborted {
		if got[id] > 0 {
			n++
		}
	}
	if n > 0 {
		t.Errorf("%d of %d events of the aborted transaction were delivered", n, len(aborted))
	}
	waitFor(t, time.Minute, "the group committed the end offsets", func() (bool, string) { return s.committedAtEnd("profile") })
	p.term(t)
	checkAccepted(t, "profile", tg, committed, 0)
}
