package main

import (
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/schemas/registrytest"
)

func TestRunRefusesTypesThatCannotMatch(t *testing.T) {
	url := registrytest.Serve(t, false)
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
