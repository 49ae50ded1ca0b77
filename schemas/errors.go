package schemas

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels for what callers branch on. Decode wraps the first five in a
// *DecodeError; registries return errors that wrap ErrUnknownSchema or
// ErrUnsupportedSchema when the answer is final, and other errors (network,
// registry 5xx, cancelled context) when asking again may help.
var (
	// ErrBadMagic: the first byte is not the Confluent magic byte 0x00.
	ErrBadMagic = errors.New("schemas: bad magic byte")
	// ErrTruncated: fewer than 5 bytes, or the Avro data ends early.
	ErrTruncated = errors.New("schemas: truncated data")
	// ErrUnknownSchema: no schema has this id (or subject).
	ErrUnknownSchema = errors.New("schemas: unknown schema")
	// ErrBadPayload: the Avro data does not decode with its writer schema,
	// breaks a limit, or has bytes left over after the record.
	ErrBadPayload = errors.New("schemas: bad avro payload")
	// ErrUnsupportedSchema: the schema exists but this package cannot use it:
	// not AVRO, uses schema references, does not parse, or its top level is
	// not a record.
	ErrUnsupportedSchema = errors.New("schemas: unsupported schema")
	// ErrNoSubjects: the registry cannot tell which subjects a schema id
	// is registered under (it predates GET /schemas/ids/{id}/versions).
	ErrNoSubjects = errors.New("schemas: registry cannot list the subjects of a schema id")
)

// DecodeError is returned by Decode for data that can never decode: the
// message is poison, decoding it again will fail again. Err is exactly one
// of ErrBadMagic, ErrTruncated, ErrUnknownSchema, ErrUnsupportedSchema or
// ErrBadPayload, so errors.Is works with the sentinels. Failures that may
// heal (the registry is unreachable, ctx is done) are not DecodeErrors.
type DecodeError struct {
	SchemaID int    // 0 if the header could not be read
	Offset   int    // byte offset in the message where decoding failed
	Path     string // field path such as "items[1].sku"; "" outside the record
	Err      error  // the sentinel

	detail string
	header bool // detail is the whole message: the header or lookup failed
}

func (e *DecodeError) Error() string {
	if e.header {
		return "schemas: " + e.detail
	}
	var b strings.Builder
	fmt.Fprintf(&b, "schemas: schema id %d: ", e.SchemaID)
	if e.Path != "" {
		fmt.Fprintf(&b, "field %q: ", e.Path)
	}
	fmt.Fprintf(&b, "%s at offset %d: %s", strings.TrimPrefix(e.Err.Error(), "schemas: "), e.Offset, e.detail)
	return b.String()
}

func (e *DecodeError) Unwrap() error { return e.Err }

// EncodeError is returned by EncodeJSON for a document that does not fit
// the subject's schema.
type EncodeError struct {
	Subject string
	Path    string // field path such as "items[1].sku"; "" for the whole document
	Reason  string
}

func (e *EncodeError) Error() string {
	if e.Path == "" {
		return e.Subject + ": " + e.Reason
	}
	return fmt.Sprintf("%s: field %q: %s", e.Subject, e.Path, e.Reason)
}

// pathError is the internal form of an error raised while walking a value;
// the path is collected innermost first as the error unwinds.
type pathError struct {
	err  error // sentinel, decode only
	off  int   // decode only
	msg  string
	path []string
}

func (e *pathError) Error() string { return joinPath(e.path) + ": " + e.msg }

// at prepends a path segment: a field or map key name, or "[i]".
func (e *pathError) at(seg string) *pathError {
	e.path = append(e.path, seg)
	return e
}

func joinPath(rev []string) string {
	var b strings.Builder
	for i := len(rev) - 1; i >= 0; i-- {
		seg := rev[i]
		if b.Len() > 0 && !strings.HasPrefix(seg, "[") {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}
