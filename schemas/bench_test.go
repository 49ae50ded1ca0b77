package schemas

import (
	"context"
	"os"
	"strings"
	"testing"
)

var benchInputs = []string{"user.registered--full", "order.placed--basic"}

func BenchmarkDecode(b *testing.B) {
	c := testCodec(b)
	encoded := encodeGolden(b, c)
	ctx := context.Background()
	for _, name := range benchInputs {
		b.Run(name, func(b *testing.B) {
			data := encoded[name]
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Decode(ctx, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeJSON(b *testing.B) {
	c := testCodec(b)
	ctx := context.Background()
	for _, name := range benchInputs {
		b.Run(name, func(b *testing.B) {
			subject, _, _ := strings.Cut(name, "--")
			doc, err := os.ReadFile("testdata/" + name + ".input.json")
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.EncodeJSON(ctx, subject, doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
