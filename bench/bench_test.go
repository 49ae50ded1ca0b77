package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestZeroLatencySmoke runs the zero-latency scenario end to end at a tiny
// size — the built fanout binary, kfake, a real redis-server, a real HTTP
// target — and checks that the report is consistent with itself: every event
// arrived exactly once, and each ratio is computed from the numbers measured
// in the run, not from constants. Then, on the same broker, redis and binary,
// it does the same for a batched run (zero-latency-batched, max_events 16):
// every event arrived exactly once, in CloudEvents batches. It says nothing
// about speed.
func TestZeroLatencySmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e, err := newEnv(ctx, options{kafka: "kfake", runTimeout: time.Minute, compression: "snappy"}, t.Output())
	if err != nil {
		t.Fatal(err) // redis-server missing: `bash e2e/install.sh` (make test runs it)
	}
	defer e.close()
	rep := newReport(e)
	const n = 2000
	if err := zeroLatency(ctx, e, sizes{zeroN: n, rawHTTPN: n}, rep); err != nil {
		t.Fatal(err)
	}

	byRun := map[string]result{}
	for _, r := range rep.Results {
		byRun[r.Run] = r
	}
	fan, ok := byRun["unordered, dedupe on"]
	if !ok {
		t.Fatalf("no fanout result in %+v", rep.Results)
	}
	if fan.Events != n || fan.Delivered != n || fan.Duplicates != 0 {
		t.Errorf("fanout: %d events, %d delivered, %d duplicates; want %d, %d, 0", fan.Events, fan.Delivered, fan.Duplicates, n, n)
	}
	if fan.EventsPerSec <= 0 || fan.CPUSec <= 0 || fan.PeakRSSMiB <= 0 || fan.WallSec <= 0 {
		t.Errorf("fanout: rate %v, CPU %v s, RSS %v MiB, wall %v s: all must be measured", fan.EventsPerSec, fan.CPUSec, fan.PeakRSSMiB, fan.WallSec)
	}
	if !(0 < fan.P50ms && fan.P50ms <= fan.P99ms && fan.P99ms <= fan.P999ms) {
		t.Errorf("fanout latency p50 %v p99 %v p999 %v: want 0 < p50 ≤ p99 ≤ p999", fan.P50ms, fan.P99ms, fan.P999ms)
	}
	if want := fan.CPUSec / float64(fan.Delivered) * 1000; !near(fan.CPUSecPer1k, want) {
		t.Errorf("CPU s per 1k events %v, want %v", fan.CPUSecPer1k, want)
	}
	consume := byRun["raw consume (franz-go PollFetches)"]
	raw := byRun["raw HTTP (net/http, C=64)"]
	if consume.Delivered != n || raw.Delivered != n || consume.EventsPerSec <= 0 || raw.EventsPerSec <= 0 {
		t.Errorf("ceilings: raw consume %+v, raw HTTP %+v: want %d records each and a rate", consume, raw, n)
	}

	refs := map[string]float64{
		"≥ 0.5 × raw HTTP ceiling (C=64)": raw.EventsPerSec,
		"≥ 5,000 events/s per sink":       5000,
		"vs raw consume (no bar)":         consume.EventsPerSec,
	}
	if len(rep.Checks) != len(refs) {
		t.Fatalf("%d checks, want %d: %+v", len(rep.Checks), len(refs), rep.Checks)
	}
	for _, c := range rep.Checks {
		ref, ok := refs[c.Target]
		if !ok {
			t.Errorf("unexpected check %q", c.Target)
			continue
		}
		if c.Measured != fan.EventsPerSec || c.Reference != ref || !near(c.Ratio, fan.EventsPerSec/ref) {
			t.Errorf("check %q: measured %v ref %v ratio %v; want %v, %v, %v", c.Target, c.Measured, c.Reference, c.Ratio,
				fan.EventsPerSec, ref, fan.EventsPerSec/ref)
		}
		if c.Op == ">=" && c.Pass != (c.Ratio >= c.Bar) {
			t.Errorf("check %q: pass %v with ratio %v and bar %v", c.Target, c.Pass, c.Ratio, c.Bar)
		}
	}

	var md bytes.Buffer
	rep.writeMarkdown(&md)
	for _, want := range []string{"| zero-latency | unordered, dedupe on | api |", "raw HTTP ceiling", "kfake"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := rep.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	var back report
	if b, err := os.ReadFile(path); err != nil || json.Unmarshal(b, &back) != nil || len(back.Results) != len(rep.Results) {
		t.Errorf("JSON report does not read back: %v", err)
	}

	t.Run("batched", func(t *testing.T) {
		const maxEvents = 16
		nres, nchk := len(rep.Results), len(rep.Checks)
		// runFanout fails on an id that is no event of the batch (foreign),
		// on a request that is not a CloudEvents batch, and when not every
		// event arrived within the run timeout.
		if err := zeroLatencyBatched(maxEvents)(ctx, e, sizes{zeroN: n, rawHTTPN: n}, rep); err != nil {
			t.Fatal(err)
		}
		// The unbatched run and the raw HTTP ceiling come from the run above.
		if len(rep.Results) != nres+1 || len(rep.Checks) != nchk+2 {
			t.Fatalf("%d results and %d checks added, want 1 and 2: %+v %+v", len(rep.Results)-nres, len(rep.Checks)-nchk,
				rep.Results[nres:], rep.Checks[nchk:])
		}
		bat := rep.Results[nres]
		if bat.Scenario != "zero-latency-batched" || bat.Run != "unordered, dedupe on, batched (max_events 16)" || bat.Kind != "fanout" {
			t.Errorf("batched result labelled %q / %q / %q", bat.Scenario, bat.Run, bat.Kind)
		}
		if bat.Events != n || bat.Delivered != n || bat.Duplicates != 0 {
			t.Errorf("batched: %d events, %d delivered, %d duplicates; want %d, %d, 0", bat.Events, bat.Delivered, bat.Duplicates, n, n)
		}
		// No duplicates, so the batches held n elements in all.
		if bat.BatchMaxEvents != maxEvents || bat.Requests < (n+maxEvents-1)/maxEvents || bat.Requests > n ||
			int(math.Round(bat.EventsPerRequest*float64(bat.Requests))) != n || bat.EventsPerRequest > maxEvents {
			t.Errorf("batched: max_events %d, %d requests of %v events on average; want %d, %d events in ≤ %d per request",
				bat.BatchMaxEvents, bat.Requests, bat.EventsPerRequest, maxEvents, n, maxEvents)
		}
		if bat.EventsPerSec <= 0 || bat.CPUSec <= 0 || !(0 < bat.P50ms && bat.P50ms <= bat.P99ms && bat.P99ms <= bat.P999ms) {
			t.Errorf("batched: rate %v, CPU %v s, p50 %v p99 %v p999 %v: all must be measured", bat.EventsPerSec, bat.CPUSec, bat.P50ms, bat.P99ms, bat.P999ms)
		}
		refs := map[string]float64{
			"batched (max_events 16) vs raw HTTP ceiling (C=64, 1 event per request; no bar)": raw.EventsPerSec,
			"batched (max_events 16) vs unbatched (no bar)":                                   fan.EventsPerSec,
		}
		for _, c := range rep.Checks[nchk:] {
			ref, ok := refs[c.Target]
			if !ok {
				t.Errorf("unexpected check %q", c.Target)
				continue
			}
			if c.Op != "info" || c.Measured != bat.EventsPerSec || c.Reference != ref || !near(c.Ratio, bat.EventsPerSec/ref) {
				t.Errorf("check %q: %s, measured %v ref %v ratio %v; want info, %v, %v, %v", c.Target, c.Op, c.Measured, c.Reference, c.Ratio,
					bat.EventsPerSec, ref, bat.EventsPerSec/ref)
			}
		}
		var md bytes.Buffer
		rep.writeMarkdown(&md)
		if want := "| zero-latency-batched | unordered, dedupe on, batched (max_events 16) | api |"; !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	})
}

