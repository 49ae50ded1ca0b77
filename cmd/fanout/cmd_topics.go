package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/fanout-dev/fanout/app"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// topicsEnsureCommand is the "fanout topics ensure" command.
func topicsEnsureCommand() *command {
	return &command{
		name: "topics ensure", args: "-c FILE [--partitions N] [--replication-factor R]", short: "create the topic and each sink's retry-tier and dead-letter topics if missing",
		long: `Creates kafka.topic and, for every sink, its retry-tier topics
(<topic>.<sink>.retry.<n> unless retry.tier_topics is set) and its dead-letter
topic (<topic>.<sink>.dlq unless dlq_topic is set) when they do not exist.
Existing topics are left as they are. Tier and dead-letter topics get the main
topic's partition count.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			file := fs.String("c", "", "config `FILE` (required)")
			parts := fs.Int("partitions", 3, "partitions of the main topic when it is created")
			rf := fs.Int("replication-factor", -1, "replication factor of created topics (-1: the broker's default)")
			return func(ctx context.Context, e *env, args []string) error {
				cfg, err := loadConfig(*file)
				if err != nil {
					return err
				}
				cl, err := kgo.NewClient(app.KafkaOpts(cfg)...)
				if err != nil {
					return err
				}
				defer cl.Close()
				adm := kadm.NewClient(cl)
				n, err := ensureTopic(ctx, adm, cfg.Kafka.Topic, int32(*parts), int16(*rf), e)
				if err != nil {
					return err
				}
				for _, s := range cfg.Sinks {
					for _, t := range append([]string{s.DLQTopic}, s.Retry.TierTopics...) {
						if _, err := ensureTopic(ctx, adm, t, n, int16(*rf), e); err != nil {
							return err
						}
					}
				}
				return nil
			}
		},
	}
}

// ensureTopic creates topic if missing and returns its partition count.
func ensureTopic(ctx context.Context, adm *kadm.Client, topic string, parts int32, rf int16, e *env) (int32, error) {
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("list topic %s: %w", topic, err)
	}
	if d, ok := details[topic]; ok && d.Err == nil {
		fmt.Fprintf(e.stdout, "topic %s exists (%d partitions)\n", topic, len(d.Partitions))
		return int32(len(d.Partitions)), nil
	}
	resp, err := adm.CreateTopic(ctx, parts, rf, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return 0, fmt.Errorf("create topic %s: %w", topic, err)
	}
	fmt.Fprintf(e.stdout, "topic %s created (%d partitions)\n", topic, parts)
	return parts, nil
}
