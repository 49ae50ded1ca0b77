package schemas

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/fstest"
)

var decodeSentinels = []error{ErrBadMagic, ErrTruncated, ErrUnknownSchema, ErrUnsupportedSchema, ErrBadPayload}

// checkDecodeError fails unless err is a *DecodeError matching want and no
// other sentinel.
func checkDecodeError(t testing.TB, err, want error) *DecodeError {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("got %v (%T), want a *DecodeError", err, err)
	}
	for _, s := range decodeSentinels {
		if errors.Is(err, s) != (s == want) {
			t.Fatalf("errors.Is(%q, %v) = %v", err, s, !(s == want))
		}
	}
	return de
}

// frame prepends the wire header for schema id.
func frame(id int, avro ...byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
	return append(b, avro...)
}

// userBytes is a valid user.registered message and its parts.
func userBytes(t testing.TB, c *Codec) []byte {
	t.Helper()
	data, _, err := c.EncodeJSON(context.Background(), "user.registered", []byte(`{
		"id": "0b7e4a52-3f7c-4d8e-9a61-2c5d8f1e7b90", "email": "a@b.c", "name": "A",
		"plan": "PRO", "created_at": 0, "metadata": {"k": "v"}}`))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestDecodeErrors(t *testing.T) {
	c := testCodec(t)
	valid := userBytes(t, c)
	// user.registered layout: header(5) id(1+36) email(1+5) name(1+1) plan(1)
	// created_at(1) referrer(1) metadata...
	planAt := 5 + 37 + 6 + 2
	with := func(at int, b ...byte) []byte {
		d := append([]byte(nil), valid...)
		copy(d[at:], b)
		return d
	}
	tests := []struct {
		name     string
		data     []byte
		want     error
		msg      string // exact Error(), if set
		contains string
		path     string
		offset   int
	}{
		{name: "empty", data: nil, want: ErrTruncated, msg: "schemas: truncated data: empty message"},
		{name: "three bytes", data: []byte{0, 0, 0}, want: ErrTruncated, offset: 3,
			msg: "schemas: truncated data: message of 3 bytes, want at least 5"},
		{name: "header only", data: frame(1), want: ErrTruncated, offset: 5, path: "id"},
		{name: "bad magic", data: []byte(`{"id":1}`), want: ErrBadMagic,
			msg: "schemas: bad magic byte 0x7b (want 0x00)"},
		{name: "bad magic short", data: []byte{1}, want: ErrBadMagic},
		{name: "unknown id", data: frame(42, 0), want: ErrUnknownSchema, offset: 1,
			msg: "schemas: unknown schema id 42"},
		{name: "negative id", data: []byte{0, 0xff, 0xff, 0xff, 0xff}, want: ErrUnknownSchema,
			msg: "schemas: unknown schema id -1"},
		{name: "truncated avro", data: valid[:len(valid)-1], want: ErrTruncated, path: "metadata"},
		{name: "trailing bytes", data: append(append([]byte(nil), valid...), 0), want: ErrBadPayload,
			offset: len(valid), contains: "1 bytes left after the record"},
		{name: "enum index", data: with(planAt, 6), want: ErrBadPayload, path: "plan", offset: planAt,
			msg: `schemas: schema id 1: field "plan": bad avro payload at offset 50: enum fanout.example.Plan has no symbol 3`},
		{name: "union index", data: with(planAt+2, 4), want: ErrBadPayload, path: "referrer",
			contains: "union has no branch 2"},
		{name: "negative length", data: with(5, 1), want: ErrBadPayload, path: "id", contains: "negative length -1"},
		{name: "length past end", data: with(5, 0xfe, 0x01), want: ErrTruncated, path: "id",
			contains: "string of 127 bytes"},
		{name: "not a uuid", data: with(6, 'x'), want: ErrBadPayload, path: "id", contains: "is not a UUID"},
		{name: "varint overflow", data: frame(4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),
			want: ErrBadPayload, path: "v", contains: "overflows 64 bits"},
		{name: "int overflow", data: frame(4, 0x80, 0x80, 0x80, 0x80, 0x10), want: ErrBadPayload, path: "v",
			contains: "overflows 32 bits"},
		{name: "items past end", data: frame(2, append(uuidBytes(), 0x02, 'u', 0x02, 0x00, 0x02, 'X', 0x7e)...),
			want: ErrTruncated, path: "items", contains: "block of 63 elements"},
		{name: "decimal over precision", data: frame(2, append(uuidBytes(), 0, 0x0e, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)...),
			want: ErrBadPayload, path: "amount", contains: "more than 12 digits"},
		{name: "deep recursion", data: frame(4, deepList(maxDepth+1)...), want: ErrBadPayload,
			contains: "nested more than 64 deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := c.Decode(context.Background(), tt.data)
			if rec != nil {
				t.Errorf("got a record with the error: %s", rec.JSON)
			}
			de := checkDecodeError(t, err, tt.want)
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("Error() = %q, want %q", err, tt.msg)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("Error() = %q, want it to contain %q", err, tt.contains)
			}
			if tt.path != "" && !strings.HasPrefix(de.Path, tt.path) {
				t.Errorf("Path = %q, want %q", de.Path, tt.path)
			}
			if tt.offset != 0 && de.Offset != tt.offset {
				t.Errorf("Offset = %d, want %d", de.Offset, tt.offset)
			}
		})
	}
}

