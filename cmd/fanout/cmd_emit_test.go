package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// emit through the command: a bad line is a usage error (exit 2) naming its
// line, after the lines before it were sent and counted; a file that does not
// open is a usage error too.
func TestEmitBadLineExit2(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := writeFile(t, `kafka: {brokers: [`+c.ListenAddrs()[0]+`], topic: events}
sinks:
  - {name: profile, url: "http://127.0.0.1:8081/users"}
`)
	good := `{"id":"11111111-1111-4111-8111-111111111111","email":"a@example.com","name":"A","plan":"PRO","created_at":"2026-12-04T10:00:00.000Z"}`
	events := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(events, []byte(good+"\n"+`{"id":"x"}`+"\n"+good+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, "emit", "-c", cfg, "--type", "user.registered", "--file", events)
	if code != 2 || !strings.Contains(stderr, "fanout emit: line 2: ") || out != "emitted 1 user.registered events to events\n" {
		t.Fatalf("bad line: exit %d, out %q, stderr %q", code, out, stderr)
	}
	code, out, stderr = runCLI(t, "emit", "-c", cfg, "--type", "user.registered", "--json", good)
	if code != 0 || out != "emitted 1 user.registered events to events\n" {
		t.Fatalf("--json: exit %d, out %q, stderr %q", code, out, stderr)
	}
	code, _, stderr = runCLI(t, "emit", "-c", cfg, "--type", "user.registered", "--file", "/does/not/exist.jsonl")
	if code != 2 || !strings.Contains(stderr, "no such file") {
		t.Fatalf("missing file: exit %d, stderr %q", code, stderr)
	}
}
