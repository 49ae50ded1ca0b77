package schemas

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fanout-dev/fanout/internal/jsontext"
)

// Limits on what one message may make the decoder build. Lengths of
// strings, bytes and blocks are also checked against the bytes that are
// left, so a short message cannot make it allocate much.
const (
	maxDepth = 64      // nested records, arrays and maps
	maxItems = 1 << 20 // array and map elements in one message
)

// decoder reads Avro binary from data[pos:] and writes plain JSON to out
// while building the Fields values.
type decoder struct {
	data  []byte // the whole message, header included, for offsets
	pos   int
	start int // where the value being read starts, for errors
	out   []byte
	items int
	depth int
}

func (d *decoder) fail(sentinel error, format string, args ...any) *pathError {
	return &pathError{err: sentinel, off: d.start, msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) readLong() (int64, *pathError) {
	var u uint64
	for i := uint(0); ; i++ {
		if d.pos >= len(d.data) {
			return 0, d.fail(ErrTruncated, "data ends inside a varint")
		}
		b := d.data[d.pos]
		d.pos++
		if i == 9 && b > 1 {
			return 0, d.fail(ErrBadPayload, "varint overflows 64 bits")
		}
		u |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return int64(u>>1) ^ -int64(u&1), nil
		}
	}
}

func (d *decoder) readInt() (int64, *pathError) {
	v, err := d.readLong()
	if err == nil && (v < math.MinInt32 || v > math.MaxInt32) {
		return 0, d.fail(ErrBadPayload, "int %d overflows 32 bits", v)
	}
	return v, err
}

func (d *decoder) readN(n int, what string) ([]byte, *pathError) {
	if left := len(d.data) - d.pos; n > left {
		return nil, d.fail(ErrTruncated, "%s of %d bytes, only %d left", what, n, left)
	}
	b := d.data[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

// readString is readBytes as a string, invalid UTF-8 replaced by U+FFFD.
func (d *decoder) readString(what string) (string, *pathError) {
	b, err := d.readBytes(what)
	if err != nil {
		return "", err
	}
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s, nil
}

func (d *decoder) readBytes(what string) ([]byte, *pathError) {
	n, err := d.readLong()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, d.fail(ErrBadPayload, "%s has negative length %d", what, n)
	}
	if left := len(d.data) - d.pos; n > int64(left) {
		return nil, d.fail(ErrTruncated, "%s of %d bytes, only %d left", what, n, left)
	}
	return d.readN(int(n), what)
}

// value decodes one value of type n, appends its JSON and returns its
// plain Go form.
func (d *decoder) value(n *node) (any, *pathError) {
	d.start = d.pos
	switch n.kind {
	case kNull:
		d.out = append(d.out, "null"...)
		return nil, nil
	case kBoolean:
		b, err := d.readN(1, "boolean")
		if err != nil {
			return nil, err
		}
		if b[0] > 1 {
			return nil, d.fail(ErrBadPayload, "boolean byte 0x%02x", b[0])
		}
		d.out = strconv.AppendBool(d.out, b[0] == 1)
		return b[0] == 1, nil
	case kInt, kLong:
		var v int64
		var err *pathError
		if n.kind == kInt {
			v, err = d.readInt()
		} else {
			v, err = d.readLong()
		}
		if err != nil {
			return nil, err
		}
		if n.logical != lNone {
			if s, ok := formatLogical(v, n.logical); ok {
				d.out = append(append(append(d.out, '"'), s...), '"')
				return s, nil
			}
		}
		d.out = strconv.AppendInt(d.out, v, 10)
		return v, nil
	case kFloat, kDouble:
		return d.float(n)
	case kString:
		s, err := d.readString("string")
		if err != nil {
			return nil, err
		}
		if n.logical == lUUID && !isUUID(s) {
			return nil, d.fail(ErrBadPayload, "%s is not a UUID", quote(s))
		}
		d.out = jsontext.AppendString(d.out, s)
		return s, nil
	case kBytes, kFixed:
		var b []byte
		var err *pathError
		if n.kind == kBytes {
			b, err = d.readBytes("bytes")
		} else {
			b, err = d.readN(n.size, n.name)
		}
		if err != nil {
			return nil, err
		}
		var s string
		if n.logical == lDecimal {
			var msg string
			if s, msg = decodeDecimal(b, n.precision, n.scale, n.maxDecBytes); msg != "" {
				return nil, d.fail(ErrBadPayload, "%s", msg)
			}
		} else {
			s = base64.StdEncoding.EncodeToString(b)
		}
		d.out = append(append(append(d.out, '"'), s...), '"')
		return s, nil
	case kEnum:
		i, err := d.readInt()
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(n.symbols)) {
			return nil, d.fail(ErrBadPayload, "enum %s has no symbol %d", n.name, i)
		}
		s := n.symbols[i]
		d.out = jsontext.AppendString(d.out, s)
		return s, nil
	case kUnion:
		i, err := d.readLong()
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(n.branches)) {
			return nil, d.fail(ErrBadPayload, "union has no branch %d", i)
		}
		return d.value(n.branches[i])
	}
	return d.nested(n)
}

