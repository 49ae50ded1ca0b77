package schemas

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the current output")

// TestGolden encodes each testdata input, decodes the bytes again and
// compares the rendered JSON with testdata/golden/<name>.json.
func TestGolden(t *testing.T) {
	c := testCodec(t)
	ctx := context.Background()
	for _, in := range goldenInputs(t) {
		t.Run(in.name, func(t *testing.T) {
			data, enc, err := c.EncodeJSON(ctx, in.subject, in.doc)
			if err != nil {
				t.Fatalf("EncodeJSON: %v", err)
			}
			rec, err := c.Decode(ctx, data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if rec.SchemaID != testSubjects[in.subject] || rec.Subject != in.subject || rec.Name == "" {
				t.Errorf("got id %d subject %q name %q", rec.SchemaID, rec.Subject, rec.Name)
			}
			if !bytes.Equal(rec.JSON, enc.JSON) || !reflect.DeepEqual(rec.Fields, enc.Fields) {
				t.Errorf("EncodeJSON's record differs from Decode's:\n%s\n%s", enc.JSON, rec.JSON)
			}
			if !json.Valid(rec.JSON) {
				t.Fatalf("invalid JSON: %s", rec.JSON)
			}
			assertFieldsMatchJSON(t, rec)

			var pretty bytes.Buffer
			if err := json.Indent(&pretty, rec.JSON, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden := filepath.Join("testdata", "golden", in.name+".json")
			if *update {
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("%s differs (run with -update to accept):\ngot:\n%s\nwant:\n%s", golden, pretty.Bytes(), want)
			}

			// The rendered form is accepted as input and gives the same bytes.
			again, _, err := c.EncodeJSON(ctx, in.subject, rec.JSON)
			if err != nil {
				t.Fatalf("EncodeJSON(rendered JSON): %v", err)
			}
			if !bytes.Equal(again, data) {
				t.Errorf("re-encoding the rendered JSON changed the bytes:\n%x\n%x", data, again)
			}
		})
	}
}

// assertFieldsMatchJSON checks that Record.Fields and Record.JSON hold the
// same value.
func assertFieldsMatchJSON(t testing.TB, rec *Record) {
	t.Helper()
	fromFields, err := json.Marshal(rec.Fields)
	if err != nil {
		t.Fatalf("json.Marshal(Fields): %v", err)
	}
	var a, b any
	if err := json.Unmarshal(fromFields, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rec.JSON, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("Fields and JSON differ:\nFields: %s\nJSON:   %s", fromFields, rec.JSON)
	}
}
