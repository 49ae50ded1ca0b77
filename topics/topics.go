package topics

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fanout-dev/fanout/config"
)

// Result is one topic Ensure saw: created or already there, with its
// partition count.
type Result struct {
	Topic      string
	Partitions int32
	Created    bool
}

// Ensure creates cfg's main topic with parts partitions if it is missing,
// then each sink's dead-letter and retry-tier topics with the main topic's
// partition count; rf is the replication factor of created topics (-1: the
// broker's default). It returns a Result per topic, in that order, up to
// the first error.
func Ensure(ctx context.Context, adm *kadm.Client, cfg *config.Config, parts int32, rf int16) ([]Result, error) {
	main, err := ensure(ctx, adm, cfg.Kafka.Topic, parts, rf)
	if err != nil {
		return nil, err
	}
	done := []Result{main}
	for _, s := range cfg.Sinks {
		for _, t := range append([]string{s.DLQTopic}, s.Retry.TierTopics...) {
			r, err := ensure(ctx, adm, t, main.Partitions, rf)
			if err != nil {
				return done, err
			}
			done = append(done, r)
		}
	}
	return done, nil
}

// ensure creates topic if missing.
func ensure(ctx context.Context, adm *kadm.Client, topic string, parts int32, rf int16) (Result, error) {
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return Result{}, fmt.Errorf("list topic %s: %w", topic, err)
	}
	if d, ok := details[topic]; ok && d.Err == nil {
		return Result{Topic: topic, Partitions: int32(len(d.Partitions))}, nil
	}
	resp, err := adm.CreateTopic(ctx, parts, rf, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return Result{}, fmt.Errorf("create topic %s: %w", topic, err)
	}
	return Result{Topic: topic, Partitions: parts, Created: true}, nil
}
