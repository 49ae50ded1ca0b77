package schemas

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// How Decode names an event's type (Record.Type), the name a sink's
// types filter matches and X-Fanout-Event-Type carries.
const (
	// TypeFromSubject: the subject the writer schema is registered
	// under. With local schemas that is the file's subject
	// (user.registered); with a registry, the subject picked by
	// PickSubject among those of the schema id.
	TypeFromSubject = "subject"
	// TypeFromRecord: the Avro full name of the top-level record
	// (fanout.example.UserRegistered), whatever the subject.
	TypeFromRecord = "record"
)

// EventTypes says how a Codec names event types.
type EventTypes struct {
	From  string // TypeFromSubject (also for "") or TypeFromRecord
	Topic string // the topic events come from; PickSubject prefers its subjects
}

// SubjectLister is a Registry that can tell the subjects a schema id is
// registered under. An id that does not exist yields ErrUnknownSchema; a
// registry that cannot say yields ErrNoSubjects; other errors may heal.
type SubjectLister interface {
	SubjectsOf(ctx context.Context, id int) ([]string, error)
}

// WithEventTypes returns a copy of c that names event types by t.
func (c *Codec) WithEventTypes(t EventTypes) *Codec {
	cc := *c
	cc.types = t
	return &cc
}

// PickSubject chooses the event's subject among the subjects one schema id
// is registered under, for records of topic whose writer schema is the
// record fullName. The first that exists of:
//
//  1. <topic>-value          TopicNameStrategy (the Confluent default)
//  2. <topic>-<fullName>     TopicRecordNameStrategy
//  3. <fullName>             RecordNameStrategy
//  4. the first, in byte order, that does not end in "-key"
//  5. the first in byte order
//
// "" if subjects is empty.
func PickSubject(subjects []string, topic, fullName string) string {
	if len(subjects) == 0 {
		return ""
	}
	has := make(map[string]bool, len(subjects))
	for _, s := range subjects {
		has[s] = true
	}
	var prefer []string
	if topic != "" {
		prefer = append(prefer, topic+"-value", topic+"-"+fullName)
	}
	prefer = append(prefer, fullName)
	for _, want := range prefer {
		if want != "" && has[want] {
			return want
		}
	}
	sorted := append([]string(nil), subjects...)
	sort.Strings(sorted)
	for _, s := range sorted {
		if !strings.HasSuffix(s, "-key") {
			return s
		}
	}
	return sorted[0]
}

// setType fills rec.Type (and, from a registry, rec.Subject). Errors are
// those worth retrying; a registry that cannot tell the subjects of an id
// leaves the type empty.
func (c *Codec) setType(ctx context.Context, s *Schema, rec *Record) error {
	if c.types.From == TypeFromRecord {
		rec.Type = s.Name
		return nil
	}
	if s.Subject != "" {
		rec.Type = s.Subject
		return nil
	}
	lister, ok := c.reg.(SubjectLister)
	if !ok {
		return nil
	}
	subjects, err := lister.SubjectsOf(ctx, s.ID)
	if errors.Is(err, ErrNoSubjects) || errors.Is(err, ErrUnknownSchema) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("schemas: subjects of schema id %d: %w", s.ID, err)
	}
	rec.Subject = PickSubject(subjects, c.types.Topic, s.Name)
	rec.Type = rec.Subject
	return nil
}

var fullNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// IsFullName reports whether s is a valid Avro full name
// (namespace.name), the shape of an event type under TypeFromRecord.
func IsFullName(s string) bool { return fullNameRE.MatchString(s) }
