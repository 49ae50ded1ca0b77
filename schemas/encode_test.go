package schemas

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

const validUser = `"id": "0b7e4a52-3f7c-4d8e-9a61-2c5d8f1e7b90", "email": "a@b.c", "name": "A", "plan": "PRO", "created_at": 0`

const validOrder = `"id": "f47ac10b-58cc-4372-a567-0e02b2c3d479", "user_id": "u", "amount": "1.00", "currency": "EUR",
	"items": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}], "placed_at": 0`

func TestEncodeJSONErrors(t *testing.T) {
	c := testCodec(t)
	user := func(extra string) string { return "{" + validUser + extra + "}" }
	order := func(extra string) string { return "{" + validOrder + extra + "}" }
	tests := []struct {
		name    string
		subject string
		doc     string
		msg     string // exact Error()
		path    string
	}{
		{"enum", "user.registered", `{"id": "0b7e4a52-3f7c-4d8e-9a61-2c5d8f1e7b90", "email": "a@b.c", "name": "A", "plan": "GOLD", "created_at": 0}`,
			`user.registered: field "plan": "GOLD" is not one of FREE, PRO, ENTERPRISE`, "plan"},
		{"missing required", "user.registered", `{"id": "0b7e4a52-3f7c-4d8e-9a61-2c5d8f1e7b90", "name": "A", "plan": "PRO", "created_at": 0}`,
			`user.registered: field "email": required field is missing`, "email"},
		{"unknown field", "user.registered", user(`, "nickname": "x"`),
			`user.registered: unknown field "nickname"`, ""},
		{"unknown fields", "user.registered", user(`, "b": 1, "a": 2`),
			`user.registered: unknown fields "a", "b"`, ""},
		{"unknown nested field", "order.placed", strings.Replace(order(""), `"quantity": 2}`, `"quantity": 2, "price": 1}`, 1),
			`order.placed: field "items[1]": unknown field "price"`, "items[1]"},
		{"wrong type", "user.registered", strings.Replace(user(""), `"a@b.c"`, `12`, 1),
			`user.registered: field "email": got number 12, want string`, "email"},
		{"not a uuid", "user.registered", strings.Replace(user(""), `0b7e4a52-`, `0b7e4a52_`, 1),
			`user.registered: field "id": "0b7e4a52_3f7c-4d8e-9a61-2c5d8f1e7b90" is not a UUID`, "id"},
		{"bad timestamp", "user.registered", strings.Replace(user(""), `"created_at": 0`, `"created_at": "yesterday"`, 1),
			`user.registered: field "created_at": "yesterday" is not an RFC 3339 timestamp (or an integer)`, "created_at"},
		{"timestamp without zone", "user.registered", strings.Replace(user(""), `"created_at": 0`, `"created_at": "2026-01-01T00:00:00"`, 1),
			`user.registered: field "created_at": "2026-01-01T00:00:00" is not an RFC 3339 timestamp (or an integer)`, "created_at"},
		{"sub-millisecond", "user.registered", strings.Replace(user(""), `"created_at": 0`, `"created_at": "2026-01-01T00:00:00.0001Z"`, 1),
			`user.registered: field "created_at": "2026-01-01T00:00:00.0001Z" has sub-millisecond precision`, "created_at"},
		{"fractional millis", "user.registered", strings.Replace(user(""), `"created_at": 0`, `"created_at": 1.5`, 1),
			`user.registered: field "created_at": number 1.5 is not an integer that fits 64 bits`, "created_at"},
		{"union mismatch", "user.registered", user(`, "referrer": 12`),
			`user.registered: field "referrer": got number 12, want one of null, string`, "referrer"},
		{"map value", "user.registered", user(`, "metadata": {"a": "x", "b": 1}`),
			`user.registered: field "metadata.b": got number 1, want string`, "metadata.b"},
		{"null for map", "user.registered", user(`, "metadata": null`),
			`user.registered: field "metadata": got null, want map`, "metadata"},
		{"int as string", "order.placed", strings.Replace(order(""), `"quantity": 2`, `"quantity": "2"`, 1),
			`order.placed: field "items[1].quantity": got string "2", want int`, "items[1].quantity"},
		{"int overflow", "order.placed", strings.Replace(order(""), `"quantity": 2`, `"quantity": 2147483648`, 1),
			`order.placed: field "items[1].quantity": number 2147483648 is not an integer that fits 32 bits`, "items[1].quantity"},
		{"decimal scale", "order.placed", strings.Replace(order(""), `"1.00"`, `"1.234"`, 1),
			`order.placed: field "amount": "1.234" has more than 2 digits after the decimal point`, "amount"},
		{"decimal precision", "order.placed", strings.Replace(order(""), `"1.00"`, `"12345678901.00"`, 1),
			`order.placed: field "amount": "12345678901.00" has more than 12 digits (precision 12)`, "amount"},
		{"decimal exponent", "order.placed", strings.Replace(order(""), `"1.00"`, `1e11`, 1),
			`order.placed: field "amount": "1e11" has more than 12 digits (precision 12)`, "amount"},
		{"decimal syntax", "order.placed", strings.Replace(order(""), `"1.00"`, `"1,00"`, 1),
			`order.placed: field "amount": "1,00" is not a decimal number`, "amount"},
		{"decimal as bool", "order.placed", strings.Replace(order(""), `"1.00"`, `true`, 1),
			`order.placed: field "amount": got true, want decimal(12,2)`, "amount"},
		{"base64", "order.placed", order(`, "signature": "not base64!"`),
			`order.placed: field "signature": not standard base64: illegal base64 data at input byte 3`, "signature"},
		{"array for record", "order.placed", strings.Replace(order(""), `{"sku": "A", "quantity": 1}`, `[]`, 1),
			`order.placed: field "items[0]": got an array, want fanout.example.LineItem`, "items[0]"},
		{"not json", "user.registered", `{"id": `,
			`user.registered: not valid JSON: unexpected EOF`, ""},
		{"trailing data", "user.registered", user("") + ` {}`,
			`user.registered: not valid JSON: data after the document`, ""},
		{"top-level array", "user.registered", `[]`,
			`user.registered: got an array, want fanout.example.UserRegistered`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, rec, err := c.EncodeJSON(context.Background(), tt.subject, []byte(tt.doc))
			if data != nil || rec != nil {
				t.Errorf("got output with the error: %x", data)
			}
			var ee *EncodeError
			if !errors.As(err, &ee) {
				t.Fatalf("got %v (%T), want an *EncodeError", err, err)
			}
			if err.Error() != tt.msg {
				t.Errorf("Error() =\n%s\nwant\n%s", err, tt.msg)
			}
			if ee.Subject != tt.subject || ee.Path != tt.path {
				t.Errorf("Subject %q Path %q, want %q %q", ee.Subject, ee.Path, tt.subject, tt.path)
			}
		})
	}

	t.Run("unknown subject", func(t *testing.T) {
		_, _, err := c.EncodeJSON(context.Background(), "user.deleted", []byte(`{}`))
		if !errors.Is(err, ErrUnknownSchema) {
			t.Fatalf("got %v, want ErrUnknownSchema", err)
		}
	})
}

