package schemas

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/fanout-dev/fanout/internal/jsontext"
)

const (
	magicByte  = 0x00
	headerSize = 5 // magic byte, 4-byte big-endian schema id
)

// Codec converts between Confluent-framed Avro and plain JSON, looking
// writer schemas up in a Registry. It is safe for concurrent use.
type Codec struct {
	reg   Registry
	types EventTypes
}

// NewCodec returns a Codec that resolves schemas with reg.
func NewCodec(reg Registry) *Codec {
	return &Codec{reg: reg}
}

// Record is one decoded message.
type Record struct {
	SchemaID int
	Subject  string // "" when the registry cannot tell (or with TypeFromRecord, was not asked)
	Name     string // Avro full name, e.g. fanout.example.UserRegistered
	// Type is the event type (see EventTypes): the subject, or with
	// TypeFromRecord the full name. "" when the registry cannot tell the
	// subjects of the schema id.
	Type string

	// Fields holds the record as plain JSON values: nil, bool, int64 (int,
	// long), float64 (float, double), string, []any and map[string]any.
	// Logical types, bytes, enums and non-finite floats are strings, as in
	// JSON. Go maps have no order; JSON has the fields in schema order.
	Fields map[string]any
	JSON   []byte
}

// Decode reads one message in Confluent wire format: magic byte 0, 4-byte
// big-endian schema id, Avro binary.
//
// Data that can never decode yields a *DecodeError. Other errors (the
// registry cannot be reached, ctx is done) are worth retrying.
func (c *Codec) Decode(ctx context.Context, data []byte) (rec *Record, err error) {
	switch {
	case len(data) == 0:
		return nil, &DecodeError{Err: ErrTruncated, header: true, detail: "truncated data: empty message"}
	case data[0] != magicByte:
		return nil, &DecodeError{Err: ErrBadMagic, header: true,
			detail: fmt.Sprintf("bad magic byte 0x%02x (want 0x00)", data[0])}
	case len(data) < headerSize:
		return nil, &DecodeError{Err: ErrTruncated, Offset: len(data), header: true,
			detail: fmt.Sprintf("truncated data: message of %d bytes, want at least %d", len(data), headerSize)}
	}
	id := int(int32(binary.BigEndian.Uint32(data[1:headerSize])))
	s, err := c.reg.ByID(ctx, id)
	if err != nil {
		for _, sentinel := range []error{ErrUnknownSchema, ErrUnsupportedSchema} {
			if errors.Is(err, sentinel) {
				detail := "unknown schema id " + strconv.Itoa(id)
				if sentinel == ErrUnsupportedSchema {
					detail = fmt.Sprintf("schema id %d: %s", id, strings.TrimPrefix(err.Error(), "schemas: "))
				}
				return nil, &DecodeError{SchemaID: id, Offset: 1, Err: sentinel, header: true, detail: detail}
			}
		}
		return nil, fmt.Errorf("schemas: look up schema id %d: %w", id, err)
	}
	if s == nil || s.root == nil {
		return nil, fmt.Errorf("schemas: registry returned no parsed schema for id %d", id)
	}
	rec, err = decodeRecord(s, data)
	if err != nil {
		return nil, err
	}
	if err := c.setType(ctx, s, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// decodeRecord decodes data, header included, with s.
func decodeRecord(s *Schema, data []byte) (rec *Record, err error) {
	d := decoder{data: data, pos: headerSize, out: make([]byte, 0, 2*len(data)+64)}
	defer func() {
		// Last line of defence: a bug in the decoder must not take the
		// consumer down; the message is treated as poison.
		if r := recover(); r != nil {
			rec, err = nil, &DecodeError{SchemaID: s.ID, Offset: d.pos, Err: ErrBadPayload,
				detail: fmt.Sprintf("decoder panic: %v", r)}
		}
	}()
	v, perr := d.nested(s.root)
	if perr == nil && d.pos != len(data) {
		d.start = d.pos
		perr = d.fail(ErrBadPayload, "%d bytes left after the record", len(data)-d.pos)
	}
	if perr != nil {
		return nil, &DecodeError{SchemaID: s.ID, Offset: perr.off, Path: joinPath(perr.path), Err: perr.err, detail: perr.msg}
	}
	return &Record{
		SchemaID: s.ID,
		Subject:  s.Subject,
		Name:     s.Name,
		Fields:   v.(map[string]any),
		JSON:     d.out,
	}, nil
}

// EncodeJSON validates a plain-JSON document against the latest schema of
// subject and returns the Confluent-framed Avro bytes and the Record as
// Decode would return it.
//
// The document takes the form Decode renders, and a little more:
// timestamps as RFC 3339 strings or integers (the raw Avro value: epoch
// milliseconds for timestamp-millis), dates, times and local timestamps as
// strings or integers, decimals as strings or numbers (never rounded),
// bytes and fixed as standard base64, enums as symbols, union values
// plainly (the first branch the value fits is used). Missing fields take
// their defaults; missing fields without one and unknown fields are errors.
// A document that does not fit yields an *EncodeError.
func (c *Codec) EncodeJSON(ctx context.Context, subject string, doc []byte) ([]byte, *Record, error) {
	s, err := c.reg.BySubject(ctx, subject)
	if err != nil {
		return nil, nil, fmt.Errorf("schemas: encode %s: %w", subject, err)
	}
	if s == nil || s.root == nil {
		return nil, nil, fmt.Errorf("schemas: encode %s: registry returned no parsed schema", subject)
	}
	if s.ID < 0 || s.ID > math.MaxInt32 {
		return nil, nil, fmt.Errorf("schemas: encode %s: schema id %d does not fit the wire format", subject, s.ID)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, nil, &EncodeError{Subject: subject, Reason: "not valid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, &EncodeError{Subject: subject, Reason: "not valid JSON: data after the document"}
	}
	e := encoder{out: make([]byte, headerSize, headerSize+len(doc))}
	e.out[0] = magicByte
	binary.BigEndian.PutUint32(e.out[1:], uint32(s.ID))
	if perr := e.value(s.root, v); perr != nil {
		return nil, nil, &EncodeError{Subject: subject, Path: joinPath(perr.path), Reason: perr.msg}
	}
	rec, err := decodeRecord(s, e.out)
	if err != nil {
		return nil, nil, fmt.Errorf("schemas: encode %s: own output does not decode (bug): %w", subject, err)
	}
	if err := c.setType(ctx, s, rec); err != nil {
		return nil, nil, fmt.Errorf("schemas: encode %s: %w", subject, err)
	}
	return e.out, rec, nil
}

// Field returns the value at a dotted path ("items.0.sku": record fields
// and map keys by name, array elements by index) rendered as a string:
// strings as they are, numbers without exponent, booleans as true/false,
// arrays and objects as compact JSON (object keys sorted). ok is false if
// the path is absent or the value is null.
func (r *Record) Field(path string) (string, bool) {
	if r == nil || path == "" {
		return "", false
	}
	var cur any = r.Fields
	for rest := path; ; {
		seg, tail, more := strings.Cut(rest, ".")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return "", false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return "", false
			}
			cur = c[i]
		default:
			return "", false
		}
		if !more {
			break
		}
		rest = tail
	}
	switch v := cur.(type) {
	case nil:
		return "", false
	case string:
		return v, true
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	s, err := jsontext.Marshal(cur)
	return s, err == nil
}
