package app

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/schemas/registrytest"
)

func TestTypeProblems(t *testing.T) {
	ok, old := registrytest.Serve(t, false), registrytest.Serve(t, true)
	tests := []struct {
		name, schemas, types, want string // want "": no problem
	}{
		{"subject", `{registry_url: "` + ok + `"}`, `[events-value, fanout.example.UserRegistered]`, ""},
		{"subject not registered", `{registry_url: "` + ok + `"}`, `[orders-value]`, `type "orders-value" is not a subject in the schema registry`},
		{"old registry", `{registry_url: "` + old + `"}`, `[events-value]`, `schemas.type_from: the schema registry cannot tell the subjects of a schema id`},
		{"old registry, record", `{registry_url: "` + old + `", type_from: record}`, `[fanout.example.OrderPlaced]`, ""},
		{"record under TopicNameStrategy", `{registry_url: "` + ok + `", type_from: record}`, `[fanout.example.OrderPlaced, fanout.example.UserRegistered]`, ""},
		{"record never registered", `{registry_url: "` + ok + `", type_from: record}`, `[fanout.example.UserDeleted]`,
			`sink "profile": type "fanout.example.UserDeleted" can never match under schemas.type_from: record`},
		{"local record", `{type_from: record}`, `[fanout.example.OrderPlaced]`, ""},
		{"local record unknown", `{type_from: record}`, `[fanout.example.UserDeleted]`,
			`sinks[0].types[0]: sink "profile": type "fanout.example.UserDeleted" is the full name of no record in the local schemas (fanout.example.OrderPlaced, fanout.example.UserRegistered)`},
		{"registry down", `{registry_url: "http://127.0.0.1:1"}`, `[events-value]`, ""}, // logged, records wait for it
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse("f.yaml", []byte("kafka: {brokers: [a:1], topic: events}\nschemas: "+tt.schemas+
				"\nsinks:\n  - {name: profile, url: \"https://x/\", types: "+tt.types+"}\n"), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range TypeProblems(context.Background(), cfg, nil, true, slog.New(slog.DiscardHandler)) {
				got = append(got, p.String())
			}
			if all := strings.Join(got, "\n"); tt.want == "" && all != "" || !strings.Contains(all, tt.want) {
				t.Errorf("problems:\n%s\nwant %q", all, tt.want)
			}
		})
	}
}

// TestOldRegistryWarns: without a types filter nothing is refused, but a
// registry that cannot tell the subjects of an id is named at start: the
// requests will carry no X-Fanout-Event-Type.
func TestOldRegistryWarns(t *testing.T) {
	for _, old := range []bool{true, false} {
		cfg, err := config.Parse("f.yaml", []byte("kafka: {brokers: [a:1], topic: events}\nschemas: {registry_url: \""+registrytest.Serve(t, old)+
			"\"}\nsinks:\n  - {name: profile, url: \"https://x/\"}\n"), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		if ps := TypeProblems(context.Background(), cfg, nil, true, slog.New(slog.NewTextHandler(&logs, nil))); len(ps) > 0 {
			t.Errorf("problems without types: %v", ps)
		}
		if warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "requests carry no X-Fanout-Event-Type"); warned != old {
			t.Errorf("old registry %v: warned %v:\n%s", old, warned, logs.String())
		}
	}
}
