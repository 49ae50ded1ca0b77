package main

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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

// TestRunRefusesTypesThatCannotMatch: fanout run asks the registry and
// refuses, naming sink and type, a types entry no event can have under
// schemas.type_from; the brokers are never reached.
func TestRunRefusesTypesThatCannotMatch(t *testing.T) {
	url := startRegistry(t, false)
	cfg := writeFile(t, `kafka: {brokers: [127.0.0.1:1], topic: events}
schemas: {registry_url: "`+url+`"}
sinks:
  - {name: profile, url: "http://127.0.0.1:8081/users", types: [events-value]}
  - {name: email, url: "http://127.0.0.1:8081/mail", types: [user.registered]}
`)
	code, _, stderr := runCLI(t, "run", "-c", cfg)
	want := `sinks[1].types[0]: sink "email": type "user.registered" is not a subject in the schema registry, so it can never match under schemas.type_from: subject (with TopicNameStrategy the type is "events-value"`
	if code != 2 || !strings.Contains(stderr, want) || strings.Contains(stderr, "sinks[0]") {
		t.Fatalf("exit %d, want 2 and\n%s\ngot:\n%s", code, want, stderr)
	}
	// --sinks leaves the other sink's types out of the check.
	if _, _, stderr := runCLI(t, "run", "-c", cfg, "--sinks", "profile"); strings.Contains(stderr, "types[") {
		t.Errorf("--sinks profile: %s", stderr)
	}
}

// TestValidateRecordTypes: validate, offline, checks record names against
// the local schemas.
func TestValidateRecordTypes(t *testing.T) {
	cfg := writeFile(t, `kafka: {brokers: [127.0.0.1:9092], topic: events}
schemas: {type_from: record}
sinks:
  - {name: profile, url: "http://127.0.0.1:8081/users", types: [fanout.example.UserRegistered, fanout.example.Nope]}
`)
	code, _, stderr := runCLI(t, "validate", "-c", cfg)
	if code != 2 || !strings.Contains(stderr, `sinks[0].types[1]: sink "profile": type "fanout.example.Nope" is the full name of no record`) || strings.Contains(stderr, "types[0]") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
}
