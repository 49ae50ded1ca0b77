package schemas

import (
	"context"
	"encoding/base64"
	"io/fs"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
)

// hamba's own codec is an independent implementation of the Avro binary
// format; these tests check that ours agrees with it in both directions.
// The config has limits and is private: hamba's DefaultConfig is left alone.
var hambaAPI = avro.Config{MaxByteSliceSize: 8 << 20, MaxSliceAllocSize: 1 << 20}.Freeze()

type userRegistered struct {
	ID        string            `avro:"id"`
	Email     string            `avro:"email"`
	Name      string            `avro:"name"`
	Plan      string            `avro:"plan"`
	CreatedAt time.Time         `avro:"created_at"`
	Referrer  *string           `avro:"referrer"`
	Metadata  map[string]string `avro:"metadata"`
}

type lineItem struct {
	SKU      string `avro:"sku"`
	Quantity int32  `avro:"quantity"`
}

type orderPlaced struct {
	ID        string     `avro:"id"`
	UserID    string     `avro:"user_id"`
	Amount    *big.Rat   `avro:"amount"`
	Currency  string     `avro:"currency"`
	Items     []lineItem `avro:"items"`
	PlacedAt  time.Time  `avro:"placed_at"`
	Coupon    *string    `avro:"coupon"`
	Signature *[]byte    `avro:"signature"`
}

func hambaSchema(t *testing.T, fsys fs.FS, subject string) avro.Schema {
	t.Helper()
	b, err := fs.ReadFile(fsys, subject+".avsc")
	if err != nil {
		t.Fatal(err)
	}
	s, err := avro.ParseBytesWithCache(b, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHambaWritesWeRead decodes what hamba encodes from Go structs.
func TestHambaWritesWeRead(t *testing.T) {
	c := testCodec(t)
	fsys := testFS(t)
	ref, sig := "https://example.org", []byte{0xde, 0xad, 0xbe, 0xef}
	at := time.Date(2026, 11, 27, 15, 4, 5, 123e6, time.UTC)
	tests := []struct {
		name    string
		subject string
		v       any
		want    string
	}{
		{"user", "user.registered", userRegistered{
			ID: "0b7e4a52-3f7c-4d8e-9a61-2c5d8f1e7b90", Email: "a@b.c", Name: "Zoë", Plan: "ENTERPRISE",
			CreatedAt: at, Referrer: &ref, Metadata: map[string]string{"b": "2", "a": "1"},
		}, `{"id":"0b7e4a52-3f7c-4d8e-9a61-2c5d8f1e7b90","email":"a@b.c","name":"Zoë","plan":"ENTERPRISE",` +
			`"created_at":"2026-11-27T15:04:05.123Z","referrer":"https://example.org","metadata":{"a":"1","b":"2"}}`},
		{"user nulls", "user.registered", userRegistered{
			ID: "0b7e4a52-3f7c-4d8e-9a61-2c5d8f1e7b90", Plan: "FREE", CreatedAt: at,
		}, `{"id":"0b7e4a52-3f7c-4d8e-9a61-2c5d8f1e7b90","email":"","name":"","plan":"FREE",` +
			`"created_at":"2026-11-27T15:04:05.123Z","referrer":null,"metadata":{}}`},
		{"order", "order.placed", orderPlaced{
			ID: "f47ac10b-58cc-4372-a567-0e02b2c3d479", UserID: "u", Amount: big.NewRat(-123450, 100), Currency: "EUR",
			Items:    []lineItem{{"A", 1}, {"B", -2}},
			PlacedAt: at, Signature: &sig,
		}, `{"id":"f47ac10b-58cc-4372-a567-0e02b2c3d479","user_id":"u","amount":"-1234.50","currency":"EUR",` +
			`"items":[{"sku":"A","quantity":1},{"sku":"B","quantity":-2}],"placed_at":"2026-11-27T15:04:05.123Z",` +
			`"coupon":null,"signature":"3q2+7w=="}`},
		{"order many items", "order.placed", orderPlaced{
			ID: "f47ac10b-58cc-4372-a567-0e02b2c3d479", Amount: big.NewRat(1, 100), Items: make([]lineItem, 250),
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload, err := hambaAPI.Marshal(hambaSchema(t, fsys, tt.subject), tt.v)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := c.Decode(context.Background(), frame(testSubjects[tt.subject], payload...))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" { // hamba writes 250 items in blocks of 100 with byte sizes
				if got := strings.Count(string(rec.JSON), `"sku"`); got != 250 {
					t.Errorf("%d items", got)
				}
				return
			}
			if string(rec.JSON) != tt.want {
				t.Errorf("got  %s\nwant %s", rec.JSON, tt.want)
			}
		})
	}
}

// TestWeWriteHambaReads decodes what EncodeJSON writes with hamba.
func TestWeWriteHambaReads(t *testing.T) {
	c := testCodec(t)
	fsys := testFS(t)
	for _, in := range goldenInputs(t) {
		t.Run(in.name, func(t *testing.T) {
			data, rec, err := c.EncodeJSON(context.Background(), in.subject, in.doc)
			if err != nil {
				t.Fatal(err)
			}
			schema := hambaSchema(t, fsys, in.subject)
			f := rec.Fields
			switch in.subject {
			case "user.registered":
				var u userRegistered
				if err := hambaAPI.Unmarshal(schema, data[5:], &u); err != nil {
					t.Fatal(err)
				}
				same(t, "id", u.ID, f["id"])
				same(t, "email", u.Email, f["email"])
				same(t, "name", u.Name, f["name"])
				same(t, "plan", u.Plan, f["plan"])
				same(t, "created_at", u.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z"), f["created_at"])
				same(t, "referrer", deref(u.Referrer), f["referrer"])
				for k, v := range u.Metadata {
					same(t, "metadata."+k, v, f["metadata"].(map[string]any)[k])
				}
				same(t, "len(metadata)", len(u.Metadata), len(f["metadata"].(map[string]any)))
			case "order.placed":
				var o orderPlaced
				if err := hambaAPI.Unmarshal(schema, data[5:], &o); err != nil {
					t.Fatal(err)
				}
				same(t, "amount", o.Amount.FloatString(2), f["amount"])
				same(t, "placed_at", o.PlacedAt.UTC().Format("2006-01-02T15:04:05.000Z"), f["placed_at"])
				same(t, "coupon", deref(o.Coupon), f["coupon"])
				if o.Signature != nil {
					same(t, "signature", base64.StdEncoding.EncodeToString(*o.Signature), f["signature"])
				} else {
					same(t, "signature", nil, f["signature"])
				}
				items := f["items"].([]any)
				same(t, "len(items)", len(o.Items), len(items))
				for i, it := range o.Items {
					m := items[i].(map[string]any)
					same(t, "items."+strconv.Itoa(i)+".sku", it.SKU, m["sku"])
					same(t, "items."+strconv.Itoa(i)+".quantity", int64(it.Quantity), m["quantity"])
				}
			default: // no struct: hamba must at least decode it
				var v any
				if err := hambaAPI.Unmarshal(schema, data[5:], &v); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func same(t *testing.T, what string, hamba, ours any) {
	t.Helper()
	if hamba != ours {
		t.Errorf("%s: hamba read %#v, we rendered %#v", what, hamba, ours)
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
