package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/naming"
)

// CheckTopics fails fast, naming them, when topics the sinks read or park into
// are missing: running without them would stall at the first park. It
// returns their max.message.bytes (see TopicLimits).
func CheckTopics(ctx context.Context, cfg *config.Config, names []string, log *slog.Logger) (map[string]int32, error) {
	want := []string{cfg.Kafka.Topic}
	for _, s := range cfg.Sinks {
		if len(names) == 0 || slices.Contains(names, s.Name) {
			want = append(append(want, s.DLQTopic), s.Retry.TierTopics...)
		}
	}
	cl, err := kgo.NewClient(KafkaOpts(cfg)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	// A topic created a moment ago can be unknown to the broker's metadata
	// for a little while: look again for up to 15s before calling it missing.
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(15 * time.Second)
	var missing []string
	for {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		details, err := adm.ListTopics(tctx, want...)
		cancel()
		if errors.Is(err, kerr.TopicAuthorizationFailed) {
			return nil, deniedTopic(ctx, cfg, adm, want, err)
		}
		if err != nil {
			if err := kafkaError(cfg, err); consumer.Denied(err) {
				return nil, err
			}
			return nil, fmt.Errorf("check topics (is Kafka at %s reachable?): %w", strings.Join(cfg.Kafka.Brokers, ","), kafkaError(cfg, err))
		}
		missing = missing[:0]
		for _, t := range want {
			if d, ok := details[t]; ok && errors.Is(d.Err, kerr.TopicAuthorizationFailed) {
				return nil, deniedTopic(ctx, cfg, adm, []string{t}, d.Err)
			}
			if d, ok := details[t]; !ok || d.Err != nil {
				missing = append(missing, t)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing topics %s: create them with fanout topics ensure -c FILE", strings.Join(missing, ", "))
	}
	var groups []string
	for _, s := range cfg.Sinks {
		if len(names) == 0 || slices.Contains(names, s.Name) {
			groups = append(groups, naming.Group(cfg.Kafka.GroupPrefix, s.Name))
			for n := range s.Retry.TierTopics {
				groups = append(groups, naming.TierGroup(cfg.Kafka.GroupPrefix, s.Name, n+1))
			}
		}
	}
	if err := checkGroupAccess(ctx, cfg, adm, groups); err != nil {
		return nil, err
	}
	need := map[string][]kadm.ACLOperation{cfg.Kafka.Topic: {kadm.OpRead}}
	for _, s := range cfg.Sinks {
		if len(names) == 0 || slices.Contains(names, s.Name) {
			need[s.DLQTopic] = append(need[s.DLQTopic], kadm.OpWrite)
			for _, t := range s.Retry.TierTopics {
				need[t] = append(need[t], kadm.OpRead, kadm.OpWrite)
			}
		}
	}
	if err := checkTopicOps(ctx, cfg, cl, need); err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return TopicLimits(tctx, adm, want, log), nil
}
