package schemas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary messages to Decode, with the shipped schemas
// and the test schemas (every type, a recursive one) registered as ids 1-4.
//
// Invariants:
//   - Decode never panics. (Decode recovers from a panic as ErrBadPayload
//     with "decoder panic" in the message; that fails the fuzz too.)
//   - On failure the error is a *DecodeError that matches exactly one of
//     the sentinels ErrBadMagic, ErrTruncated, ErrUnknownSchema,
//     ErrUnsupportedSchema and ErrBadPayload.
//   - On success Record.JSON is valid JSON holding the same value as
//     Record.Fields, and EncodeJSON of json.Marshal(Fields) for the
//     record's subject yields a Record with byte-identical JSON: whatever
//     Decode renders, EncodeJSON accepts and means the same by it.
//
// The seed corpus is the golden inputs, encoded.
func FuzzDecode(f *testing.F) {
	c := testCodec(f)
	for _, data := range encodeGolden(f, c) {
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 0, 4, 2, 2, 4, 0})
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := c.Decode(ctx, data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("%v (%T) is not a *DecodeError", err, err)
			}
			n := 0
			for _, s := range decodeSentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%v matches %d sentinels", err, n)
			}
			if strings.Contains(err.Error(), "decoder panic") {
				t.Fatal(err)
			}
			return
		}
		if !json.Valid(rec.JSON) {
			t.Fatalf("invalid JSON: %s", rec.JSON)
		}
		assertFieldsMatchJSON(t, rec)
		doc, err := json.Marshal(rec.Fields)
		if err != nil {
			t.Fatal(err)
		}
		_, again, err := c.EncodeJSON(ctx, rec.Subject, doc)
		if err != nil {
			t.Fatalf("EncodeJSON of the decoded Fields: %v\nJSON: %s", err, rec.JSON)
		}
		if !bytes.Equal(again.JSON, rec.JSON) {
			t.Fatalf("round trip changed the JSON:\n%s\n%s", rec.JSON, again.JSON)
		}
	})
}
