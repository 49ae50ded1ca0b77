package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/fanout-dev/fanout/topics"
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
			load := configFlag(fs)
			parts := fs.Int("partitions", 3, "partitions of the main topic when it is created")
			rf := fs.Int("replication-factor", -1, "replication factor of created topics (-1: the broker's default)")
			return func(ctx context.Context, e *env, args []string) error {
				cfg, err := load()
				if err != nil {
					return err
				}
				adm, err := adminClient(cfg)
				if err != nil {
					return err
				}
				defer adm.Close()
				done, err := topics.Ensure(ctx, adm, cfg, int32(*parts), int16(*rf))
				for _, t := range done {
					verb := "exists"
					if t.Created {
						verb = "created"
					}
					fmt.Fprintf(e.stdout, "topic %s %s (%d partitions)\n", t.Topic, verb, t.Partitions)
				}
				return err
			}
		},
	}
}