// uuidBytes is the Avro encoding of a uuid string.
func uuidBytes() []byte {
	return append([]byte{72}, "f47ac10b-58cc-4372-a567-0e02b2c3d479"...)
}

// deepList is a list.avsc value n nodes long.
func deepList(n int) []byte {
	var b []byte
	for range n - 1 {
		b = append(b, 0x02, 0x02) // v=1, next: branch 1
	}
	return append(b, 0x02, 0x00) // v=1, next: null
}

func TestDecodeDepthLimit(t *testing.T) {
	c := testCodec(t)
	// Each node of the list is one level.
	rec, err := c.Decode(context.Background(), frame(4, deepList(maxDepth)...))
	if err != nil {
		t.Fatalf("a list of %d: %v", maxDepth, err)
	}
	if got := strings.Count(string(rec.JSON), `"v":1`); got != maxDepth {
		t.Errorf("rendered %d nodes", got)
	}
}

// TestDecodeEveryPrefix: every proper prefix of a valid message is
// truncated, never a panic or another error.
func TestDecodeEveryPrefix(t *testing.T) {
	c := testCodec(t)
	for name, data := range encodeGolden(t, c) {
		t.Run(name, func(t *testing.T) {
			for n := 5; n < len(data); n++ {
				_, err := c.Decode(context.Background(), data[:n])
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("prefix of %d/%d bytes: %v", n, len(data), err)
				}
			}
		})
	}
}

// TestDecodeLimits: counts and lengths in the data cannot make the
// decoder allocate or loop much more than the message size.
func TestDecodeLimits(t *testing.T) {
	reg, err := NewLocal(fstest.MapFS{
		"nulls.avsc": {Data: []byte(`{"type":"record","name":"N","fields":[{"name":"a","type":{"type":"array","items":"null"}}]}`)},
		"empty.avsc": {Data: []byte(`{"type":"record","name":"E","fields":[{"name":"m","type":{"type":"map","values":{"type":"record","name":"Z","fields":[]}}}]}`)},
	}, map[string]int{"nulls": 1, "empty": 2})
	if err != nil {
		t.Fatal(err)
	}
	c := NewCodec(reg)
	huge := appendLong(nil, 1<<40)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"2^40 nulls", frame(1, append(huge, 0)...), ErrBadPayload},
		{"nulls in many blocks", frame(1, manyBlocks(appendLong(nil, maxItems/4), 5)...), ErrBadPayload},
		{"negative count min", frame(1, append(appendLong(nil, math.MinInt64), 0)...), ErrBadPayload},
		{"negative block size", frame(1, 0x01, 0x01, 0), ErrBadPayload},
		{"2^40 map keys", frame(2, append(huge, 0)...), ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Decode(context.Background(), tt.data)
			checkDecodeError(t, err, tt.want)
		})
	}
	// Within the limit, zero-sized elements decode.
	rec, err := c.Decode(context.Background(), frame(1, append(appendLong(nil, 3), 0)...))
	if err != nil || string(rec.JSON) != `{"a":[null,null,null]}` {
		t.Fatalf("got %s, %v", rec.JSON, err)
	}
	// A block with a byte size (negative count) decodes.
	rec, err = c.Decode(context.Background(), frame(1, 0x03, 0x00, 0))
	if err != nil || string(rec.JSON) != `{"a":[null,null]}` {
		t.Fatalf("got %s, %v", rec.JSON, err)
	}
}

