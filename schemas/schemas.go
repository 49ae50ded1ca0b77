package schemas

import (
	"embed"
	"io/fs"

	"github.com/fanout-dev/fanout/schemas/builtin"
)

//go:embed avro/*.avsc
var builtinFS embed.FS

// Builtin returns the schemas shipped with fanout, one <subject>.avsc file
// per subject at the top of the returned file system. Use it with
// BuiltinSubjects:
//
//	reg, err := schemas.NewLocal(schemas.Builtin(), schemas.BuiltinSubjects)
func Builtin() fs.FS {
	sub, err := fs.Sub(builtinFS, "avro")
	if err != nil {
		// fs.Sub fails only for an invalid directory name; "avro" is valid.
		panic("schemas: embedded schema directory: " + err.Error())
	}
	return sub
}

// BuiltinSubjects maps each shipped subject to the schema id it has in a
// local registry and in the demo. Treat it as read-only.
var BuiltinSubjects = builtin.Subjects

// Schema is one writer schema known by its Confluent id.
type Schema struct {
	ID      int
	Subject string // "" if unknown, e.g. fetched by id from a registry
	Name    string // Avro full name of the top-level record

	root *node
}

// withSubject returns a copy of s that shares its compiled form.
func (s *Schema) withSubject(subject string) *Schema {
	c := *s
	c.Subject = subject
	return &c
}
