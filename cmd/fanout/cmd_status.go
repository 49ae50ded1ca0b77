package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/naming"
)

// statusCommand is the "fanout status" command.
func statusCommand() *command {
	return &command{
		name: "status", args: "-c FILE [--sinks a,b] [--output text|json]", short: "each sink's lag, retry-tier backlog and dead letters, as the broker sees them",
		long: `Asks the broker, for every sink (or those of --sinks): its consumer group on
the main topic (state, members, lag = records not yet committed), each retry
tier's group (records still owed in that tier) and its dead-letter topic
(records parked there). A group that has committed nothing on a partition is
counted from the partition's start. Reads only; safe while fanout runs.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			file := fs.String("c", "", "config `FILE` (required)")
			sinks := fs.String("sinks", "", "comma-separated sink `NAMES` (default all)")
			output := fs.String("output", "text", "text (a table) or json (one object)")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if *output != "text" && *output != "json" {
					return usagef("--output %q: want text or json", *output)
				}
				cfg, err := loadConfig(*file)
				if err != nil {
					return err
				}
				names, err := app.SelectSinks(cfg, *sinks)
				if err != nil {
					return err
				}
				cl, err := kgo.NewClient(app.KafkaOpts(cfg)...)
				if err != nil {
					return err
				}
				defer cl.Close()
				rows, err := sinkStatus(ctx, kadm.NewClient(cl), cfg, names)
				if err != nil {
					return fmt.Errorf("status (is Kafka at %s reachable?): %w", strings.Join(cfg.Kafka.Brokers, ","), err)
				}
				if *output == "json" {
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(map[string]any{"rows": rows})
				}
				printStatus(e.stdout, rows)
				return nil
			}
		},
	}
}

// statusRow is one topic of one sink: its main topic, a retry tier, or its
// dead-letter topic.
type statusRow struct {
	Sink       string       `json:"sink"`
	Role       string       `json:"role"` // main, retry.<n>, dlq
	Topic      string       `json:"topic"`
	Group      string       `json:"group,omitempty"` // none for the DLQ
	State      string       `json:"group_state,omitempty"`
	Members    int          `json:"members"`
	Lag        int64        `json:"lag"` // main and tiers: records not committed; dlq: records held
	Missing    bool         `json:"topic_missing,omitempty"`
	Partitions []statusPart `json:"partitions"`
}

type statusPart struct {
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	End       int64 `json:"end"`
	Committed int64 `json:"committed"` // -1: nothing committed
	Lag       int64 `json:"lag"`
}

func sinkStatus(ctx context.Context, adm *kadm.Client, cfg *config.Config, names []string) ([]statusRow, error) {
	var rows []statusRow
	for _, s := range cfg.Sinks {
		if len(names) > 0 && !slices.Contains(names, s.Name) {
			continue
		}
		rows = append(rows, statusRow{Sink: s.Name, Role: "main", Topic: cfg.Kafka.Topic, Group: naming.Group(cfg.Kafka.GroupPrefix, s.Name)})
		for n, t := range s.Retry.TierTopics {
			rows = append(rows, statusRow{Sink: s.Name, Role: fmt.Sprintf("retry.%d", n+1), Topic: t,
				Group: naming.TierGroup(cfg.Kafka.GroupPrefix, s.Name, n+1)})
		}
		rows = append(rows, statusRow{Sink: s.Name, Role: "dlq", Topic: s.DLQTopic})
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
			sp := statusPart{Partition: p, Start: start.Offset, End: end.Offset, Committed: -1}
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
		slices.SortFunc(r.Partitions, func(a, b statusPart) int { return int(a.Partition - b.Partition) })
	}
	return rows, nil
}

func printStatus(w io.Writer, rows []statusRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SINK\tROLE\tTOPIC\tGROUP\tSTATE\tMEMBERS\tLAG")
	for _, r := range rows {
		group, state, members, lag := r.Group, r.State, fmt.Sprint(r.Members), fmt.Sprint(r.Lag)
		if r.Group == "" {
			group, state, members, lag = "-", "-", "-", fmt.Sprintf("%d parked", r.Lag)
		} else if state == "" {
			state = "unknown"
		}
		if r.Missing {
			lag = "topic missing"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Sink, r.Role, r.Topic, group, state, members, lag)
	}
	tw.Flush()
}
