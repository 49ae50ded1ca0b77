package app

import (
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/schemas"
)

// startRegistry serves the Confluent endpoints run's type check reads:
// subjects events-value (versions 1: user.registered's schema, 2:
// order.placed's) and fanout.example.UserRegistered (id 1 again). With
// noVersions it predates GET /schemas/ids/{id}/versions.
func startRegistry(t *testing.T, noVersions bool) string {
	t.Helper()
	text := func(subject string) string {
		b, err := fs.ReadFile(schemas.Builtin(), subject+".avsc")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	byID := map[string]string{"1": text("user.registered"), "2": text("order.placed")}
	reply := func(w http.ResponseWriter, v any) { json.NewEncoder(w).Encode(v) }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /subjects", func(w http.ResponseWriter, r *http.Request) {
		reply(w, []string{"events-value", "fanout.example.UserRegistered"})
	})
	mux.HandleFunc("GET /subjects/events-value/versions", func(w http.ResponseWriter, r *http.Request) { reply(w, []int{1, 2}) })
	mux.HandleFunc("GET /subjects/{subject}/versions/{v}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("v")
		if id == "latest" {
			id = "1"
		}
		n := map[string]int{"1": 1, "2": 2}[id]
		reply(w, map[string]any{"subject": r.PathValue("subject"), "version": n, "id": n, "schema": byID[id]})
	})
	mux.HandleFunc("GET /schemas/ids/{id}/versions", func(w http.ResponseWriter, r *http.Request) {
		if noVersions {
			http.NotFound(w, r)
			return
		}
		reply(w, []map[string]any{{"subject": "events-value", "version": 1}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestTypeProblems(t *testing.T) {
	ok, old := startRegistry(t, false), startRegistry(t, true)
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
		cfg, err := config.Parse("f.yaml", []byte("kafka: {brokers: [a:1], topic: events}\nschemas: {registry_url: \""+startRegistry(t, old)+
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
