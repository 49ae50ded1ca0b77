package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"strings"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/sink"
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
				if _, err := app.BuildCodec(cfg); err != nil && cfg.Schemas.RegistryURL == "" {
					ce.Problems = append(ce.Problems, config.Problem{Path: "schemas", Line: cfg.Line("schemas"), Msg: err.Error()})
				}
				ce.Problems = append(ce.Problems, app.TypeProblems(context.Background(), cfg, nil, false, e.log)...)
				for i, s := range cfg.Sinks {
					if s.Name == "" || s.URL == "" {
						continue // already reported
					}
					p := fmt.Sprintf("sinks[%d]", i)
					dup := hasProblemUnder(ce, p)
					// Every template that does not parse, each at its own path;
					// then sink.New with those replaced by one that parses, for
					// its first other problem.
					sc := app.SinkConfig(s)
					for _, te := range sink.TemplateErrors(sc) {
						path := p + "." + te.Field
						ce.Problems = append(ce.Problems, config.Problem{Path: path, Line: cfg.Line(path), Msg: te.Err.Error()})
						if te.Field == "body" {
							sc.Body = placeholderTemplate
						} else {
							sc.Headers = maps.Clone(sc.Headers)
							sc.Headers[strings.TrimPrefix(te.Field, "headers.")] = placeholderTemplate
						}
					}
					if _, err := sink.New(sc, e.log); err != nil && !dup {
						path, msg := p, err.Error()
						if se, ok := errors.AsType[*sink.ConfigError](err); ok {
							path, msg = p+"."+se.Field, se.Msg // the field's own path and line
						}
						ce.Problems = append(ce.Problems, config.Problem{Path: path, Line: cfg.LineNear(path), Msg: msg})
					}
				}
				if len(ce.Problems) > 0 {
					return ce
				}
				fmt.Fprintf(e.stdout, "%s: ok (%d sinks: %s)\n", *file, len(cfg.Sinks), sinkNames(cfg))
				return nil
			}
		},
	}
}

// placeholderTemplate stands in for a template already reported as broken.
const placeholderTemplate = "{{ .ID }}"

func hasProblemUnder(ce *config.Error, prefix string) bool {
	for _, p := range ce.Problems {
		if strings.HasPrefix(p.Path, prefix+".") {
			return true
		}
	}
	return false
}

func sinkNames(cfg *config.Config) string {
	var n []string
	for _, s := range cfg.Sinks {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}