// nested decodes a record, array or map with a bound on depth, which a
// recursive schema would otherwise leave to the data.
func (d *decoder) nested(n *node) (any, *pathError) {
	if d.depth++; d.depth > maxDepth {
		return nil, d.fail(ErrBadPayload, "nested more than %d deep", maxDepth)
	}
	defer func() { d.depth-- }()
	switch n.kind {
	case kRecord:
		return d.record(n)
	case kArray:
		return d.array(n)
	default:
		return d.mapValue(n)
	}
}

func (d *decoder) float(n *node) (any, *pathError) {
	var f float64
	bits := 64
	if n.kind == kFloat {
		b, err := d.readN(4, "float")
		if err != nil {
			return nil, err
		}
		f, bits = float64(math.Float32frombits(uint32(b[0])|uint32(b[1])<<8|uint32(b[2])<<16|uint32(b[3])<<24)), 32
	} else {
		b, err := d.readN(8, "double")
		if err != nil {
			return nil, err
		}
		var u uint64
		for i := 7; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		f = math.Float64frombits(u)
	}
	if s, ok := nonFinite(f); ok {
		d.out = jsontext.AppendString(d.out, s)
		return s, nil
	}
	start := len(d.out)
	d.out = appendNumber(d.out, f, bits)
	if bits == 32 {
		// The float64 nearest to the float's shortest decimal form, so
		// that Fields and JSON show the same number.
		f, _ = strconv.ParseFloat(string(d.out[start:]), 64)
	}
	return f, nil
}

func (d *decoder) record(n *node) (any, *pathError) {
	m := make(map[string]any, len(n.fields))
	d.out = append(d.out, '{')
	for i := range n.fields {
		f := &n.fields[i]
		if i > 0 {
			d.out = append(d.out, ',')
		}
		d.out = append(d.out, f.key...)
		v, err := d.value(f.typ)
		if err != nil {
			return nil, err.at(f.name)
		}
		m[f.name] = v
	}
	d.out = append(d.out, '}')
	return m, nil
}

// blockCount reads the next block header of an array or map and checks
// the count against the bytes left and the element budget.
func (d *decoder) blockCount(minSize int) (int, *pathError) {
	d.start = d.pos
	count, err := d.readLong()
	if err != nil || count == 0 {
		return 0, err
	}
	if count < 0 {
		if count == math.MinInt64 {
			return 0, d.fail(ErrBadPayload, "block count overflows")
		}
		count = -count
		size, err := d.readLong() // the block's size in bytes; not needed
		if err != nil {
			return 0, err
		}
		if size < 0 {
			return 0, d.fail(ErrBadPayload, "block has negative size %d", size)
		}
	}
	if left := int64(len(d.data) - d.pos); minSize > 0 && count > left/int64(minSize) {
		return 0, d.fail(ErrTruncated, "block of %d elements, only %d bytes left", count, left)
	}
	if count > int64(maxItems-d.items) {
		return 0, d.fail(ErrBadPayload, "more than %d array and map elements", maxItems)
	}
	d.items += int(count)
	return int(count), nil
}

func (d *decoder) array(n *node) (any, *pathError) {
	a := []any{}
	d.out = append(d.out, '[')
	for {
		count, err := d.blockCount(n.items.minSize)
		if err != nil {
			return nil, err
		}
		if count == 0 {
			break
		}
		a = slices.Grow(a, min(count, 4096))
		for range count {
			if len(a) > 0 {
				d.out = append(d.out, ',')
			}
			v, err := d.value(n.items)
			if err != nil {
				return nil, err.at("[" + strconv.Itoa(len(a)) + "]")
			}
			a = append(a, v)
		}
	}
	d.out = append(d.out, ']')
	return a, nil
}

// mapValue decodes a map. Its JSON is written with keys sorted (Avro maps
// have no order) and, as in Fields, the last of duplicate keys wins.
func (d *decoder) mapValue(n *node) (any, *pathError) {
	type entry struct {
		key        string
		start, end int // value JSON in d.out
	}
	m := map[string]any{}
	var entries []entry
	d.out = append(d.out, '{')
	body := len(d.out)
	for {
		count, err := d.blockCount(1 + n.items.minSize)
		if err != nil {
			return nil, err
		}
		if count == 0 {
			break
		}
		for range count {
			d.start = d.pos
			k, err := d.readString("map key")
			if err != nil {
				return nil, err
			}
			start := len(d.out)
			v, err := d.value(n.items)
			if err != nil {
				return nil, err.at(k)
			}
			m[k] = v
			entries = append(entries, entry{k, start, len(d.out)})
		}
	}
	// Rewrite the values in key order, keeping the last of each key.
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	values := append([]byte(nil), d.out[body:]...)
	d.out = d.out[:body]
	for i, e := range entries {
		if i+1 < len(entries) && entries[i+1].key == e.key {
			continue
		}
		if len(d.out) > body {
			d.out = append(d.out, ',')
		}
		d.out = jsontext.AppendString(d.out, e.key)
		d.out = append(d.out, ':')
		d.out = append(d.out, values[e.start-body:e.end-body]...)
	}
	d.out = append(d.out, '}')
	return m, nil
}
