package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/schemas"
)

// eventTypes is how the codec names event types under cfg.
func eventTypes(cfg *config.Config) schemas.EventTypes {
	return schemas.EventTypes{From: cfg.Schemas.TypeFrom, Topic: cfg.Kafka.Topic}
}

// TypeProblems finds, for the sinks in names (all if empty), each types
// entry that no event can have under the configured naming (see
// schemas.EventTypes): a type filter that can never match skips every
// event of its sink. config.Load already checked what the file alone tells;
// this adds what the schemas tell. Offline (validate) only the local
// schemas are read; online (run) the registry is asked what it holds now.
// A registry that does not answer is logged and not checked: the records
// then wait for it anyway.
func TypeProblems(ctx context.Context, cfg *config.Config, names []string, online bool, log *slog.Logger) []config.Problem {
	if cfg == nil {
		return nil
	}
	var ps []config.Problem
	check := func(ok func(t string) bool, why func(sink, t string) string) {
		for i, s := range cfg.Sinks {
			if len(names) > 0 && !slices.Contains(names, s.Name) {
				continue
			}
			for j, t := range s.Types {
				if !ok(t) {
					p := fmt.Sprintf("sinks[%d].types[%d]", i, j)
					ps = append(ps, config.Problem{Path: p, Line: cfg.Line(p), Msg: why(s.Name, t)})
				}
			}
		}
	}
	hasTypes := slices.ContainsFunc(cfg.Sinks, func(s config.Sink) bool {
		return len(s.Types) > 0 && (len(names) == 0 || slices.Contains(names, s.Name))
	})
	if cfg.Schemas.RegistryURL == "" {
		if !hasTypes {
			return nil
		}
		if cfg.Schemas.TypeFrom != config.TypeFromRecord {
			return nil // config checked the types against schemas.subjects
		}
		fsys := schemas.Builtin()
		if cfg.Schemas.Dir != "" {
			fsys = os.DirFS(cfg.Schemas.Dir)
		}
		local, err := schemas.NewLocal(fsys, cfg.Schemas.Subjects)
		if err != nil {
			return nil // reported as a schemas problem
		}
		known := local.Names()
		check(func(t string) bool { return slices.Contains(known, t) }, func(sink, t string) string {
			return fmt.Sprintf("sink %q: type %q is the full name of no record in the local schemas (%s), so it can never match under schemas.type_from: record",
				sink, t, strings.Join(known, ", "))
		})
		return ps
	}
	if !online || !hasTypes && cfg.Schemas.TypeFrom == config.TypeFromRecord {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	reg, err := newRegistry(cfg)
	if err != nil {
		return nil // run fails building the codec, saying why
	}
	if !hasTypes {
		// No filter to refuse, but the events' types are still sent.
		if err := probeSubjectsOf(ctx, reg, ""); errors.Is(err, schemas.ErrNoSubjects) {
			log.Warn("the schema registry cannot tell the subjects of a schema id (no GET /schemas/ids/{id}/versions; Confluent before 5.5?): requests carry no X-Fanout-Event-Type; set schemas.type_from: record to name events by their record")
		}
		return nil
	}
	subjects, err := reg.Subjects(ctx)
	if err != nil {
		log.Warn("cannot check the sinks' types against the schema registry; events of a type no schema has are skipped", "err", err)
		return nil
	}
	topic := cfg.Kafka.Topic
	if cfg.Schemas.TypeFrom == config.TypeFromRecord {
		// The record names a producer can write under each naming
		// strategy: <topic>-<name> and <name> are subjects; under
		// <topic>-value any version's record.
		known := map[string]bool{}
		if slices.Contains(subjects, topic+"-value") {
			ns, err := reg.RecordNames(ctx, topic+"-value")
			if err != nil {
				log.Warn("cannot check the sinks' types against the schema registry; events of a type no schema has are skipped", "err", err)
				return nil
			}
			for _, n := range ns {
				known[n] = true
			}
		}
		for _, s := range subjects {
			if s == topic+"-value" || s == topic+"-key" {
				continue
			}
			if name, ok := strings.CutPrefix(s, topic+"-"); ok && schemas.IsFullName(name) {
				known[name] = true
			} else if schemas.IsFullName(s) {
				known[s] = true
			}
		}
		check(func(t string) bool { return known[t] }, func(sink, t string) string {
			return fmt.Sprintf("sink %q: type %q can never match under schemas.type_from: record: no version of subject %q has a record of that name, and there is no subject %q (RecordNameStrategy) or %q (TopicRecordNameStrategy) in the registry",
				sink, t, topic+"-value", t, topic+"-"+t)
		})
		return ps
	}
	check(func(t string) bool { return slices.Contains(subjects, t) }, func(sink, t string) string {
		return fmt.Sprintf("sink %q: type %q is not a subject in the schema registry, so it can never match under schemas.type_from: subject (with TopicNameStrategy the type is %q; to match record names set schemas.type_from: record)",
			sink, t, topic+"-value")
	})
	if len(ps) > 0 {
		return ps
	}
	// The types are subjects; can the registry tell an id's subjects?
	for _, s := range cfg.Sinks {
		if len(s.Types) == 0 || len(names) > 0 && !slices.Contains(names, s.Name) {
			continue
		}
		err := probeSubjectsOf(ctx, reg, s.Types[0])
		if errors.Is(err, schemas.ErrNoSubjects) {
			p := "schemas.type_from"
			ps = append(ps, config.Problem{Path: p, Line: cfg.Line(p), Msg: fmt.Sprintf(
				"the schema registry cannot tell the subjects of a schema id (no GET /schemas/ids/{id}/versions; Confluent before 5.5?), so sink %q's types can never match under type_from: subject; set schemas.type_from: record", s.Name)})
		} else if err != nil {
			log.Warn("cannot check that the schema registry tells the subjects of a schema id", "err", err)
		}
		break
	}
	return ps
}

// probeSubjectsOf asks the registry for the subjects of the latest schema
// of subject (of the first subject it holds if ""); ErrNoSubjects if it
// cannot tell. A registry without subjects tells nothing: nil.
func probeSubjectsOf(ctx context.Context, reg *schemas.HTTPRegistry, subject string) error {
	if subject == "" {
		subjects, err := reg.Subjects(ctx)
		if err != nil || len(subjects) == 0 {
			return err
		}
		subject = subjects[0]
	}
	sch, err := reg.BySubject(ctx, subject)
	if err != nil {
		return err
	}
	_, err = reg.SubjectsOf(ctx, sch.ID)
	return err
}

// newRegistry returns the Schema Registry client of cfg: its URL, auth and
// TLS. Errors name the problem, never a credential.
func newRegistry(cfg *config.Config) (*schemas.HTTPRegistry, error) {
	a, t := cfg.Schemas.RegistryAuth, cfg.Schemas.RegistryTLS
	reg, err := schemas.NewRegistry(schemas.RegistryOptions{
		URL:      cfg.Schemas.RegistryURL,
		Username: a.Username, Password: a.Password, Token: a.Token,
		CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName,
		Timeout: 10 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("schemas.registry: %w", err)
	}
	return reg, nil
}
