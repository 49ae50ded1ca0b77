package schemas

import (
	"fmt"
	"math/big"
	"reflect"
	"sort"

	"github.com/fanout-dev/fanout/internal/jsontext"
	"github.com/hamba/avro/v2"
)

// This file is the only one that knows hamba/avro: it parses .avsc text and
// compiles it into a tree of nodes that the decoder and encoder walk.

type kind uint8

const (
	kNull kind = iota
	kBoolean
	kInt
	kLong
	kFloat
	kDouble
	kBytes
	kString
	kRecord
	kEnum
	kArray
	kMap
	kUnion
	kFixed
)

type logical uint8

const (
	lNone logical = iota
	lDecimal
	lUUID
	lDate
	lTimeMillis
	lTimeMicros
	lTimestampMillis
	lTimestampMicros
	lLocalTimestampMillis
	lLocalTimestampMicros
)

var logicalTypes = map[avro.LogicalType]logical{
	avro.Decimal:              lDecimal,
	avro.UUID:                 lUUID,
	avro.Date:                 lDate,
	avro.TimeMillis:           lTimeMillis,
	avro.TimeMicros:           lTimeMicros,
	avro.TimestampMillis:      lTimestampMillis,
	avro.TimestampMicros:      lTimestampMicros,
	avro.LocalTimestampMillis: lLocalTimestampMillis,
	avro.LocalTimestampMicros: lLocalTimestampMicros,
}

// node is one compiled schema type. Named types are compiled once, so a
// recursive schema becomes a cyclic graph.
type node struct {
	kind     kind
	logical  logical
	name     string // what error messages call the type
	fields   []field
	symbols  []string
	items    *node // array items, map values
	branches []*node
	size     int // fixed

	precision, scale int
	maxDecBytes      int // longest minimal two's complement within precision

	minSize int // fewest bytes one value of this type can take
}

type field struct {
	name   string
	key    []byte // `"name":`
	typ    *node
	hasDef bool
	def    []byte // Avro binary encoding of the default
	rawDef any    // hamba's form of the default, until def is computed
}

// parseSchema parses and compiles one writer schema.
func parseSchema(id int, subject string, avsc []byte) (s *Schema, err error) {
	return parseSchemaRefs(id, subject, avsc, nil)
}

// refText is the text of a schema that another one references (a Schema
// Registry schema reference), and where it came from, for errors.
type refText struct {
	subject string
	version int
	avsc    []byte
}

// parseSchemaRefs parses and compiles one writer schema whose named types
// may come from the referenced schemas refs, given in dependency order (a
// schema after every schema it references): they are parsed first, into
// the same name cache, so avsc can name their types.
func parseSchemaRefs(id int, subject string, avsc []byte, refs []refText) (s *Schema, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%w: parser failed: %v", ErrUnsupportedSchema, r)
		}
	}()
	// A fresh cache per schema: named types of different schemas (or
	// versions of one) must not see each other.
	names := &avro.SchemaCache{}
	for _, ref := range refs {
		if _, err := avro.ParseBytesWithCache(ref.avsc, "", names); err != nil {
			return nil, fmt.Errorf("%w: referenced subject %q version %d: %v", ErrUnsupportedSchema, ref.subject, ref.version, err)
		}
	}
	as, err := avro.ParseBytesWithCache(avsc, "", names)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedSchema, err)
	}
	rec, ok := as.(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("%w: top level is %s, want a record", ErrUnsupportedSchema, as.Type())
	}
	c := compiler{named: map[string]*node{}}
	root := c.compile(as)
	c.computeMinSizes()
	for _, n := range c.records {
		for i := range n.fields {
			f := &n.fields[i]
			if !f.hasDef {
				continue
			}
			if f.def, err = defaultBytes(f.typ, f.rawDef); err != nil {
				return nil, fmt.Errorf("%w: default of %s.%s: %v", ErrUnsupportedSchema, n.name, f.name, err)
			}
			f.rawDef = nil
		}
	}
	return &Schema{ID: id, Subject: subject, Name: rec.FullName(), root: root}, nil
}

type compiler struct {
	named   map[string]*node
	records []*node
}

func (c *compiler) compile(s avro.Schema) *node {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	if ns, ok := s.(avro.NamedSchema); ok {
		if n := c.named[ns.FullName()]; n != nil {
			return n
		}
	}
	n := &node{name: string(s.Type())}
	if lts, ok := s.(avro.LogicalTypeSchema); ok && lts.Logical() != nil {
		l := lts.Logical()
		n.logical = logicalTypes[l.Type()]
		if n.logical != lNone {
			n.name = string(l.Type())
		}
		if d, ok := l.(*avro.DecimalLogicalSchema); ok {
			n.precision, n.scale = d.Precision(), d.Scale()
			n.name = fmt.Sprintf("decimal(%d,%d)", n.precision, n.scale)
			n.maxDecBytes = decimalBytes(n.precision)
		}
	}
	switch s := s.(type) {
	case *avro.NullSchema:
		n.kind = kNull
	case *avro.PrimitiveSchema:
		n.kind = primitiveKinds[s.Type()]
	case *avro.RecordSchema:
		n.kind, n.name = kRecord, s.FullName()
		c.named[n.name] = n // before the fields: they may refer back
		c.records = append(c.records, n)
		for _, f := range s.Fields() {
			n.fields = append(n.fields, field{
				name:   f.Name(),
				key:    append(jsontext.AppendString(nil, f.Name()), ':'),
				typ:    c.compile(f.Type()),
				hasDef: f.HasDefault(),
				rawDef: f.Default(),
			})
		}
	case *avro.EnumSchema:
		n.kind, n.name, n.symbols = kEnum, s.FullName(), s.Symbols()
		c.named[n.name] = n
	case *avro.FixedSchema:
		n.kind, n.size = kFixed, s.Size()
		if n.logical != lDecimal {
			n.name = s.FullName()
		}
		c.named[s.FullName()] = n
	case *avro.ArraySchema:
		n.kind, n.items = kArray, c.compile(s.Items())
	case *avro.MapSchema:
		n.kind, n.items = kMap, c.compile(s.Values())
	case *avro.UnionSchema:
		n.kind = kUnion
		for _, t := range s.Types() {
			n.branches = append(n.branches, c.compile(t))
		}
	}
	return n
}

