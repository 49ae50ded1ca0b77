package schemas

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// encoder writes the Avro binary form of a plain-JSON value, as parsed by
// encoding/json with UseNumber, checking it against the schema on the way.
type encoder struct {
	out []byte
}

func mismatch(n *node, v any) *pathError {
	return &pathError{msg: fmt.Sprintf("got %s, want %s", describe(v), n.name)}
}

func invalid(format string, args ...any) *pathError {
	return &pathError{msg: fmt.Sprintf(format, args...)}
}

// describe names a JSON value for an error message without quoting much of
// it: documents may carry personal data.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		s := string(v)
		if len(s) > 40 {
			s = s[:37] + "..."
		}
		return "number " + s
	case string:
		return "string " + quote(v)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func (e *encoder) value(n *node, v any) *pathError {
	switch n.kind {
	case kNull:
		if v != nil {
			return mismatch(n, v)
		}
	case kBoolean:
		b, ok := v.(bool)
		if !ok {
			return mismatch(n, v)
		}
		e.out = appendBool(e.out, b)
	case kInt, kLong:
		return e.integer(n, v)
	case kFloat, kDouble:
		return e.float(n, v)
	case kString:
		s, ok := v.(string)
		if !ok {
			return mismatch(n, v)
		}
		if n.logical == lUUID && !isUUID(s) {
			return invalid("%s is not a UUID", quote(s))
		}
		e.out = appendBytes(e.out, []byte(s))
	case kBytes, kFixed:
		return e.bytes(n, v)
	case kEnum:
		s, ok := v.(string)
		if !ok {
			return mismatch(n, v)
		}
		i := indexOf(n.symbols, s)
		if i < 0 {
			return invalid("%s is not one of %s", quote(s), strings.Join(n.symbols, ", "))
		}
		e.out = appendLong(e.out, int64(i))
	case kArray:
		a, ok := v.([]any)
		if !ok {
			return mismatch(n, v)
		}
		if len(a) > 0 {
			e.out = appendLong(e.out, int64(len(a)))
			for i, x := range a {
				if err := e.value(n.items, x); err != nil {
					return err.at("[" + strconv.Itoa(i) + "]")
				}
			}
		}
		e.out = append(e.out, 0)
	case kMap:
		m, ok := v.(map[string]any)
		if !ok {
			return mismatch(n, v)
		}
		if len(m) > 0 {
			e.out = appendLong(e.out, int64(len(m)))
			for _, k := range sortedKeys(m) {
				e.out = appendBytes(e.out, []byte(k))
				if err := e.value(n.items, m[k]); err != nil {
					return err.at(k)
				}
			}
		}
		e.out = append(e.out, 0)
	case kRecord:
		return e.record(n, v)
	case kUnion:
		return e.union(n, v)
	}
	return nil
}

func (e *encoder) record(n *node, v any) *pathError {
	m, ok := v.(map[string]any)
	if !ok {
		return mismatch(n, v)
	}
	known := 0
	for _, f := range n.fields {
		if _, ok := m[f.name]; ok {
			known++
		}
	}
	if known < len(m) {
		var unknown []string
		for _, k := range sortedKeys(m) {
			if !n.hasField(k) {
				unknown = append(unknown, strconv.Quote(k))
			}
		}
		if len(unknown) == 1 {
			return invalid("unknown field %s", unknown[0])
		}
		return invalid("unknown fields %s", strings.Join(unknown, ", "))
	}
	for _, f := range n.fields {
		x, ok := m[f.name]
		if !ok {
			if !f.hasDef {
				return invalid("required field is missing").at(f.name)
			}
			e.out = append(e.out, f.def...)
			continue
		}
		if err := e.value(f.typ, x); err != nil {
			return err.at(f.name)
		}
	}
	return nil
}

func (n *node) hasField(name string) bool {
	for _, f := range n.fields {
		if f.name == name {
			return true
		}
	}
	return false
}

// union writes v with the first branch it fits.
func (e *encoder) union(n *node, v any) *pathError {
	var (
		errs   []*pathError
		shaped []int // branches whose JSON type fits v
	)
	for i, b := range n.branches {
		mark := len(e.out)
		e.out = appendLong(e.out, int64(i))
		err := e.value(b, v)
		if err == nil {
			return nil
		}
		e.out = e.out[:mark]
		errs = append(errs, err)
		if accepts(b, v) {
			shaped = append(shaped, i)
		}
	}
	if len(shaped) == 1 {
		return errs[shaped[0]] // the one branch it was meant for says why
	}
	names := make([]string, len(n.branches))
	for i, b := range n.branches {
		names[i] = b.name
	}
	return invalid("got %s, want one of %s", describe(v), strings.Join(names, ", "))
}

