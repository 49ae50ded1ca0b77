package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRegistryReferencesAuth: records whose schema references another
// subject (confluent-kafka's Python AvroSerializer registering Order under
// <topic>-value with a reference to the subject com.acme.Address), through
// a registry that requires basic auth, reach the API with the referenced
// record's fields rendered. fanout's password comes from ${VAR} and shows
// in none of its output; with a wrong password the records are held, not
// parked, and the refusal is logged without a password. Before references were resolved, every record was
// dead-lettered as an unsupported schema ("uses schema references").
func TestRegistryReferencesAuth(t *testing.T) {
	python := pythonClients(t)
	reg := newConfluentRegistry(t)
	reg.user, reg.pass = "sr-key", "SR-E2E-SECRET-4711"
	t.Setenv("FANOUT_E2E_SR_PASSWORD", reg.pass)
	const n = 200
	s := newScenario(t, "registryrefs", 0)
	if _, err := admin(t).CreateTopic(context.Background(), 3, 1, nil, s.topic); err != nil {
		t.Fatal(err)
	}
	args, _ := json.Marshal(map[string]any{"bootstrap": kafka.Addr, "registry": reg.URL, "user": reg.user, "password": reg.pass,
		"topic": s.topic, "n": n})
	out, err := exec.Command(python, "python/produce_avro_refs.py", string(args)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(n) {
		t.Fatalf("confluent-kafka producer: %v\n%s", err, out)
	}
	if got, want := reg.subjectList(), []string{"com.acme.Address", s.topic + "-value"}; !slices.Equal(got, want) {
		t.Fatalf("the producer registered subjects %q, want %q", got, want)
	}

	// A wrong password: the registry refuses, fanout says so without
	// either password, and holds the records (nothing delivered, parked
	// or committed) until it can read their schema.
	t.Setenv("FANOUT_E2E_SR_WRONG", "SR-E2E-WRONG-0815")
	s.top = fmt.Sprintf("schemas:\n  registry_url: %s\n  registry_auth: {username: %s, password: \"${FANOUT_E2E_SR_WRONG}\"}", reg.URL, reg.user)
	api := newTarget(t, 0, nil)
	s.writeConfig(sinkSpec{name: "orders", target: api})
	s.fanout("topics", "ensure", "-c", s.cfg, "--partitions", "3")
	p := s.start()
	waitFor(t, time.Minute, "fanout reports the refused credentials", func() (bool, string) {
		return strings.Contains(p.out.String(), "401 Unauthorized"), tail(p.out.String(), 3)
	})
	p.term(t)
	if out := p.out.String(); strings.Contains(out, "SR-E2E-WRONG-0815") || strings.Contains(out, reg.pass) ||
		!strings.Contains(out, "check schemas.registry_auth") || regexp.MustCompile(`parked=[1-9]`).MatchString(out) {
		t.Fatalf("run with a wrong registry password: want the refusal named, nothing parked, no password shown:\n%s", tail(out, 20))
	}
	if api.acceptedCount() != 0 {
		t.Fatalf("%d orders delivered without their schema", api.acceptedCount())
	}

	s.top = fmt.Sprintf("schemas:\n  registry_url: %s\n  registry_auth: {username: %s, password: \"${FANOUT_E2E_SR_PASSWORD}\"}", reg.URL, reg.user)
	s.writeConfig(sinkSpec{name: "orders", target: api})
	p = s.start()
	waitFor(t, 2*time.Minute, "every order delivered", func() (bool, string) {
		return api.acceptedCount() >= n, fmt.Sprintf("%d of %d", api.acceptedCount(), n)
	})
	waitFor(t, time.Minute, "orders committed the end offsets", func() (bool, string) { return s.committedAtEnd("orders") })
	p.term(t)

	bad := 0
	for i := range n {
		id := fmt.Sprintf("order-%06d", i)
		bill := "null"
		if i%2 == 0 {
			bill = fmt.Sprintf(`{"street":"Billing Rd %d","zip":%d}`, i, 20000+i)
		}
		want := fmt.Sprintf(`{"id":%q,"ship_to":{"street":"Main St %d","zip":%d},"bill_to":%s}`, id, i, 10000+i, bill)
		api.mu.Lock()
		got := string(api.bodies[id])
		api.mu.Unlock()
		if got != want {
			if bad++; bad <= 3 {
				t.Errorf("%s: body %s, want %s", id, got, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d bodies wrong", bad, n)
	}
	if out := p.out.String(); strings.Contains(out, reg.pass) {
		t.Errorf("fanout run printed the registry password")
	}
	// The referenced subject version was fetched once (cached).
	if got := reg.hits("/subjects/com.acme.Address/versions/1"); got > 2 { // the producer's one, fanout's one
		t.Errorf("GET /subjects/com.acme.Address/versions/1 served %d times, want at most 2", got)
	}
	// confluent-kafka 2.16's serializer asks GET /associations/... (a
	// newer Confluent API this registry does not serve, answering 404 as
	// an older one would); fanout asks nothing it does not serve.
	unknown := slices.DeleteFunc(reg.unknownRequests(), func(r string) bool { return strings.HasPrefix(r, "GET /associations/") })
	if len(unknown) > 0 {
		t.Errorf("requests the registry does not serve: %q", unknown)
	}
}