// TestEncodeJSONBytes pins the Avro binary form of a few documents, so the
// encoder cannot drift together with the decoder.
func TestEncodeJSONBytes(t *testing.T) {
	c := testCodec(t)
	uuid := "48" + hex.EncodeToString([]byte("0b7e4a52-3f7c-4d8e-9a61-2c5d8f1e7b90"))
	tests := []struct {
		name, subject, doc, want string
	}{
		{"user defaults", "user.registered", "{" + validUser + "}",
			"0000000001" + uuid + "0a" + hex.EncodeToString([]byte("a@b.c")) + "0241" + "02" + "00" + "00" + "00"},
		{"user all", "user.registered", "{" + validUser + `, "referrer": "r", "metadata": {"b": "2", "a": "1"}}`,
			"0000000001" + uuid + "0a" + hex.EncodeToString([]byte("a@b.c")) + "0241" + "02" + "00" +
				"02" + "0272" + "04" + "0261" + "0231" + "0262" + "0232" + "00"},
		{"negative decimal", "order.placed", strings.Replace("{"+validOrder+"}", `"1.00"`, `"-1.28"`, 1), ""},
		{"list", "list", `{"v": -1, "next": {"v": 64}}`, "0000000004" + "01" + "02" + "8001" + "00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, _, err := c.EncodeJSON(context.Background(), tt.subject, []byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				// -128 scaled is a single 0x80 byte: length 1, then 80.
				if !strings.Contains(hex.EncodeToString(data), "0280"+"06455552") {
					t.Errorf("amount not encoded as 02 80: %x", data)
				}
				return
			}
			if got := hex.EncodeToString(data); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestDecimal(t *testing.T) {
	tests := []struct {
		in               string
		precision, scale int
		want             string // rendered; "" means an error
	}{
		{"0", 4, 2, "0.00"},
		{"-0", 4, 2, "0.00"},
		{"0.5", 4, 2, "0.50"},
		{"-0.07", 4, 2, "-0.07"},
		{"12.30", 4, 2, "12.30"},
		{"99.99", 4, 2, "99.99"},
		{"100", 4, 2, ""},
		{"1.230", 4, 2, "1.23"},
		{"1.235", 4, 2, ""},
		{"1e1", 4, 2, "10.00"},
		{"1E-2", 4, 2, "0.01"},
		{"123e-3", 4, 2, ""},
		{"0.000", 4, 2, "0.00"},
		{"000000012.5", 4, 2, "12.50"},
		{"-128", 3, 0, "-128"},
		{"127", 3, 0, "127"},
		{"-32768", 5, 0, "-32768"},
		{"99999999999999999999999999999999999999", 38, 0, "99999999999999999999999999999999999999"},
		{"-0.0000000001", 10, 10, "-0.0000000001"},
		{"", 4, 2, ""}, {"-", 4, 2, ""}, {".5", 4, 2, ""}, {"1.", 4, 2, ""}, {"+1", 4, 2, ""},
		{"1/2", 4, 2, ""}, {"0x10", 4, 2, ""}, {"1e99999", 4, 2, ""}, {"NaN", 4, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			b, msg := parseDecimal(tt.in, tt.precision, tt.scale)
			if tt.want == "" {
				if msg == "" {
					t.Fatalf("parsed to %x, want an error", b)
				}
				return
			}
			if msg != "" {
				t.Fatal(msg)
			}
			got, msg := decodeDecimal(b, tt.precision, tt.scale, decimalBytes(tt.precision))
			if msg != "" || got != tt.want {
				t.Fatalf("round trip: %q %s, want %q", got, msg, tt.want)
			}
		})
	}
}

// TestEncodeUnionBranch: a value takes the first branch it fits.
func TestEncodeUnionBranch(t *testing.T) {
	reg, err := NewLocal(fstest.MapFS{"u.avsc": {Data: []byte(`{"type":"record","name":"U","fields":[
		{"name":"u","type":["null","string","long","double",{"type":"array","items":"int"}]}]}`)}},
		map[string]int{"u": 1})
	if err != nil {
		t.Fatal(err)
	}
	c := NewCodec(reg)
	tests := []struct {
		value  string
		branch int
		json   string
	}{
		{`null`, 0, `null`},
		{`"x"`, 1, `"x"`},
		{`"NaN"`, 1, `"NaN"`},
		{`12`, 2, `12`},
		{`-9223372036854775808`, 2, `-9223372036854775808`},
		{`1.0`, 2, `1`},
		{`1.5`, 3, `1.5`},
		{`1e300`, 3, `1e+300`},
		{`[1, 2]`, 4, `[1,2]`},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			data, rec, err := c.EncodeJSON(context.Background(), "u", []byte(`{"u":`+tt.value+`}`))
			if err != nil {
				t.Fatal(err)
			}
			if got := int(data[5] >> 1); got != tt.branch {
				t.Errorf("branch %d, want %d", got, tt.branch)
			}
			if want := `{"u":` + tt.json + `}`; string(rec.JSON) != want {
				t.Errorf("JSON %s, want %s", rec.JSON, want)
			}
		})
	}
	if _, _, err := c.EncodeJSON(context.Background(), "u", []byte(`{"u":{}}`)); err == nil ||
		err.Error() != `u: field "u": got an object, want one of null, string, long, double, array` {
		t.Errorf("object: %v", err)
	}
}
