package e2e

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The checker turns what a fault run recorded — the events as produced, every
// request each API saw, the sinks' tier and DLQ topics, the committed offsets
// sampled during the run and the faults injected — into a per-sink account,
// and the invariants fanout promises:
//
//   - lost = 0: every event is accepted by the API or parked on the DLQ;
//   - unexplained repeats = 0: an event reaches an API a second time only when
//     its first acceptance was in flight at a SIGKILL of the very instance
//     that sent it, or Redis lost its keys between the two;
//   - explained repeats stay under their bounds (what can be in flight at a
//     kill; what was delivered but uncommitted at a Redis restart);
//   - out of order = 0 for key and partition sinks: first acceptances per key
//     (resp. per partition) follow offset order;
//   - committed ahead = 0: no committed offset ever covered a record that had
//     not been accepted by the API or parked (tier or DLQ) by then.

// checkBounds are the scenario's knobs for explaining repeats.
type checkBounds struct {
	// KillSlack is how long before a SIGKILL a first acceptance may have been
	// answered and still count as "in flight" at the kill: the instance still
	// had to read the answer and write "done" to Redis. Default 1s.
	KillSlack time.Duration
}

type checkInput struct {
	Scenario      string
	Events        []producedEvent
	Sinks         []checkSink
	Kills         []killEvent
	Restarts      []redisRestart
	Lost          []lostEvent // "partitions revoked … committed=false" from the instances' logs (diagnostics only)
	Partitions    int
	Bounds        checkBounds
	MonitorErrors int
}

type checkSink struct {
	Name, Mode  string
	MaxInFlight int
	Requests    []faultRequest
	Parked      []*kgo.Record // the sink's tier and DLQ records
	DLQCount    int           // how many of Parked come from the DLQ topic
	Samples     []offsetSample
	TierSamples map[int][]offsetSample // tier → its group's committed offsets on the tier topic
	Rejects     func(id string) bool
}

// lostEvent is an instance logging that a sink's partitions were lost
// (OnPartitionsLost: in-flight deliveries cancelled, nothing committed).
type lostEvent struct {
	Inc, Sink string
	At        time.Time
}

// sinkReport is one sink's account. Bounds sit next to what was measured.
type sinkReport struct {
	Sink, Mode            string
	Produced, Requests    int
	Delivered, Lost       int
	DLQ, UnexpectedDLQ    int // events parked on the DLQ; those of them the API never rejected
	AcceptedAndDLQ        int
	Twice, Thrice         int // accepted ≥2 resp. ≥3 times
	KillExplained         int
	RedisExplained        int
	Unexplained           int
	KillBound, RedisBound int
	KillWhy, RedisWhy     string
	MaxKillGap            time.Duration // longest answered→SIGKILL among kill-explained repeats
	OutOfOrder, OrderSeen int
	OrderExcluded         int // partition mode: events that went through a retry tier
	OrderRedis            int // key mode: out of order while Redis lost the key's tier barriers (documented)
	OrderRedisBound       int // key mode: events that sat in a retry tier during a Redis restart
	CommittedAhead        int // (sample, partition) pairs whose committed offset covered an unsettled record
	Samples               int // offset samples taken
	SamplePairs           int // (sample, partition) pairs checked
	Tiered                int // events that went through a retry tier
	TraceBad, BodyBad     int
	Unknown               int // accepted keys that no produced event has
	UnexplainedAtLost     int // unexplained repeats whose first acceptance was in flight when its instance lost the sink's partitions
	Examples              []string
}

type coord struct {
	p int32
	o int64
}

type park struct {
	at        time.Time // first parked anywhere
	tierAt    time.Time // first parked in a retry tier
	class     string    // fanout-error-class of that first tier park
	dlq, tier bool
}

