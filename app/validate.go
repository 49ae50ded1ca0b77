package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/sink"
)

// BuildProblems are what building cfg's parts would reject beyond the
// file's shape (have: the problems config.Load found), as fanout validate
// reports them: local schemas that do not load, sink types no event can
// have (offline: TypeProblems), every sink template that does not parse,
// each at its own path, and the first other problem sink.New finds in a
// sink with no problem below its path yet.
func BuildProblems(cfg *config.Config, have []config.Problem, log *slog.Logger) []config.Problem {
	ps := slices.Clone(have)
	if _, err := BuildCodec(cfg); err != nil && cfg.Schemas.RegistryURL == "" {
		ps = append(ps, config.Problem{Path: "schemas", Line: cfg.Line("schemas"), Msg: err.Error()})
	}
	ps = append(ps, TypeProblems(context.Background(), cfg, nil, false, log)...)
	for i, s := range cfg.Sinks {
		if s.Name == "" || s.URL == "" {
			continue // already reported
		}
		p := fmt.Sprintf("sinks[%d]", i)
		dup := hasProblemUnder(ps, p)
		// Every template that does not parse, each at its own path;
		// then sink.New with those replaced by one that parses, for
		// its first other problem.
		sc := sinkConfig(s)
		for _, te := range sink.TemplateErrors(sc) {
			path := p + "." + te.Field
			ps = append(ps, config.Problem{Path: path, Line: cfg.Line(path), Msg: te.Err.Error()})
			if te.Field == "body" {
				sc.Body = placeholderTemplate
			} else {
				sc.Headers = maps.Clone(sc.Headers)
				sc.Headers[strings.TrimPrefix(te.Field, "headers.")] = placeholderTemplate
			}
		}
		if _, err := sink.New(sc, log); err != nil && !dup {
			path, msg := p, err.Error()
			if se, ok := errors.AsType[*sink.ConfigError](err); ok {
				path, msg = p+"."+se.Field, se.Msg // the field's own path and line
			}
			ps = append(ps, config.Problem{Path: path, Line: cfg.LineNear(path), Msg: msg})
		}
	}
	return ps[len(have):]
}

// placeholderTemplate stands in for a template already reported as broken.
const placeholderTemplate = "{{ .ID }}"

// hasProblemUnder reports whether a problem of ps is below prefix.
func hasProblemUnder(ps []config.Problem, prefix string) bool {
	for _, p := range ps {
		if strings.HasPrefix(p.Path, prefix+".") {
			return true
		}
	}
	return false
}