func manyBlocks(block []byte, n int) []byte {
	var b []byte
	for range n {
		b = append(b, block...)
	}
	return append(b, 0)
}

// TestDecodeRandom: random payloads behind a valid header never panic and
// fail with exactly one sentinel.
func TestDecodeRandom(t *testing.T) {
	c := testCodec(t)
	rng := rand.New(rand.NewPCG(1, 2))
	ok := 0
	for i := range 20000 {
		payload := make([]byte, rng.IntN(64))
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		data := frame(1+i%len(testSubjects), payload...)
		rec, err := c.Decode(context.Background(), data)
		if err == nil {
			ok++
			assertFieldsMatchJSON(t, rec)
			continue
		}
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("%x: %v is not a *DecodeError", data, err)
		}
		n := 0
		for _, s := range decodeSentinels {
			if errors.Is(err, s) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%x: %v matches %d sentinels", data, err, n)
		}
	}
	t.Logf("%d of 20000 random payloads decoded", ok)
}

// failingRegistry fails every lookup with err.
type failingRegistry struct{ err error }

func (r failingRegistry) ByID(context.Context, int) (*Schema, error)         { return nil, r.err }
func (r failingRegistry) BySubject(context.Context, string) (*Schema, error) { return nil, r.err }

// TestDecodeRegistryErrors: only final registry answers are DecodeErrors.
func TestDecodeRegistryErrors(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		poison error // nil: retryable, not a *DecodeError
	}{
		{"transient", errors.New("connection refused"), nil},
		{"ctx", context.DeadlineExceeded, nil},
		{"unknown", ErrUnknownSchema, ErrUnknownSchema},
		{"unsupported", errors.Join(errors.New("PROTOBUF"), ErrUnsupportedSchema), ErrUnsupportedSchema},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCodec(failingRegistry{tt.err}).Decode(context.Background(), frame(7, 0))
			if tt.poison != nil {
				checkDecodeError(t, err, tt.poison)
				return
			}
			var de *DecodeError
			if errors.As(err, &de) || !errors.Is(err, tt.err) {
				t.Fatalf("got %v, want a plain error wrapping %v", err, tt.err)
			}
		})
	}
}

// TestDecodeMapOrder: map entries arrive in any order, possibly with
// repeated keys; JSON has them sorted and, like Fields, the last one wins.
func TestDecodeMapOrder(t *testing.T) {
	c := testCodec(t)
	data := userBytes(t, c)
	data = data[:len(data)-len("\x02\x02k\x02v\x00")] // drop the metadata map
	str := func(s string) []byte { return append(appendLong(nil, int64(len(s))), s...) }
	data = append(data, 0x06) // a block of 3
	for _, kv := range [][2]string{{"b", "1"}, {"a", "1"}, {"c", "1"}} {
		data = append(append(data, str(kv[0])...), str(kv[1])...)
	}
	data = append(data, 0x03, 0x00) // a block of 2 with a byte size
	for _, kv := range [][2]string{{"a", "2"}, {"\xff", "bad utf-8"}} {
		data = append(append(data, str(kv[0])...), str(kv[1])...)
	}
	data = append(data, 0)
	rec, err := c.Decode(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	want := `"metadata":{"a":"2","b":"1","c":"1","` + "\uFFFD" + `":"bad utf-8"}}`
	if !strings.HasSuffix(string(rec.JSON), want) {
		t.Errorf("got  %s\nwant ...%s", rec.JSON, want)
	}
	assertFieldsMatchJSON(t, rec)
}