var primitiveKinds = map[avro.Type]kind{
	avro.Boolean: kBoolean, avro.Int: kInt, avro.Long: kLong, avro.Float: kFloat,
	avro.Double: kDouble, avro.Bytes: kBytes, avro.String: kString,
}

// computeMinSizes sets minSize on every node. Only records can be zero
// sized and only records can recurse without a length or branch byte in
// between, so summing record fields until nothing changes is enough.
func (c *compiler) computeMinSizes() {
	seen := map[*node]bool{}
	var walk func(n *node)
	walk = func(n *node) {
		if seen[n] {
			return
		}
		seen[n] = true
		switch n.kind {
		case kNull:
			n.minSize = 0
		case kFloat:
			n.minSize = 4
		case kDouble:
			n.minSize = 8
		case kFixed:
			n.minSize = n.size
		case kRecord:
			for _, f := range n.fields {
				walk(f.typ)
			}
		default: // boolean, int, long, bytes, string, enum, array, map, union
			n.minSize = 1
		}
		if n.items != nil {
			walk(n.items)
		}
		for _, b := range n.branches {
			walk(b)
		}
	}
	for _, r := range c.records {
		walk(r)
	}
	for changed := true; changed; {
		changed = false
		for _, r := range c.records {
			sum := 0
			for _, f := range r.fields {
				sum += f.typ.minSize
			}
			if sum != r.minSize {
				r.minSize, changed = sum, true
			}
		}
	}
}

// decimalBytes is the length of the longest minimal two's complement
// encoding of an unscaled value with at most precision digits.
func decimalBytes(precision int) int {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(precision)), nil)
	max.Sub(max, big.NewInt(1))
	return max.BitLen()/8 + 1
}

// defaultBytes encodes a field default in the form hamba's parser leaves
// it: the value for the first union branch, bytes as []byte, fixed as a
// byte array, records and maps as map[string]any.
func defaultBytes(n *node, v any) ([]byte, error) {
	var out []byte
	var walk func(n *node, v any) error
	walk = func(n *node, v any) error {
		bad := fmt.Errorf("%v (%T) is not a valid %s", v, v, n.name)
		switch n.kind {
		case kNull:
		case kBoolean:
			b, ok := v.(bool)
			if !ok {
				return bad
			}
			out = appendBool(out, b)
		case kInt, kLong:
			rv := reflect.ValueOf(v)
			if !rv.CanInt() {
				return bad
			}
			out = appendLong(out, rv.Int())
		case kFloat, kDouble:
			rv := reflect.ValueOf(v)
			if !rv.CanFloat() {
				return bad
			}
			if n.kind == kFloat {
				out = appendFloat(out, float32(rv.Float()))
			} else {
				out = appendDouble(out, rv.Float())
			}
		case kString, kEnum:
			s, ok := v.(string)
			if !ok {
				return bad
			}
			if n.kind == kString {
				out = appendBytes(out, []byte(s))
				break
			}
			i := indexOf(n.symbols, s)
			if i < 0 {
				return bad
			}
			out = appendLong(out, int64(i))
		case kBytes, kFixed:
			rv := reflect.ValueOf(v)
			if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array || rv.Type().Elem().Kind() != reflect.Uint8 {
				return bad
			}
			b := make([]byte, rv.Len())
			reflect.Copy(reflect.ValueOf(b), rv)
			if n.kind == kFixed {
				if len(b) != n.size {
					return bad
				}
				out = append(out, b...)
			} else {
				out = appendBytes(out, b)
			}
		case kArray:
			a, ok := v.([]any)
			if !ok {
				return bad
			}
			if len(a) > 0 {
				out = appendLong(out, int64(len(a)))
				for _, x := range a {
					if err := walk(n.items, x); err != nil {
						return err
					}
				}
			}
			out = append(out, 0)
		case kMap:
			m, ok := v.(map[string]any)
			if !ok {
				return bad
			}
			if len(m) > 0 {
				out = appendLong(out, int64(len(m)))
				for _, k := range sortedKeys(m) {
					out = appendBytes(out, []byte(k))
					if err := walk(n.items, m[k]); err != nil {
						return err
					}
				}
			}
			out = append(out, 0)
		case kRecord:
			m, ok := v.(map[string]any)
			if !ok {
				return bad
			}
			for _, f := range n.fields {
				x, ok := m[f.name]
				if !ok {
					return fmt.Errorf("record default has no field %q", f.name)
				}
				if err := walk(f.typ, x); err != nil {
					return err
				}
			}
		case kUnion:
			out = append(out, 0) // branch 0, zigzag encoded
			return walk(n.branches[0], v)
		}
		return nil
	}
	err := walk(n, v)
	return out, err
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
