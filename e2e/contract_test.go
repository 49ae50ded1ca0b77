package e2e

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// The delivery contract, one set of assertions over every way an event
// reaches an API: single requests and CloudEvents batches, delivered by
// `fanout run` (the sink's group) and by `fanout replay` (a bounded range).
// The API (a sinktest.API) answers per event: most 200 at once, some 503 on
// the first attempt only, some 422 always. The contract:
//   - every event the API will take is accepted exactly once, with its body
//     as emitted; no refused event is ever accepted;
//   - a 503 is retried (two attempts, no more); a 422 is never retried and
//     its event is parked on the DLQ once, with status 422, class permanent;
//   - the API sees no attempt beyond those.
func TestContract(t *testing.T) {
	const n = 1200
	modes := []struct{ name, extra string }{
		{"single", "ordering: unordered\nmax_in_flight: 32"},
		{"batched", "ordering: unordered\nmax_in_flight: 64\nbatch: {max_events: 16}"},
	}
	runners := []struct {
		name    string
		deliver func(s *scenario, api *target, good []string)
	}{
		{"run", func(s *scenario, api *target, good []string) {
			p := s.start()
			s.waitDone(3*time.Minute, map[string]*target{"api": api}, map[string][]string{"api": good})
			p.term(s.t)
		}},
		{"replay", func(s *scenario, api *target, good []string) {
			code, sum, stderr := s.replay("--sink", "api", "--from-time", "7d", "--bypass-dedupe")
			if sum.InRange != n || sum.Remaining != 0 || sum.Sent != n {
				s.t.Fatalf("replay: exit %d, %+v\n%s", code, sum, stderr)
			}
		}},
	}
	for _, m := range modes {
		for _, r := range runners {
			t.Run(m.name+"/"+r.name, func(t *testing.T) {
				s := newScenario(t, "contract-"+m.name+"-"+r.name, n)
				refused, flaky := map[string]bool{}, map[string]bool{}
				var good []string
				for i, id := range s.ids {
					switch i % 10 {
					case 7:
						refused[id] = true
					case 3:
						flaky[id] = true
						good = append(good, id)
					default:
						good = append(good, id)
					}
				}
				api := newTarget(t, time.Millisecond, func(id string, attempt int) int {
					switch {
					case refused[id]:
						return http.StatusUnprocessableEntity
					case flaky[id] && attempt == 1:
						return http.StatusServiceUnavailable
					}
					return http.StatusOK
				})
				s.writeConfig(sinkSpec{name: "api", target: api, extra: m.extra +
					"\nretry: {attempts: 5, backoff_base: 5ms, backoff_cap: 50ms}"})
				s.emitAll()
				r.deliver(s, api, good)
				checkContract(t, s, api, good, refused, flaky)
			})
		}
	}
}

// checkContract asserts the delivery contract of TestContract on what the
// API recorded and what the sink "api" parked.
func checkContract(t *testing.T, s *scenario, api *target, good []string, refused, flaky map[string]bool) {
	t.Helper()
	checkAccepted(t, "api", api, good, 0)
	dead, wrong := map[string]int{}, 0
	for _, d := range s.dlqList("api") {
		dead[d.EventID]++
		if !refused[d.EventID] || d.Status != http.StatusUnprocessableEntity || d.Class != "permanent" {
			if wrong++; wrong <= 3 {
				t.Errorf("dead letter %+v: want only the 422 events, class permanent", d)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d dead letters are not 422s of refused events", wrong)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	var attempts, want int
	bad := 0
	for _, id := range s.ids {
		n, w := api.attempts[id], 1
		switch {
		case refused[id]:
			if dead[id] != 1 {
				t.Errorf("refused event %s dead-lettered %d times, want once", id, dead[id])
			}
		case flaky[id]:
			w = 2
		}
		if n != w {
			if bad++; bad <= 5 {
				t.Errorf("event %s: %d attempts, want %d", id, n, w)
			}
		}
		if !refused[id] && !bytes.Equal(api.bodies[id], s.bodies[id]) {
			if bad++; bad <= 5 {
				t.Errorf("event %s arrived with body %s, want %s", id, api.bodies[id], s.bodies[id])
			}
		}
		attempts += n
		want += w
	}
	if bad > 0 || attempts != want {
		t.Errorf("%d events broke the contract; the API saw %d attempts, the answers ask for %d", bad, attempts, want)
	}
}
