package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/config"
)

// validateCommand is the "fanout validate" command.
func validateCommand() *command {
	return &command{
		name: "validate", args: "-c FILE", short: "check a config file and print every problem",
		long: `Reads the config strictly and prints every problem with its path and line:
unknown keys, values of the wrong type, bad URLs, missing fields, header and
body templates that do not parse, schema files that do not load. Exit code 2 if
there is any problem.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			file := fs.String("c", "", "config `FILE` (required)")
			return func(_ context.Context, e *env, args []string) error {
				if *file == "" {
					return usagef("-c FILE is required")
				}
				cfg, err := config.Load(*file)
				var ce *config.Error
				if err != nil && !errors.As(err, &ce) {
					return usagef("%v", err)
				}
				if cfg == nil {
					return ce // not a YAML mapping: nothing further to check
				}
				if ce == nil {
					ce = &config.Error{File: *file}
				}
				// Beyond the file's shape: what building would reject.
				ce.Problems = append(ce.Problems, app.BuildProblems(cfg, ce.Problems, e.log)...)
				if len(ce.Problems) > 0 {
					return ce
				}
				fmt.Fprintf(e.stdout, "%s: ok (%d sinks: %s)\n", *file, len(cfg.Sinks), sinkNames(cfg))
				return nil
			}
		},
	}
}

func sinkNames(cfg *config.Config) string {
	var n []string
	for _, s := range cfg.Sinks {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}
