package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/status"
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
			load := configFlag(fs)
			sinks := fs.String("sinks", "", "comma-separated sink `NAMES` (default all)")
			output := fs.String("output", "text", "text (a table) or json (one object)")
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if *output != "text" && *output != "json" {
					return usagef("--output %q: want text or json", *output)
				}
				cfg, err := load()
				if err != nil {
					return err
				}
				names, err := app.SelectSinks(cfg, *sinks)
				if err != nil {
					return err
				}
				adm, err := adminClient(cfg)
				if err != nil {
					return err
				}
				defer adm.Close()
				rows, err := status.Sinks(ctx, adm, cfg, names)
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

func printStatus(w io.Writer, rows []status.Row) {
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
