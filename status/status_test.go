package status

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/sinktest"
)

// Lag per row: the main group counts from its commit (or the partition's
// start where it committed nothing), a tier with nothing in it owes nothing,
// the DLQ counts what it holds, a topic the broker lacks is missing, and
// names leaves the other sinks out. (kfake answers GROUP_ID_NOT_FOUND for a
// group that never committed, where a real broker answers no offsets: every
// group commits something here; e2e runs status on a real broker.)
func TestSinksLagPerRow(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(2, "events", "events.profile.retry.1", "events.profile.dlq", "events.email.retry.1")) // no events.email.dlq
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg, err := config.Parse("status", []byte(sinktest.Config{
		Brokers: c.ListenAddrs(), Topic: "events", GroupPrefix: "st-",
		Sinks: []sinktest.Sink{
			{Name: "profile", URL: "http://127.0.0.1:1/p", Extra: "retry: {tiers: [1s]}"},
			{Name: "email", URL: "http://127.0.0.1:1/e", Extra: "retry: {tiers: [1s]}"},
		},
	}.YAML()), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	produce := func(topic string, p int32, n int) {
		for range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce("events", 0, 5)
	produce("events", 1, 3)
	produce("events.profile.dlq", 1, 4)
	adm := kadm.NewClient(cl)
	for group, at := range map[string]kadm.Offset{
		"st-profile":         {Topic: "events", Partition: 0, At: 2},
		"st-profile.retry.1": {Topic: "events.profile.retry.1", Partition: 0, At: 0},
		"st-email":           {Topic: "events", Partition: 0, At: 0},
		"st-email.retry.1":   {Topic: "events.email.retry.1", Partition: 0, At: 0},
	} {
		var commit kadm.Offsets
		at.LeaderEpoch = -1
		commit.Add(at)
		if _, err := adm.CommitOffsets(ctx, group, commit); err != nil {
			t.Fatal(err)
		}
	}

	rows, err := Sinks(ctx, adm, cfg, []string{"profile"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		role, topic, group string
		lag                int64
		missing            bool
	}{
		{"main", "events", "st-profile", 3 + 3, false}, // p0: 5-2 after the commit, p1: 3 from the start
		{"retry.1", "events.profile.retry.1", "st-profile.retry.1", 0, false},
		{"dlq", "events.profile.dlq", "", 4, false},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d (profile only): %+v", len(rows), len(want), rows)
	}
	for i, w := range want {
		r := rows[i]
		if r.Sink != "profile" || r.Role != w.role || r.Topic != w.topic || r.Group != w.group || r.Lag != w.lag || r.Missing != w.missing {
			t.Errorf("row %d: %+v, want %+v", i, r, w)
		}
	}
	if p := rows[0].Partitions; len(p) != 2 || p[0] != (Part{Partition: 0, Start: 0, End: 5, Committed: 2, Lag: 3}) ||
		p[1] != (Part{Partition: 1, Start: 0, End: 3, Committed: -1, Lag: 3}) {
		t.Errorf("main partitions %+v", p)
	}

	all, err := Sinks(ctx, adm, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 || all[3].Sink != "email" || all[3].Lag != 5+3 || all[4].Role != "retry.1" || all[4].Lag != 0 ||
		all[5].Role != "dlq" || !all[5].Missing || all[5].Partitions != nil {
		t.Errorf("all sinks: %+v", all)
	}
}