// accepts reports whether v has a JSON type that n can take.
func accepts(n *node, v any) bool {
	switch v.(type) {
	case nil:
		return n.kind == kNull
	case bool:
		return n.kind == kBoolean
	case json.Number:
		switch n.kind {
		case kInt, kLong, kFloat, kDouble:
			return true
		}
		return n.logical == lDecimal
	case string:
		switch n.kind {
		case kString, kBytes, kFixed, kEnum, kFloat, kDouble:
			return true
		}
		return n.logical != lNone
	case []any:
		return n.kind == kArray
	case map[string]any:
		return n.kind == kRecord || n.kind == kMap
	}
	return false
}

// bits is the width of a number node: 32 for int and float, 64 for long and
// double.
func (n *node) bits() int {
	if n.kind == kInt || n.kind == kFloat {
		return 32
	}
	return 64
}

func (e *encoder) integer(n *node, v any) *pathError {
	bits := n.bits()
	var i int64
	switch v := v.(type) {
	case string:
		if n.logical == lNone {
			return mismatch(n, v)
		}
		var msg string
		if i, msg = parseLogical(v, n.logical); msg != "" {
			return invalid("%s", msg)
		}
		if bits == 32 && (i < math.MinInt32 || i > math.MaxInt32) {
			return invalid("%s is out of range for %s", quote(v), n.name)
		}
	case json.Number:
		var err error
		i, err = strconv.ParseInt(string(v), 10, bits)
		if err != nil {
			// Accept integral numbers written as 1.0 or 1e3, when exact.
			f, ferr := strconv.ParseFloat(string(v), 64)
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return invalid("%s is not an integer that fits %d bits", describe(v), bits)
			}
			i = int64(f)
			if bits == 32 && (i < math.MinInt32 || i > math.MaxInt32) {
				return invalid("%s is not an integer that fits %d bits", describe(v), bits)
			}
		}
	default:
		return mismatch(n, v)
	}
	e.out = appendLong(e.out, i)
	return nil
}

func (e *encoder) float(n *node, v any) *pathError {
	bits := n.bits()
	var f float64
	switch v := v.(type) {
	case string:
		var ok bool
		if f, ok = parseNonFinite(v); !ok {
			return invalid("got %s, want %s (a number, or \"NaN\", \"Infinity\", \"-Infinity\")", describe(v), n.name)
		}
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(v), bits); err != nil {
			return invalid("%s does not fit a %s", describe(v), n.name)
		}
	default:
		return mismatch(n, v)
	}
	if bits == 32 {
		e.out = appendFloat(e.out, float32(f))
	} else {
		e.out = appendDouble(e.out, f)
	}
	return nil
}

func (e *encoder) bytes(n *node, v any) *pathError {
	var b []byte
	if n.logical == lDecimal {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case json.Number:
			s = string(v)
		default:
			return mismatch(n, v)
		}
		var msg string
		if b, msg = parseDecimal(s, n.precision, n.scale); msg != "" {
			return invalid("%s", msg)
		}
		if n.kind == kFixed {
			if len(b) > n.size {
				return invalid("%s does not fit in %d bytes", quote(s), n.size)
			}
			fill := byte(0)
			if b[0]&0x80 != 0 {
				fill = 0xff
			}
			pad := make([]byte, n.size-len(b), n.size)
			for i := range pad {
				pad[i] = fill
			}
			b = append(pad, b...)
		}
	} else {
		s, ok := v.(string)
		if !ok {
			return invalid("got %s, want %s as a base64 string", describe(v), n.name)
		}
		var err error
		if b, err = base64.StdEncoding.Strict().DecodeString(s); err != nil {
			return invalid("not standard base64: %v", err)
		}
		if n.kind == kFixed && len(b) != n.size {
			return invalid("base64 decodes to %d bytes, want %d for %s", len(b), n.size, n.name)
		}
	}
	if n.kind == kFixed {
		e.out = append(e.out, b...)
	} else {
		e.out = appendBytes(e.out, b)
	}
	return nil
}
