package schemas

import (
	"context"
	"os"
	"testing"
)

func TestRecordField(t *testing.T) {
	c := testCodec(t)
	decode := func(subject, file string) *Record {
		t.Helper()
		doc, err := os.ReadFile("testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		_, rec, err := c.EncodeJSON(context.Background(), subject, doc)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	order := decode("order.placed", "order.placed--basic.input.json")
	user := decode("user.registered", "user.registered--minimal.input.json")
	kitchen := decode("kitchen", "kitchen--all.input.json")
	edge := decode("kitchen", "kitchen--edge.input.json")
	tests := []struct {
		rec    *Record
		path   string
		want   string
		wantOK bool
	}{
		{order, "id", "f47ac10b-58cc-4372-a567-0e02b2c3d479", true},
		{order, "amount", "1234.50", true},
		{order, "placed_at", "2026-11-27T15:04:05.100Z", true},
		{order, "items.1.sku", "PEN-7", true},
		{order, "items.1.quantity", "2147483647", true},
		{order, "items.0", `{"quantity":2,"sku":"BOOK-42"}`, true},
		{order, "items.2.sku", "", false},
		{order, "items.-1", "", false},
		{order, "items.x", "", false},
		{order, "coupon", "WELCOME10", true},
		{order, "coupon.x", "", false},
		{order, "nope", "", false},
		{order, "", "", false},
		{user, "referrer", "", false},
		{user, "metadata", "{}", true},
		{user, "plan", "FREE", true},
		{kitchen, "d", "1000000000000000000000", true},
		{kitchen, "l", "9007199254740993", true},
		{kitchen, "b", "true", true},
		{kitchen, "multi.y", "-1", true},
		{kitchen, "grid.0.q", "", false},
		{kitchen, "withdef.when", "1970-01-01T00:00:00.000Z", true},
		{kitchen, "nothing", "[null,null]", true},
		{edge, "f", "NaN", true},
		{edge, "day", "-800000", true},
		{edge, "fxdec", "0.001", true},
	}
	for _, tt := range tests {
		t.Run(tt.rec.Subject+"/"+tt.path, func(t *testing.T) {
			got, ok := tt.rec.Field(tt.path)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Field(%q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	var nilRec *Record
	if _, ok := nilRec.Field("id"); ok {
		t.Error("nil record has a field")
	}
}
