package schemas

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"sort"
)

// Registry resolves writer schemas.
type Registry interface {
	// ByID returns the schema with a Confluent id. An id that does not
	// exist yields an error wrapping ErrUnknownSchema.
	ByID(ctx context.Context, id int) (*Schema, error)
	// BySubject returns the latest schema of a subject. A subject that
	// does not exist yields an error wrapping ErrUnknownSchema.
	BySubject(ctx context.Context, subject string) (*Schema, error)
}

// Local is a Registry over a fixed set of .avsc files, such as the shipped
// ones. Each subject has one version.
type Local struct {
	byID      map[int]*Schema
	bySubject map[string]*Schema
}

var _ Registry = (*Local)(nil)

// NewLocal loads <subject>.avsc from fsys for each subject and gives it
// the mapped id. Ids must be unique and between 1 and 2^31-1.
func NewLocal(fsys fs.FS, subjects map[string]int) (*Local, error) {
	l := &Local{byID: map[int]*Schema{}, bySubject: map[string]*Schema{}}
	names := make([]string, 0, len(subjects))
	for subject := range subjects {
		names = append(names, subject)
	}
	sort.Strings(names) // deterministic errors
	for _, subject := range names {
		id := subjects[subject]
		file := subject + ".avsc"
		if !fs.ValidPath(file) || subject == "" {
			return nil, fmt.Errorf("schemas: subject %q: not a valid file name", subject)
		}
		if id < 1 || id > math.MaxInt32 {
			return nil, fmt.Errorf("schemas: subject %q: id %d out of range 1..%d", subject, id, math.MaxInt32)
		}
		if other, ok := l.byID[id]; ok {
			return nil, fmt.Errorf("schemas: subjects %q and %q both have id %d", other.Subject, subject, id)
		}
		avsc, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("schemas: subject %q: %w", subject, err)
		}
		s, err := parseSchema(id, subject, avsc)
		if err != nil {
			return nil, fmt.Errorf("schemas: subject %q: %s: %w", subject, file, err)
		}
		l.byID[id] = s
		l.bySubject[subject] = s
	}
	return l, nil
}

// SubjectsOf implements SubjectLister: a local schema has one subject.
func (l *Local) SubjectsOf(_ context.Context, id int) ([]string, error) {
	if s, ok := l.byID[id]; ok {
		return []string{s.Subject}, nil
	}
	return nil, fmt.Errorf("%w: id %d", ErrUnknownSchema, id)
}

// Names returns the Avro full names of the local schemas, sorted.
func (l *Local) Names() []string {
	names := make([]string, 0, len(l.byID))
	for _, s := range l.byID {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}

// ByID implements Registry.
func (l *Local) ByID(_ context.Context, id int) (*Schema, error) {
	if s, ok := l.byID[id]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("%w: id %d", ErrUnknownSchema, id)
}

// BySubject implements Registry.
func (l *Local) BySubject(_ context.Context, subject string) (*Schema, error) {
	if s, ok := l.bySubject[subject]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("%w: subject %q", ErrUnknownSchema, subject)
}
