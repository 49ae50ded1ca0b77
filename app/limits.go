package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/consumer"
)

// TopicLimits asks the broker for the topics' max.message.bytes: the
// topic's own setting, or the broker's message.max.bytes when it has none
// (DescribeTopicConfigs returns the value in effect). A topic whose limit
// cannot be read is left out: franz-go's default sizing applies to it, and a
// park it refuses becomes a stub letter.
func TopicLimits(ctx context.Context, adm *kadm.Client, topics []string, log *slog.Logger) map[string]int32 {
	out := map[string]int32{}
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		log.Warn("could not read the topics' max.message.bytes; parks larger than 1,000,012 bytes will be stub letters", "err", err)
		return out
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			log.Warn("could not read a topic's max.message.bytes", "topic", rc.Name, "err", rc.Err)
			continue
		}
		for _, c := range rc.Configs {
			if c.Key != "max.message.bytes" {
				continue
			}
			if n, err := strconv.ParseInt(c.MaybeValue(), 10, 32); err == nil && n > 0 {
				out[rc.Name] = int32(n)
			}
		}
	}
	return out
}

// FitEventBytes checks each selected sink's max_event_bytes against the
// topics its records are parked in (DLQ, retry tiers): a record fanout tries
// to deliver must fit there with the fanout-* headers a park adds
// (consumer.ParkOverhead), so that a failure parks it whole. Where it does
// not, max_event_bytes is lowered to fit, with a warning: records above it
// are then dead-lettered as too-large (a stub letter if even that does not
// fit), which is what the setting promises, instead of being delivered and,
// on a failure, parked as a stub. A park topic too small for any letter
// fails the start. It also warns when the main topic takes records larger
// than a park topic can hold in full: those records, if they fail, are
// parked as stub letters.
func FitEventBytes(cfg *config.Config, names []string, limits map[string]int32, log *slog.Logger) error {
	main, hasMain := limits[cfg.Kafka.Topic]
	for i := range cfg.Sinks {
		s := &cfg.Sinks[i]
		if len(names) > 0 && !slices.Contains(names, s.Name) {
			continue
		}
		over := consumer.ParkOverhead(cfg.Kafka.Topic, s.Name)
		for _, t := range append([]string{s.DLQTopic}, s.Retry.TierTopics...) {
			limit, ok := limits[t]
			if !ok {
				continue
			}
			fit := int(limit) - over
			if fit < 1024 {
				return fmt.Errorf("sink %s: topic %s has max.message.bytes %d, too small for a parked record (fanout adds up to %d bytes of headers to it); raise it", s.Name, t, limit, over)
			}
			if s.MaxEventBytes > fit {
				lvl := slog.LevelWarn
				if s.MaxEventBytes == 1<<20 {
					lvl = slog.LevelInfo // the default, on a broker with the default limit
				}
				log.Log(context.Background(), lvl, "max_event_bytes lowered to what the park topic can hold with fanout's headers",
					"sink", s.Name, "setting", "max_event_bytes", "configured", s.MaxEventBytes, "topic", t,
					"max_message_bytes", limit, "park_overhead", over, "max_event_bytes_now", fit)
				s.MaxEventBytes = fit
			}
			if hasMain && int(main)+over > int(limit) {
				log.Info("the main topic takes records larger than this park topic holds in full: such a record, if it fails, is parked as a stub letter (value dropped)",
					"sink", s.Name, "topic", t, "max_message_bytes", limit, "main_topic", cfg.Kafka.Topic, "main_max_message_bytes", main,
					"full_letters_need", int(main)+over)
			}
		}
	}
	return nil
}
