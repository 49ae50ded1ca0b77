package main

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// topics ensure prints one line per topic, in order: the main topic, then
// each sink's DLQ and tiers with the main topic's partition count.
func TestTopicsEnsurePrintsEachTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := writeFile(t, `kafka: {brokers: [`+c.ListenAddrs()[0]+`], topic: events}
sinks:
  - {name: profile, url: "http://127.0.0.1:8081/users", retry: {tiers: [1s]}}
`)
	code, out, stderr := runCLI(t, "topics", "ensure", "-c", cfg, "--partitions", "5")
	want := "topic events exists (2 partitions)\n" +
		"topic events.profile.dlq created (2 partitions)\n" +
		"topic events.profile.retry.1 created (2 partitions)\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, stderr %q, out:\n%s\nwant:\n%s", code, stderr, out, want)
	}
}