// TestTargetBatch posts CloudEvents batches to a target: each element counts
// as an arrival by its id, like a single request by its Idempotency-Key.
func TestTargetBatch(t *testing.T) {
	b := &batch{n: 5, prefix: "0badcafe-0001-4000-8000-", ts: make([]atomic.Int64, 5)}
	tg, err := startTarget(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.stop()
	post := func(contentType, key, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, tg.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	el := func(i int, id string) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"fanout/api","type":"user.registered","datacontenttype":"application/json","data":{"id":%q,"n":%d}}`, id, id, i)
	}
	const ct = "application/cloudevents-batch+json"
	post(ct, "batch-aaaa", "["+el(0, b.id(0))+","+el(1, b.id(1))+","+el(2, b.id(2))+"]")
	post(ct+"; charset=utf-8", "batch-bbbb", "["+el(2, b.id(2))+","+el(3, "0badcafe-0002-4000-8000-000000000003")+"]") // a dup and a foreign id
	post("application/json", b.id(3), `{"id":"whatever"}`)                                                             // per request: the key counts
	post(ct, b.id(4), `{"not":"an array"}`)                                                                            // unreadable batch: foreign, the key does not count
	if u, d, f := tg.unique.Load(), tg.dups.Load(), tg.foreignCount(); u != 4 || d != 1 || f != 2 {
		t.Errorf("unique %d, dups %d, foreign %d; want 4, 1, 2", u, d, f)
	}
	for i, want := range []bool{true, true, true, true, false} {
		if got := tg.arrivals[i].Load() != 0; got != want {
			t.Errorf("event %d arrived: %v, want %v", i, got, want)
		}
	}
	if r, bs, el := tg.requests.Load(), tg.batches.Load(), tg.batched.Load(); r != 4 || bs != 2 || el != 5 {
		t.Errorf("%d requests, %d batches of %d elements; want 4, 2, 5", r, bs, el)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestQuantile(t *testing.T) {
	sorted := make([]int64, 1000)
	for i := range sorted {
		sorted[i] = int64(i + 1)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}, {0, 1}} {
		if got := quantile(sorted, tc.q); got != tc.want {
			t.Errorf("quantile(1..1000, %v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile of nothing = %v", got)
	}
}

func TestBatchIDs(t *testing.T) {
	b := &batch{n: 1 << 20, prefix: "0badcafe-0001-4000-8000-"}
	for _, i := range []int{0, 1, 4095, 1<<20 - 1} {
		id := b.id(i)
		if len(id) != 36 {
			t.Fatalf("id %q is not a uuid", id)
		}
		if got, ok := b.index(id); !ok || got != i {
			t.Errorf("index(%q) = %d, %v; want %d", id, got, ok, i)
		}
	}
	for _, id := range []string{"", "0badcafe-0002-4000-8000-000000000001", b.prefix + "000000100000", b.prefix + "zzzzzzzzzzzz"} {
		if i, ok := b.index(id); ok {
			t.Errorf("index(%q) = %d, want not of the batch", id, i)
		}
	}
}
