package config

import (
	"errors"
	"strings"
	"testing"
)

// TestTypesUnderNaming: schemas.type_from is checked, and a sink's types
// that can never match under it are refused by the file alone, naming the
// sink and the type; the local default is unchanged.
func TestTypesUnderNaming(t *testing.T) {
	tests := []struct {
		name, schemas, types string
		want                 []string // "" = no problem
	}{
		{"local default", ``, `[user.registered, order.placed]`, nil},
		{"local unknown subject", ``, `[user.deleted]`, []string{`sinks[0].types[0]: "user.deleted" is not a known subject (schemas.subjects)`}},
		{"local record names", `{type_from: record}`, `[fanout.example.UserRegistered]`, nil},
		{"record: not a full name", `{type_from: record}`, `[user-registered]`,
			[]string{`sinks[0].types[0]: sink "profile": type "user-registered" is not an Avro full name`}},
		{"registry subjects", `{registry_url: "http://127.0.0.1:8081"}`, `[events-value, fanout.example.UserRegistered]`, nil},
		{"registry key subject", `{registry_url: "http://127.0.0.1:8081"}`, `[events-value, events-key]`,
			[]string{`sinks[0].types[1]: sink "profile": type "events-key" is a key subject and can never match`, `(with TopicNameStrategy "events-value")`}},
		{"bad type_from", `{type_from: subjects}`, `[]`, []string{`schemas.type_from: "subjects" is not subject or record`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := "kafka: {brokers: [a:1], topic: events}\n"
			if tt.schemas != "" {
				y += "schemas: " + tt.schemas + "\n"
			}
			y += "sinks:\n  - {name: profile, url: \"https://x/\", types: " + tt.types + "}\n"
			cfg, err := Parse("f.yaml", []byte(y), env(nil))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if tt.schemas == "" && cfg.Schemas.TypeFrom != TypeFromSubject {
					t.Errorf("type_from defaults to %q", cfg.Schemas.TypeFrom)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *config.Error, got %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q\n%s", w, err)
				}
			}
		})
	}
}
