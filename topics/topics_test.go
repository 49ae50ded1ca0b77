package topics

import (
	"context"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/sinktest"
)

// Ensure keeps what exists, creates the rest with the main topic's
// partition count, and on a second run finds everything there.
func TestEnsureCreatesWhatIsMissing(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "events", "events.email.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg, err := config.Parse("topics", []byte(sinktest.Config{
		Brokers: c.ListenAddrs(), Topic: "events",
		Sinks: []sinktest.Sink{
			{Name: "profile", URL: "http://127.0.0.1:1/p", Extra: "retry: {tiers: [1s]}"},
			{Name: "email", URL: "http://127.0.0.1:1/e", Extra: "retry: {tiers: [1s, 2s]}"},
		},
	}.YAML()), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	// A client per run, as each fanout topics ensure is a process: kgo
	// answers a repeated metadata request from its cache for a while.
	admin := func() *kadm.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return kadm.NewClient(cl)
	}
	ctx := context.Background()

	got, err := Ensure(ctx, admin(), cfg, 5, -1) // 5 only for a main topic it creates
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Topic: "events", Partitions: 2},
		{Topic: "events.profile.dlq", Partitions: 2, Created: true},
		{Topic: "events.profile.retry.1", Partitions: 2, Created: true},
		{Topic: "events.email.dlq", Partitions: 2},
		{Topic: "events.email.retry.1", Partitions: 2, Created: true},
		{Topic: "events.email.retry.2", Partitions: 2, Created: true},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("first Ensure:\n got %+v\nwant %+v", got, want)
	}
	got, err = Ensure(ctx, admin(), cfg, 5, -1)
	for i := range want {
		want[i].Created = false
	}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("second Ensure: %+v, %v; want every topic there", got, err)
	}
}