// slot is one record of a partition the checker follows for committed-ahead:
// its offset, event id and when it was settled (zero: never).
type slot struct {
	off    int64
	id     string
	settle time.Time
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// countAhead adds to rep every (sample, partition) pair whose committed
// offset covered a record of byPart not yet settled at the sample's time.
func countAhead(rep *sinkReport, label string, byPart map[int32][]slot, samples []offsetSample, example func(string, ...any)) {
	never := time.Unix(1<<40, 0)
	prefMax := map[int32][]time.Time{}
	for p, ss := range byPart {
		sort.Slice(ss, func(i, j int) bool { return ss[i].off < ss[j].off })
		pm := make([]time.Time, len(ss))
		var m time.Time
		for i, s := range ss {
			t := s.settle
			if t.IsZero() {
				t = never
			}
			if t.After(m) {
				m = t
			}
			pm[i] = m
		}
		prefMax[p] = pm
	}
	for _, smp := range samples {
		for p, c := range smp.Off {
			rep.SamplePairs++
			ss := byPart[p]
			n := sort.Search(len(ss), func(i int) bool { return ss[i].off >= c })
			if n == 0 || !prefMax[p][n-1].After(smp.At) {
				continue
			}
			rep.CommittedAhead++
			for _, s := range ss[:n] {
				if s.settle.IsZero() || s.settle.After(smp.At) {
					when := "was never accepted nor parked"
					if !s.settle.IsZero() {
						when = "was accepted or parked only at " + clock(s.settle)
					}
					example("AHEAD %sp%d committed %d by %s, but offset %d (%s) %s", label, p, c, clock(smp.At), s.off, s.id, when)
					break
				}
			}
		}
	}
}

// runChecker computes every sink's report.
func runChecker(in checkInput) []sinkReport {
	slack := in.Bounds.KillSlack
	if slack == 0 {
		slack = time.Second
	}
	idx := make(map[string]int, len(in.Events))
	for i, e := range in.Events {
		idx[e.ID] = i
	}
	var out []sinkReport
	for _, cs := range in.Sinks {
		rep := sinkReport{Sink: cs.Name, Mode: cs.Mode, Produced: len(in.Events), Requests: len(cs.Requests), Samples: len(cs.Samples)}
		shown := map[string]int{}
		example := func(format string, args ...any) { // up to 3 per kind (the first word)
			kind, _, _ := strings.Cut(format, " ")
			if shown[kind]++; shown[kind] <= 3 {
				rep.Examples = append(rep.Examples, fmt.Sprintf(format, args...))
			}
		}
		accs := map[string][]faultRequest{} // in arrival order (Seq)
		for _, r := range cs.Requests {
			if r.Accepted {
				accs[r.Key] = append(accs[r.Key], r)
			}
		}
		for k := range accs {
			if _, ok := idx[k]; !ok {
				rep.Unknown++
			}
		}
		// Parked copies (tiers and DLQ): by event id for the delivery account,
		// and by the original coordinates their fanout-original-* headers
		// carry, with their produce timestamps, for committed-ahead.
		parked := map[string]park{}
		parkedAt := map[coord]time.Time{}
		for _, r := range cs.Parked {
			id := header(r, "event-id")
			p := parked[id]
			isDLQ := strings.HasSuffix(r.Topic, ".dlq")
			if p.at.IsZero() || r.Timestamp.Before(p.at) {
				p.at = r.Timestamp
			}
			p.dlq = p.dlq || isDLQ
			p.tier = p.tier || !isDLQ
			if !isDLQ && (p.tierAt.IsZero() || r.Timestamp.Before(p.tierAt)) {
				p.tierAt, p.class = r.Timestamp, header(r, "fanout-error-class")
			}
			parked[id] = p
			part, perr := strconv.Atoi(header(r, "fanout-original-partition"))
			off, oerr := strconv.ParseInt(header(r, "fanout-original-offset"), 10, 64)
			if perr != nil || oerr != nil {
				example("PARKED record %s/%d@%d of %s has no original coordinates", r.Topic, r.Partition, r.Offset, id)
				continue
			}
			c := coord{int32(part), off}
			if t, ok := parkedAt[c]; !ok || r.Timestamp.Before(t) {
				parkedAt[c] = r.Timestamp
			}
			if i, ok := idx[id]; ok && (in.Events[i].Partition != c.p || in.Events[i].Offset != c.o) {
				example("PARKED %s says original p%d@%d, produced at p%d@%d", id, c.p, c.o, in.Events[i].Partition, in.Events[i].Offset)
			}
		}

		for _, p := range parked {
			if p.tier {
				rep.Tiered++
			}
		}

		// Lost, delivered, DLQ, repeats.
		for _, e := range in.Events {
			a := accs[e.ID]
			p := parked[e.ID]
			rejected := cs.Rejects != nil && cs.Rejects(e.ID)
			if p.dlq {
				rep.DLQ++
				if !rejected {
					rep.UnexpectedDLQ++
					example("DEAD-LETTERED %s (p%d@%d), though the API never rejects it", e.ID, e.Partition, e.Offset)
				}
			}
			if len(a) == 0 {
				if !p.dlq {
					rep.Lost++
					example("LOST %s (p%d@%d key %s): never accepted, not on the DLQ", e.ID, e.Partition, e.Offset, e.Key)
				}
				continue
			}
			rep.Delivered++
			if p.dlq {
				rep.AcceptedAndDLQ++
			}
			if a[0].Trace != e.Trace {
				rep.TraceBad++
			}
			if a[0].BodyHash != e.BodyHash {
				rep.BodyBad++
			}
			if len(a) < 2 {
				continue
			}
			rep.Twice++
			if len(a) > 2 {
				rep.Thrice++
			}
			byKill, byRedis, explained := false, false, true
			for j := 1; j < len(a); j++ {
				prev, next := a[j-1], a[j]
				// Redis first: when keys were lost between the two, the
				// repeat needs no kill to explain it, and a kill shortly after
				// a restart would otherwise claim repeats that only the lost
				// keys allowed (its in-flight bound would not hold them).
				if redisExplains(in.Restarts, prev, next) {
					byRedis = true
				} else if ok, gap := killExplains(in.Kills, prev, next, slack); ok {
					byKill = true
					rep.MaxKillGap = max(rep.MaxKillGap, gap)
				} else {
					explained = false
					why := ""
					if l, ok := lostDuring(in.Lost, cs.Name, prev); ok {
						rep.UnexplainedAtLost++
						why = fmt.Sprintf("; %s lost the sink's partitions at %s while it was in flight (OnPartitionsLost cancels in-flight deliveries)", l.Inc, clock(l.At))
					}
					example("REPEAT %s (p%d@%d): accepted at %s from %s (answered %s), again at %s from %s; no SIGKILL of %s around it, no Redis restart between%s",
						e.ID, e.Partition, e.Offset, clock(prev.Arrived), prev.Instance, clock(prev.Answered), clock(next.Arrived), next.Instance, prev.Instance, why)
				}
			}
			switch {
			case !explained:
				rep.Unexplained++
			case byRedis:
				rep.RedisExplained++
			case byKill:
				rep.KillExplained++
			}
		}
		for id, p := range parked {
			if _, ok := idx[id]; !ok && p.dlq {
				example("DLQ holds %s, which was never produced", id)
			}
		}

		// Bounds on explained repeats.
		capFor, capWhat := cs.MaxInFlight, "max_in_flight"
		if cs.Mode == "partition" {
			capFor, capWhat = in.Partitions, "partitions (one in flight each)"
		}
		rep.KillBound = len(in.Kills) * capFor
		rep.KillWhy = fmt.Sprintf("%d kills × %d %s", len(in.Kills), capFor, capWhat)
		rep.RedisBound, rep.RedisWhy = redisBound(in, cs, accs)

		// Order: first acceptances per partition (partition) or per key (key).
		if cs.Mode == "partition" || cs.Mode == "key" {
			type first struct {
				seq int
				e   producedEvent
			}
			var firsts []first
			for _, e := range in.Events {
				a := accs[e.ID]
				if len(a) == 0 {
					continue
				}
				if parked[e.ID].tier && cs.Mode == "partition" {
					rep.OrderExcluded++ // partition mode: a tiered record arrives after later ones, by design
					continue
				}
				firsts = append(firsts, first{a[0].Seq, e})
			}
			sort.Slice(firsts, func(i, j int) bool { return firsts[i].seq < firsts[j].seq })
			maxOff := map[string]int64{}
			maxID := map[string]string{}
			for _, f := range firsts {
				g := fmt.Sprintf("p%d", f.e.Partition)
				if cs.Mode == "key" {
					g += "/" + f.e.Key
				}
				rep.OrderSeen++
				if m, ok := maxOff[g]; ok && f.e.Offset < m {
					rep.OutOfOrder++
					p := parked[f.e.ID]
					how := "never parked"
					if p.tier {
						how = fmt.Sprintf("parked in a tier at %s (%s)", clock(p.tierAt), p.class)
					}
					if cs.Mode == "key" && inTierAtRestart(in.Restarts, p, accs[f.e.ID][0]) {
						// Documented: the per-key tier barriers live in Redis;
						// losing them lets a key's later events pass one in a tier.
						rep.OrderRedis++
						how += "; Redis lost the key's tier barrier while it was there"
					}
					example("ORDER %s: %s (offset %d) first accepted at %s, after %s (offset %d); it was %s", g, f.e.ID, f.e.Offset,
						clock(accs[f.e.ID][0].Arrived), maxID[g], m, how)
					continue
				}
				maxOff[g], maxID[g] = f.e.Offset, f.e.ID
			}
			if cs.Mode == "key" {
				for _, e := range in.Events {
					if a := accs[e.ID]; len(a) > 0 && inTierAtRestart(in.Restarts, parked[e.ID], a[0]) {
						rep.OrderRedisBound++
					}
				}
			}
		}

		// Committed ahead of delivery: settle time of each record = when it was
		// first accepted or first parked (tier or DLQ), whichever came first.
		byPart := map[int32][]slot{}
		for _, e := range in.Events {
			s := slot{off: e.Offset, id: e.ID}
			if a := accs[e.ID]; len(a) > 0 {
				s.settle = a[0].Arrived
			}
			if at, ok := parkedAt[coord{e.Partition, e.Offset}]; ok && (s.settle.IsZero() || at.Before(s.settle)) {
				s.settle = at
			}
			byPart[e.Partition] = append(byPart[e.Partition], s)
		}
		countAhead(&rep, "", byPart, cs.Samples, example)

		// The tier groups: a tier record is settled once its event is
		// accepted after it was parked there (at once if the event was
		// accepted before: the tier finds it done), or once the event is
		// parked again (the next tier, the DLQ, or behind its key).
		parksOf := map[string][]time.Time{}
		for _, r := range cs.Parked {
			id := header(r, "event-id")
			parksOf[id] = append(parksOf[id], r.Timestamp)
		}
		for tier, samples := range cs.TierSamples {
			byPart := map[int32][]slot{}
			for _, r := range cs.Parked {
				if strings.HasSuffix(r.Topic, ".dlq") || header(r, "fanout-tier") != strconv.Itoa(tier) {
					continue
				}
				id := header(r, "event-id")
				s := slot{off: r.Offset, id: id}
				settle := func(t time.Time) {
					if s.settle.IsZero() || t.Before(s.settle) {
						s.settle = t
					}
				}
				for _, a := range accs[id] {
					settle(latest(a.Arrived, r.Timestamp))
				}
				for _, t := range parksOf[id] {
					if t.After(r.Timestamp) {
						settle(t)
					}
				}
				byPart[r.Partition] = append(byPart[r.Partition], s)
			}
			countAhead(&rep, fmt.Sprintf("tier %d ", tier), byPart, samples, example)
		}
		out = append(out, rep)
	}
	return out
}

// killExplains reports whether prev was in flight at a SIGKILL of the
// incarnation that sent it (it arrived at most slack after the process was
// gone — a request written just before the kill can be read by the API's
// handler a moment after it, the bytes being on the wire already — and was
// answered at most slack before the signal), and next came from another one.
func killExplains(kills []killEvent, prev, next faultRequest, slack time.Duration) (bool, time.Duration) {
	for _, k := range kills {
		if k.Inc != prev.Instance || next.Instance == prev.Instance || prev.Arrived.After(k.Dead.Add(slack)) {
			continue
		}
		if prev.Answered.IsZero() || !prev.Answered.Before(k.Sent.Add(-slack)) {
			gap := time.Duration(0)
			if !prev.Answered.IsZero() {
				gap = max(k.Sent.Sub(prev.Answered), 0)
			}
			return true, gap
		}
	}
	return false, 0
}

// inTierAtRestart reports whether an event sat in a retry tier while Redis
// restarted: parked there before Redis was back, first accepted after it stopped.
func inTierAtRestart(rs []redisRestart, p park, first faultRequest) bool {
	if !p.tier {
		return false
	}
	for _, r := range rs {
		if !p.tierAt.After(r.Ready) && !first.Arrived.Before(r.Stop) {
			return true
		}
	}
	return false
}

// lostDuring finds a partitions-lost event of sink on prev's instance while
// prev was being answered.
func lostDuring(lost []lostEvent, sink string, prev faultRequest) (lostEvent, bool) {
	for _, l := range lost {
		if l.Sink == sink && l.Inc == prev.Instance && !l.At.Before(prev.Arrived) &&
			(prev.Answered.IsZero() || !l.At.After(prev.Answered.Add(100*time.Millisecond))) {
			return l, true
		}
	}
	return lostEvent{}, false
}

// redisExplains reports whether Redis lost its keys between prev and next.
func redisExplains(rs []redisRestart, prev, next faultRequest) bool {
	for _, r := range rs {
		if !prev.Arrived.After(r.Ready) && !next.Arrived.Before(r.Stop) {
			return true
		}
	}
	return false
}

// redisBound is what a Redis restart can let through twice: per restart,
// the events at or past the group's committed offset when Redis stopped (the
// last sample before it) that had been accepted by the time Redis was back.
// Only those can be fetched again (by a new owner after a kill or rebalance)
// while their "done" keys are gone; anything accepted later is marked done
// in the new Redis, anything committed is never fetched again.
func redisBound(in checkInput, cs checkSink, accs map[string][]faultRequest) (int, string) {
	if len(in.Restarts) == 0 {
		return 0, "no Redis restart"
	}
	total := 0
	var parts []string
	for _, r := range in.Restarts {
		var committed map[int32]int64
		for _, s := range cs.Samples {
			if s.At.After(r.Stop) {
				break
			}
			committed = s.Off
		}
		n := 0
		for _, e := range in.Events {
			if a := accs[e.ID]; len(a) > 0 && e.Offset >= committed[e.Partition] && !a[0].Arrived.After(r.Ready) {
				n++
			}
		}
		total += n
		parts = append(parts, strconv.Itoa(n))
	}
	return total, "delivered but uncommitted at the restarts: " + strings.Join(parts, "+")
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format("15:04:05.000")
}

// formatReport renders the per-sink table, each bound next to its measure.
func formatReport(in checkInput, reps []sinkReport, timeline []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "== checker: %s — %d events on %d partitions; %d SIGKILL, %d Redis restarts; monitor errors %d\n",
		in.Scenario, len(in.Events), in.Partitions, len(in.Kills), len(in.Restarts), in.MonitorErrors)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "sink\tmode\tdelivered\tlost\tdead-lettered\ttwice\texplained by kill\texplained by redis\tunexplained\tout of order\tcommitted ahead (sample × partition)\t")
	for _, r := range reps {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d (bound 0)\t%d (unexpected %d)\t%d\t%d (bound %d = %s)\t%d (bound %d = %s)\t%d (bound 0)\t%s\t%d of %d (bound 0)\t\n",
			r.Sink, r.Mode, r.Delivered, r.Produced, r.Lost, r.DLQ, r.UnexpectedDLQ, r.Twice,
			r.KillExplained, r.KillBound, r.KillWhy, r.RedisExplained, r.RedisBound, r.RedisWhy, r.Unexplained,
			orderCell(r), r.CommittedAhead, r.SamplePairs)
	}
	tw.Flush()
	for _, r := range reps {
		fmt.Fprintf(&b, "  %s: %d requests; %d offset samples; %d events through a retry tier; accepted ≥3 times %d; accepted and dead-lettered %d; unknown keys %d; trace mismatches %d; body mismatches %d; longest answered→SIGKILL among kill-explained %s; unexplained repeats in flight at a partitions-lost %d\n",
			r.Sink, r.Requests, r.Samples, r.Tiered, r.Thrice, r.AcceptedAndDLQ, r.Unknown, r.TraceBad, r.BodyBad, r.MaxKillGap.Round(time.Millisecond), r.UnexplainedAtLost)
		for _, ex := range r.Examples {
			fmt.Fprintf(&b, "    %s\n", ex)
		}
	}
	if len(timeline) > 0 {
		b.WriteString("  timeline:\n")
		for _, l := range timeline {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	return b.String()
}

func orderCell(r sinkReport) string {
	if r.Mode == "unordered" {
		return "n/a (unordered)"
	}
	s := fmt.Sprintf("%d of %d (bound 0)", r.OutOfOrder, r.OrderSeen)
	if r.OrderRedis > 0 || r.OrderRedisBound > 0 {
		s = fmt.Sprintf("%d of %d: %d while Redis lost the tier barriers (bound %d = in a tier at a restart), %d other (bound 0)",
			r.OutOfOrder, r.OrderSeen, r.OrderRedis, r.OrderRedisBound, r.OutOfOrder-r.OrderRedis)
	}
	if r.OrderExcluded > 0 {
		s += fmt.Sprintf(", %d tiered excluded", r.OrderExcluded)
	}
	return s
}

// appendMarkdownReport appends the table to $FANOUT_FAULT_REPORT, if set (for
// docs/reliability.md).
func appendMarkdownReport(t *testing.T, in checkInput, reps []sinkReport, took time.Duration) {
	path := os.Getenv("FANOUT_FAULT_REPORT")
	if path == "" {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n#### %s — %s, %.0fs\n\n%d events, %d partitions, %d SIGKILL, %d Redis restarts\n\n",
		in.Scenario, t.Name(), took.Seconds(), len(in.Events), in.Partitions, len(in.Kills), len(in.Restarts))
	b.WriteString("| sink | mode | delivered | lost | dead-lettered | twice | explained by kill (bound) | explained by Redis (bound) | unexplained | out of order | committed ahead (sample × partition) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range reps {
		fmt.Fprintf(&b, "| %s | %s | %d/%d | %d (bound 0) | %d | %d | %d (bound %d = %s) | %d (bound %d = %s) | %d (bound 0) | %s | %d of %d (bound 0) |\n",
			r.Sink, r.Mode, r.Delivered, r.Produced, r.Lost, r.DLQ, r.Twice, r.KillExplained, r.KillBound, r.KillWhy,
			r.RedisExplained, r.RedisBound, r.RedisWhy, r.Unexplained, orderCell(r), r.CommittedAhead, r.SamplePairs)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Logf("FANOUT_FAULT_REPORT: %v", err)
		return
	}
	defer f.Close()
	f.WriteString(b.String())
}

// assertReport fails the test for every broken invariant or exceeded bound.
func assertReport(t *testing.T, reps []sinkReport) {
	t.Helper()
	for _, r := range reps {
		fail := func(format string, args ...any) {
			t.Errorf("sink %s (%s): %s", r.Sink, r.Mode, fmt.Sprintf(format, args...))
		}
		if r.Lost > 0 {
			fail("%d events lost (neither accepted nor dead-lettered)", r.Lost)
		}
		if r.Unexplained > 0 {
			fail("%d events accepted twice without a SIGKILL or a Redis restart to explain it", r.Unexplained)
		}
		if r.KillExplained > r.KillBound {
			fail("%d repeats after SIGKILLs, bound %d (%s)", r.KillExplained, r.KillBound, r.KillWhy)
		}
		if r.RedisExplained > r.RedisBound {
			fail("%d repeats after Redis restarts, bound %d (%s)", r.RedisExplained, r.RedisBound, r.RedisWhy)
		}
		if r.UnexpectedDLQ > 0 {
			fail("%d events dead-lettered that the API never rejected", r.UnexpectedDLQ)
		}
		if (r.Mode == "key" || r.Mode == "partition") && r.OutOfOrder-r.OrderRedis > 0 {
			fail("%d events first accepted out of %s order", r.OutOfOrder-r.OrderRedis, r.Mode)
		}
		if r.OrderRedis > r.OrderRedisBound {
			fail("%d events out of key order after Redis lost the tier barriers, bound %d", r.OrderRedis, r.OrderRedisBound)
		}
		if r.CommittedAhead > 0 {
			fail("%d (sample, partition) pairs committed past a record not yet accepted or parked", r.CommittedAhead)
		}
		if r.TraceBad > 0 || r.BodyBad > 0 || r.Unknown > 0 {
			fail("%d trace mismatches, %d body mismatches, %d unknown keys", r.TraceBad, r.BodyBad, r.Unknown)
		}
		if r.SamplePairs == 0 {
			fail("the offset monitor took no sample: committed-ahead was not checked")
		}
	}
}

// The checker must be able to fail: each case breaks one invariant on a
// synthetic run (two partitions of three events) and expects exactly that count.
func TestFaultCheckerCatches(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	events := func() []producedEvent {
		var evs []producedEvent
		for i := range 6 {
			evs = append(evs, producedEvent{ID: eventID(i), Key: fmt.Sprintf("k%d", i%2), Trace: "t", Partition: int32(i % 2), Offset: int64(i / 2)})
		}
		return evs
	}
	// accept answers every event once, 10ms apart in produce order, from i1.1.
	accept := func(evs []producedEvent) []faultRequest {
		var rs []faultRequest
		for i, e := range evs {
			rs = append(rs, faultRequest{Seq: i, Key: e.ID, Instance: "i1.1", Trace: "t", Arrived: at(10 * i), Answered: at(10*i + 5), Status: 200, Accepted: true})
		}
		return rs
	}
	parkedRec := func(topic string, e producedEvent, ts time.Time) *kgo.Record {
		return &kgo.Record{Topic: topic, Timestamp: ts, Headers: []kgo.RecordHeader{
			{Key: "event-id", Value: []byte(e.ID)},
			{Key: "fanout-original-partition", Value: []byte(strconv.Itoa(int(e.Partition)))},
			{Key: "fanout-original-offset", Value: []byte(strconv.FormatInt(e.Offset, 10))},
		}}
	}
	// tierRec is e parked in tier 1 at ts, at offset off of the tier topic's partition 0.
	tierRec := func(e producedEvent, ts time.Time, off int64) *kgo.Record {
		r := parkedRec("x.retry.1", e, ts)
		r.Offset = off
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "fanout-tier", Value: []byte("1")})
		return r
	}
	final := offsetSample{At: at(1000), Off: map[int32]int64{0: 3, 1: 3}}
	for _, tc := range []struct {
		name  string
		edit  func(in *checkInput)
		check func(r sinkReport) bool
	}{
		{"clean", func(*checkInput) {}, func(r sinkReport) bool {
			return r.Lost+r.Twice+r.OutOfOrder+r.CommittedAhead+r.DLQ == 0 && r.Delivered == 6
		}},
		{"lost", func(in *checkInput) { in.Sinks[0].Requests = in.Sinks[0].Requests[:5] }, func(r sinkReport) bool {
			return r.Lost == 1 && r.CommittedAhead == 1 // the final commit covers the lost one
		}},
		{"dead-lettered is not lost", func(in *checkInput) {
			in.Sinks[0].Requests = in.Sinks[0].Requests[:5]
			in.Sinks[0].Parked = []*kgo.Record{parkedRec("x.dlq", in.Events[5], at(60))}
			in.Sinks[0].Rejects = func(id string) bool { return id == eventID(5) }
		}, func(r sinkReport) bool {
			return r.Lost == 0 && r.DLQ == 1 && r.UnexpectedDLQ == 0 && r.CommittedAhead == 0
		}},
		{"unexpected dead letter", func(in *checkInput) {
			in.Sinks[0].Requests = in.Sinks[0].Requests[:5]
			in.Sinks[0].Parked = []*kgo.Record{parkedRec("x.dlq", in.Events[5], at(60))}
		}, func(r sinkReport) bool { return r.Lost == 0 && r.UnexpectedDLQ == 1 }},
		{"repeat after a SIGKILL of the sender", func(in *checkInput) {
			in.Kills = []killEvent{{Inc: "i1.1", Sent: at(56), Dead: at(57)}}
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(5), Instance: "i2.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
		}, func(r sinkReport) bool { return r.Twice == 1 && r.KillExplained == 1 && r.Unexplained == 0 }},
		{"repeat of a request the API read just after its sender died", func(in *checkInput) {
			in.Kills = []killEvent{{Inc: "i1.1", Sent: at(49), Dead: at(49)}} // p1@2 arrives at 50, answered at 55
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(5), Instance: "i2.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
		}, func(r sinkReport) bool { return r.Twice == 1 && r.KillExplained == 1 && r.Unexplained == 0 }},
		{"request arriving long after its sender died is not the kill's", func(in *checkInput) {
			in.Kills = []killEvent{{Inc: "i1.1", Sent: at(-3000), Dead: at(-3000)}}
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(5), Instance: "i2.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
		}, func(r sinkReport) bool { return r.Unexplained == 1 }},
		{"repeat long after the answer is not the kill's", func(in *checkInput) {
			in.Kills = []killEvent{{Inc: "i1.1", Sent: at(5000), Dead: at(5001)}}
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(0), Instance: "i2.1", Trace: "t", Arrived: at(6000), Answered: at(6001), Status: 200, Accepted: true})
		}, func(r sinkReport) bool { return r.Unexplained == 1 }},
		{"repeat from the same live instance", func(in *checkInput) {
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(2), Instance: "i1.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
		}, func(r sinkReport) bool { return r.Unexplained == 1 }},
		{"repeat across a Redis restart", func(in *checkInput) {
			in.Restarts = []redisRestart{{Stop: at(70), Ready: at(80)}}
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(2), Instance: "i2.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
			in.Sinks[0].Samples = append([]offsetSample{{At: at(15), Off: map[int32]int64{0: 1, 1: 0}}}, in.Sinks[0].Samples...)
		}, func(r sinkReport) bool { return r.RedisExplained == 1 && r.RedisBound == 5 && r.Unexplained == 0 }},
		{"out of order within a partition", func(in *checkInput) {
			rs := in.Sinks[0].Requests
			rs[0].Seq, rs[2].Seq = rs[2].Seq, rs[0].Seq // p0@1 first accepted before p0@0
		}, func(r sinkReport) bool { return r.OutOfOrder == 1 }},
		{"key order lost with the tier barriers in Redis", func(in *checkInput) {
			in.Sinks[0].Mode = "key"
			rs := in.Sinks[0].Requests
			in.Sinks[0].Parked = []*kgo.Record{parkedRec("x.retry.1", in.Events[0], at(2))} // p0@0 (k0) parked in a tier
			rs[0].Seq, rs[0].Arrived = 99, at(300)                                          // … and back after p0@1
			in.Restarts = []redisRestart{{Stop: at(100), Ready: at(110)}}
		}, func(r sinkReport) bool { return r.OutOfOrder == 1 && r.OrderRedis == 1 && r.OrderRedisBound == 1 }},
		{"key order lost without a Redis restart", func(in *checkInput) {
			in.Sinks[0].Mode = "key"
			rs := in.Sinks[0].Requests
			in.Sinks[0].Parked = []*kgo.Record{parkedRec("x.retry.1", in.Events[0], at(2))}
			rs[0].Seq, rs[0].Arrived = 99, at(300)
		}, func(r sinkReport) bool { return r.OutOfOrder == 1 && r.OrderRedis == 0 }},
		{"committed before the API accepted", func(in *checkInput) {
			in.Sinks[0].Samples = append([]offsetSample{{At: at(25), Off: map[int32]int64{0: 3}}}, in.Sinks[0].Samples...)
		}, func(r sinkReport) bool { return r.CommittedAhead == 1 }},
		{"committed once parked in a tier", func(in *checkInput) {
			in.Sinks[0].Requests[4].Arrived = at(500) // p0@2 delivered late, from the tier
			in.Sinks[0].Parked = []*kgo.Record{parkedRec("x.retry.1", in.Events[4], at(30))}
			in.Sinks[0].Samples = append([]offsetSample{{At: at(45), Off: map[int32]int64{0: 3}}}, in.Sinks[0].Samples...)
		}, func(r sinkReport) bool { return r.CommittedAhead == 0 && r.Tiered == 1 && r.Lost == 0 }},
		{"tier group committed once its record was delivered", func(in *checkInput) {
			in.Sinks[0].Requests[4].Arrived = at(500)
			in.Sinks[0].Parked = []*kgo.Record{tierRec(in.Events[4], at(30), 0)}
			in.Sinks[0].TierSamples = map[int][]offsetSample{1: {{At: at(400), Off: map[int32]int64{}}, {At: at(600), Off: map[int32]int64{0: 1}}}}
		}, func(r sinkReport) bool { return r.CommittedAhead == 0 && r.Lost == 0 }},
		{"tier group committed before its record was delivered", func(in *checkInput) {
			in.Sinks[0].Requests[4].Arrived = at(500)
			in.Sinks[0].Parked = []*kgo.Record{tierRec(in.Events[4], at(30), 0)}
			in.Sinks[0].TierSamples = map[int][]offsetSample{1: {{At: at(400), Off: map[int32]int64{0: 1}}}}
		}, func(r sinkReport) bool { return r.CommittedAhead == 1 }},
		{"tier group committed once its record was parked again", func(in *checkInput) {
			in.Sinks[0].Requests = slices.Delete(in.Sinks[0].Requests, 4, 5)
			in.Sinks[0].Parked = []*kgo.Record{tierRec(in.Events[4], at(30), 0), parkedRec("x.dlq", in.Events[4], at(300))}
			in.Sinks[0].Rejects = func(id string) bool { return id == eventID(4) }
			in.Sinks[0].TierSamples = map[int][]offsetSample{1: {{At: at(400), Off: map[int32]int64{0: 1}}}}
		}, func(r sinkReport) bool { return r.CommittedAhead == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := events()
			in := checkInput{Scenario: tc.name, Events: evs, Partitions: 2, Sinks: []checkSink{{Name: "s", Mode: "partition", MaxInFlight: 4,
				Requests: accept(evs), Samples: []offsetSample{final}}}}
			tc.edit(&in)
			r := runChecker(in)[0]
			if !tc.check(r) {
				t.Errorf("checker said %+v\n%s", r, formatReport(in, []sinkReport{r}, nil))
			}
		})
	}
}
