package status

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/naming"
)

// Row is one topic of one sink: its main topic, a retry tier, or its
// dead-letter topic.
type Row struct {
	Sink       string `json:"sink"`
	Role       string `json:"role"` // main, retry.<n>, dlq
	Topic      string `json:"topic"`
	Group      string `json:"group,omitempty"` // none for the DLQ
	State      string `json:"group_state,omitempty"`
	Members    int    `json:"members"`
	Lag        int64  `json:"lag"` // main and tiers: records not committed; dlq: records held
	Missing    bool   `json:"topic_missing,omitempty"`
	Partitions []Part `json:"partitions"`
}

// Part is one partition of a Row's topic.
type Part struct {
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	End       int64 `json:"end"`
	Committed int64 `json:"committed"` // -1: nothing committed
	Lag       int64 `json:"lag"`
}

// Sinks returns the rows of the sinks of cfg named in names (all if empty),
// in config order: main, each tier, dlq. A group that has committed nothing
// on a partition is counted from the partition's start; a topic the broker
// does not have is Missing.
func Sinks(ctx context.Context, adm *kadm.Client, cfg *config.Config, names []string) ([]Row, error) {
	var rows []Row
	for _, s := range cfg.Sinks {
		if len(names) > 0 && !slices.Contains(names, s.Name) {
			continue
		}
		rows = append(rows, Row{Sink: s.Name, Role: "main", Topic: cfg.Kafka.Topic, Group: naming.Group(cfg.Kafka.GroupPrefix, s.Name)})
		for n, t := range s.Retry.TierTopics {
			rows = append(rows, Row{Sink: s.Name, Role: fmt.Sprintf("retry.%d", n+1), Topic: t,
				Group: naming.TierGroup(cfg.Kafka.GroupPrefix, s.Name, n+1)})
		}
		rows = append(rows, Row{Sink: s.Name, Role: "dlq", Topic: s.DLQTopic})
	}
	var topics, groups []string
	for _, r := range rows {
		if !slices.Contains(topics, r.Topic) {
			topics = append(topics, r.Topic)
		}
		if r.Group != "" {
			groups = append(groups, r.Group)
		}
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	described, err := adm.DescribeGroups(ctx, groups...)
	if err != nil {
		return nil, err
	}
	fetched := adm.FetchManyOffsets(ctx, groups...) // one request per coordinator, not per group
	for i := range rows {
		r := &rows[i]
		var committed kadm.OffsetResponses
		if r.Group != "" {
			if g, ok := described[r.Group]; ok && g.Err == nil {
				r.State, r.Members = g.State, len(g.Members)
			}
			f := fetched[r.Group]
			if f.Err != nil {
				return nil, fmt.Errorf("group %s: %w", r.Group, f.Err)
			}
			committed = f.Fetched
		}
		tends, ok := ends[r.Topic]
		if !ok || len(tends) == 0 {
			r.Missing = true
			continue
		}
		for p, end := range tends {
			if end.Err != nil {
				r.Missing = true
				continue
			}
			start, _ := starts.Lookup(r.Topic, p)
			sp := Part{Partition: p, Start: start.Offset, End: end.Offset, Committed: -1}
			from := start.Offset
			if r.Group != "" {
				if c, ok := committed.Lookup(r.Topic, p); ok && c.Err == nil && c.At >= 0 {
					sp.Committed, from = c.At, max(c.At, start.Offset)
				}
			}
			sp.Lag = max(0, end.Offset-from)
			r.Lag += sp.Lag
			r.Partitions = append(r.Partitions, sp)
		}
		slices.SortFunc(r.Partitions, func(a, b Part) int { return int(a.Partition - b.Partition) })
	}
	return rows, nil
}
