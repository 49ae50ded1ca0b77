package e2e

import (
	"hash/fnv"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/tracing/otlptest"
)

// One trace per event, from `fanout emit` through Kafka into the API call,
// exported by the real binaries over OTLP/HTTP to a real receiver: the send
// span is the root, the process span its child, one client span per attempt
// the process span's children, and the traceparent the API received names
// the attempt that it answered.
func TestSpansFollowEachEvent(t *testing.T) {
	const n = 300
	s := newScenario(t, "spans", n)
	rcv, err := otlptest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	// Every tenth event is refused once (503), so it has two attempts.
	flaky := func(id string) bool { h := fnv.New32a(); h.Write([]byte(id)); return h.Sum32()%10 == 0 }
	api := newTarget(t, 0, func(id string, attempt int) int {
		if attempt == 1 && flaky(id) {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s.writeConfig(sinkSpec{name: "profile", target: api, extra: "ordering: unordered\nretry: {attempts: 3, backoff_base: 5ms, backoff_cap: 20ms}"})
	f, err := os.OpenFile(s.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("tracing:\n  otlp_endpoint: " + rcv.URL + "\n  service_name: fanout-e2e\n")
	f.Close()

	s.emitAll() // exits after flushing its send spans
	p := s.start()
	s.waitDone(2*time.Minute, map[string]*target{"profile": api}, map[string][]string{"profile": s.ids})
	p.term(t) // flushes the rest
	checkAccepted(t, "profile", api, s.ids, 0)
	if bad := rcv.Problems(); len(bad) > 0 {
		t.Fatalf("the receiver could not read %d exports: %v", len(bad), bad)
	}

	spans := rcv.Spans()
	byID := map[string]otlptest.Span{}
	for _, sp := range spans {
		byID[sp.SpanID] = sp
		if sp.Service != "fanout-e2e" {
			t.Fatalf("span %s from service %q, want fanout-e2e", sp.Name, sp.Service)
		}
	}
	process := map[string][]otlptest.Span{}  // event id → process spans
	attempts := map[string][]otlptest.Span{} // process span id → client spans
	for _, sp := range spans {
		switch sp.Kind {
		case "consumer":
			process[sp.Attrs["messaging.message.id"]] = append(process[sp.Attrs["messaging.message.id"]], sp)
		case "client":
			attempts[sp.ParentSpanID] = append(attempts[sp.ParentSpanID], sp)
		}
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	problems := 0
	fail := func(format string, args ...any) {
		if problems++; problems <= 5 {
			t.Errorf(format, args...)
		}
	}
	for _, id := range s.ids {
		ps := process[id]
		if len(ps) != 1 {
			fail("event %s: %d process spans, want 1", id, len(ps))
			continue
		}
		proc := ps[0]
		send, ok := byID[proc.ParentSpanID]
		switch {
		case proc.Name != "process "+s.topic || proc.Attrs["messaging.system"] != "kafka" || proc.Attrs["fanout.sink"] != "profile" || proc.Attrs["fanout.outcome"] != "done":
			fail("event %s: process span %+v", id, proc)
		case !ok || send.Kind != "producer" || send.Name != "send "+s.topic || send.ParentSpanID != "" || send.TraceID != proc.TraceID:
			fail("event %s: process span's parent %+v (found %v), want the root send span of its trace", id, send, ok)
		}
		as := attempts[proc.SpanID]
		want := 1
		if flaky(id) {
			want = 2
		}
		if len(as) != want {
			fail("event %s: %d client spans under its process span, want %d", id, len(as), want)
			continue
		}
		var last otlptest.Span
		for _, a := range as {
			if a.TraceID != proc.TraceID || a.Name != "POST" || a.Attrs["url.full"] != api.URL {
				fail("event %s: client span %+v", id, a)
			}
			switch a.Attrs["http.response.status_code"] {
			case "200":
				last = a
				if want == 2 && a.Attrs["http.request.resend_count"] != "1" {
					fail("event %s: the retry's span has resend_count %q, want 1", id, a.Attrs["http.request.resend_count"])
				}
			case "503":
				if a.StatusCode != "error" || a.Attrs["error.type"] != "503" {
					fail("event %s: the refused attempt's span %+v, want error status and error.type 503", id, a)
				}
			default:
				fail("event %s: client span with status %q", id, a.Attrs["http.response.status_code"])
			}
		}
		// traceparent: 00-<trace id>-<parent span id>-<flags>
		tp := strings.Split(api.traces[id], "-")
		if len(tp) != 4 || tp[1] != proc.TraceID || tp[2] != last.SpanID {
			fail("event %s: the API got traceparent %q, want trace %s and parent %s (the attempt it answered)", id, api.traces[id], proc.TraceID, last.SpanID)
		}
	}
	if problems > 0 {
		t.Errorf("%d problems in %d spans", problems, len(spans))
	}
}
