package compose

import (
	"os/exec"
	"strings"
	"testing"
)

// The stack file is valid for docker-compose (Debian's 1.29, installed by
// e2e/install.sh), and it wires what the README promises.
func TestComposeFileValid(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose not found: run e2e/install.sh (apt-get install docker-compose)")
	}
	out, err := exec.Command(bin, "-f", "docker-compose.yml", "config").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	cfg := string(out)
	for _, want := range []string{"kafka:", "redis:", "jaeger:", "profile-api:", "email-api:", "analytics-api:",
		"fanout:", "dockerfile: compose/Dockerfile", "service_completed_successfully"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("resolved config lacks %q", want)
		}
	}
}

// A broken file is reported, so the test above can fail.
func TestComposeRejectsBrokenFile(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose not found: run e2e/install.sh")
	}
	cmd := exec.Command(bin, "-f", "-", "config")
	cmd.Stdin = strings.NewReader("services:\n  x:\n    image: [not, a, string]\n")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("docker-compose accepted a broken file:\n%s", out)
	}
}
