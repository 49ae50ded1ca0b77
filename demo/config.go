package demo

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fanout-dev/fanout/naming"
	"github.com/fanout-dev/fanout/sinktest"
)

// Topic is the worked example's main topic.
const Topic = "events"

// Config is the YAML a user would write for the worked example: one sink per
// API of apis (StartAPIs' order), on brokers.
func Config(brokers []string, apis []*API) string {
	tiers := "retry: {tiers: [2s, 4s]}"
	return sinktest.Config{
		Brokers: brokers, Topic: Topic,
		DrainTimeout: 5 * time.Second, RevokeTimeout: 5 * time.Second,
		Sinks: []sinktest.Sink{
			{Name: "profile", URL: apis[0].URL, Ordering: "key", MaxInFlight: 32, Extra: tiers,
				Headers: map[string]string{"X-Plan": "{{ .Record.plan }}"}},
			{Name: "email", URL: apis[1].URL, Ordering: "unordered", MaxInFlight: 32,
				Extra: "retry: {attempts: 3, backoff_base: 20ms, backoff_cap: 200ms, tiers: [2s, 4s]}"},
			// The analytics API takes arrays: a slow API, fewer requests.
			{Name: "analytics", URL: apis[2].URL, Ordering: "unordered", MaxInFlight: 64, BatchEvents: 16, Extra: tiers},
		},
	}.YAML()
}

// StartKafka starts the in-process Kafka (kfake) with Topic and, for each
// API's sink, its dead-letter topic and two retry tiers, 3 partitions each.
func StartKafka(apis []*API) (*kfake.Cluster, error) {
	topics := []string{Topic}
	for _, a := range apis {
		topics = append(topics, naming.DLQTopic(Topic, a.Name), naming.TierTopic(Topic, a.Name, 1), naming.TierTopic(Topic, a.Name, 2))
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics...))
	if err != nil {
		return nil, fmt.Errorf("start in-process kafka: %w", err)
	}
	return cluster, nil
}
