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
// (every commit the broker logged, with its time) and the faults injected — into a per-sink account,
// and the invariants fanout promises:
//
//   - lost = 0: every event is accepted by the API or parked on the DLQ;
//   - unexplained repeats = 0: an event reaches an API a second time only
//     after one of three causes, each a recorded fact: the previous
//     acceptance's answer was lost (the API accepted, fanout never read the
//     answer: dropped, cut off, too slow for the attempt timeout, or the
//     client went away); the previous acceptance came from an incarnation
//     that was SIGKILLed while its claim was still pending (read from Redis
//     right after the kill), and the repeat came after the kill; or Redis
//     lost its data (a restart without persistence) between the two, and the
//     event's offset was not yet committed then;
//   - per kill at most max_in_flight (partition: one per partition) repeats;
//   - out of order = 0 for key and partition sinks: first acceptances per key
//     (resp. per partition) follow offset order; for key sinks, reorders on a
//     key that had an event in a retry tier when Redis lost data are allowed,
//     at most as many as such events;
//   - in flight at once = 1 per key (key) or per partition (partition) at
//     the API, from arrival and answer (or client-gone) times;
//   - committed ahead = 0: no committed offset ever covered a record that had
//     not been accepted by the API or parked (tier or DLQ) by then;
//   - committed offsets never move backward (no scenario resets a group).

type checkInput struct {
	Scenario   string
	Events     []producedEvent
	Sinks      []checkSink
	Kills      []killEvent
	Restarts   []redisRestart
	Lost       []lostEvent // "partitions revoked … committed=false" from the instances' logs (named in an unexplained repeat's example)
	Partitions int
}

type checkSink struct {
	Name, Mode  string
	MaxInFlight int
	Timeout     time.Duration // the sink's attempt timeout
	Requests    []faultRequest
	Parked      []*kgo.Record // the sink's tier and DLQ records (timestamps: the broker's append time)
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
	Sink, Mode         string
	Produced           int
	Delivered, Lost    int
	DLQ, UnexpectedDLQ int // events parked on the DLQ; those of them the API never rejected
	Twice              int // events accepted ≥2 times
	// Repeats (an acceptance after the first of its event) by cause.
	KillExplained, LostExplained, RedisExplained, Unexplained int
	LostAnswers                                               int           // accepted requests whose answer never reached fanout (recorded by the API)
	KillMax, KillCap                                          int           // most repeats one kill explains; its bound
	KillInFlight                                              time.Duration // longest arrival→SIGKILL among kill-explained repeats (measured)
	OutOfOrder, OrderSeen                                     int
	OrderExcluded                                             int // partition mode: events that went through a retry tier
	OrderRedis                                                int // key mode: out of order on a key that had an event in a tier when Redis lost data
	OrderRedisBound                                           int // key mode: events in a tier when Redis lost data
	InFlightOver                                              int // requests that arrived while another of their partition (key) was in flight
	CommittedAhead                                            int // commits that covered an unsettled record
	Backward                                                  int // commits below the partition's commit before
	SamplePairs                                               int // (commit, partition) pairs checked
	Tiered                                                    int // events that went through a retry tier
	TraceBad, BodyBad                                         int
	Unknown                                                   int // accepted or dead-lettered ids that no produced event has
	BadPark                                                   int // parked records without, or with wrong, original coordinates
	Examples                                                  []string
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

// countAhead adds to rep every commit (sample) whose offset covered a
// record of byPart not yet settled at the commit's time, and every commit
// below the same partition's commit before it.
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
	prev := map[int32]int64{}
	for _, smp := range samples {
		for p, c := range smp.Off {
			if b, ok := prev[p]; ok && c < b {
				rep.Backward++
				example("BACKWARD %sp%d committed %d at %s, %d before", label, p, c, clock(smp.At), b)
			}
			prev[p] = c
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

// committedBefore is the offset of partition p committed before t.
func committedBefore(samples []offsetSample, p int32, t time.Time) int64 {
	var c int64
	for _, s := range samples {
		if s.End.After(t) {
			break
		}
		if o, ok := s.Off[p]; ok {
			c = o
		}
	}
	return c
}

// runChecker computes every sink's report.
func runChecker(in checkInput) []sinkReport {
	idx := make(map[string]int, len(in.Events))
	for i, e := range in.Events {
		idx[e.ID] = i
	}
	var out []sinkReport
	for _, cs := range in.Sinks {
		rep := sinkReport{Sink: cs.Name, Mode: cs.Mode, Produced: len(in.Events)}
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
				if r.Lost {
					rep.LostAnswers++
				}
			}
		}
		for k := range accs {
			if _, ok := idx[k]; !ok {
				rep.Unknown++
				example("UNKNOWN %s accepted, never produced", k)
			}
		}
		// Parked copies (tiers and DLQ): by event id for the delivery account,
		// and by the original coordinates their fanout-original-* headers
		// carry, with their append times, for committed-ahead.
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
				rep.BadPark++
				example("PARKED record %s/%d@%d of %s has no original coordinates", r.Topic, r.Partition, r.Offset, id)
				continue
			}
			c := coord{int32(part), off}
			if t, ok := parkedAt[c]; !ok || r.Timestamp.Before(t) {
				parkedAt[c] = r.Timestamp
			}
			if i, ok := idx[id]; ok && (in.Events[i].Partition != c.p || in.Events[i].Offset != c.o) {
				rep.BadPark++
				example("PARKED %s says original p%d@%d, produced at p%d@%d", id, c.p, c.o, in.Events[i].Partition, in.Events[i].Offset)
			}
		}
		for id, p := range parked {
			if p.tier {
				rep.Tiered++
			}
			if _, ok := idx[id]; !ok {
				rep.Unknown++
				example("UNKNOWN %s parked, never produced", id)
			}
		}

		capFor := cs.MaxInFlight
		if cs.Mode == "partition" {
			capFor = in.Partitions
		}
		rep.KillCap = capFor
		perKill := make([]int, len(in.Kills))

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
			if a[0].Trace != e.Trace {
				rep.TraceBad++
			}
			if a[0].BodyHash != e.BodyHash {
				rep.BodyBad++
			}
			if len(a) > 1 {
				rep.Twice++
			}
			for j := 1; j < len(a); j++ {
				prev, next := a[j-1], a[j]
				if k := killExplains(cs.Name, in.Kills, prev, next); k >= 0 {
					rep.KillExplained++
					perKill[k]++
					rep.KillInFlight = max(rep.KillInFlight, in.Kills[k].Sent.Sub(prev.Arrived))
					continue
				}
				if prev.Lost {
					rep.LostExplained++
					continue
				}
				if redisExplains(in.Restarts, cs, e, p, prev, next) {
					rep.RedisExplained++
					continue
				}
				rep.Unexplained++
				why := ""
				if l, ok := lostDuring(in.Lost, cs.Name, prev); ok {
					why = fmt.Sprintf("; %s lost the sink's partitions at %s while it was in flight", l.Inc, clock(l.At))
				}
				lost := "not lost"
				if prev.Lost {
					lost = "lost"
				}
				example("REPEAT %s (p%d@%d): accepted at %s from %s (answered %s, answer %s), again at %s from %s; no SIGKILL of %s while its claim was pending, no Redis data loss before its commit%s",
					e.ID, e.Partition, e.Offset, clock(prev.Arrived), prev.Instance, clock(prev.Answered), lost, clock(next.Arrived), next.Instance, prev.Instance, why)
			}
		}
		for k, n := range perKill {
			rep.KillMax = max(rep.KillMax, n)
			if n > capFor {
				example("KILL of %s at %s explains %d repeats, more than %d in flight", in.Kills[k].Inc, clock(in.Kills[k].Sent), n, capFor)
			}
		}

		// Order: first acceptances per partition (partition) or per key (key).
		// A key that had an event in a retry tier when Redis lost data may
		// reorder (its tier barrier was lost): a later event of the key may
		// overtake while that event is still out, from the restart until it
		// is accepted; at most one reorder per such event.
		group := func(e producedEvent) string {
			g := fmt.Sprintf("p%d", e.Partition)
			if cs.Mode == "key" {
				g += "/" + e.Key
			}
			return g
		}
		type window struct{ from, to time.Time }
		redisKeys := map[string][]window{}
		if cs.Mode == "key" {
			for _, e := range in.Events {
				if a := accs[e.ID]; len(a) > 0 {
					if r, ok := inTierAtRestart(in.Restarts, parked[e.ID], a[0]); ok {
						rep.OrderRedisBound++
						redisKeys[group(e)] = append(redisKeys[group(e)], window{r.Stop, a[0].Arrived})
					}
				}
			}
		}
		barrierLost := func(g string, t time.Time) bool {
			for _, w := range redisKeys[g] {
				if !t.Before(w.from) && !t.After(w.to) {
					return true
				}
			}
			return false
		}
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
				g := group(f.e)
				rep.OrderSeen++
				if m, ok := maxOff[g]; ok && f.e.Offset < m {
					rep.OutOfOrder++
					if barrierLost(g, accs[maxID[g]][0].Arrived) {
						rep.OrderRedis++
						continue
					}
					p := parked[f.e.ID]
					how := "never parked"
					if p.tier {
						how = fmt.Sprintf("parked in a tier at %s (%s)", clock(p.tierAt), p.class)
					}
					example("ORDER %s: %s (offset %d) first accepted at %s, after %s (offset %d); it was %s", g, f.e.ID, f.e.Offset,
						clock(accs[f.e.ID][0].Arrived), maxID[g], m, how)
					continue
				}
				maxOff[g], maxID[g] = f.e.Offset, f.e.ID
			}
			if rep.OrderRedis > rep.OrderRedisBound {
				example("ORDER %d reorders on keys whose tier barrier Redis lost, more than the %d events in a tier then", rep.OrderRedis, rep.OrderRedisBound)
			}

			// In flight at the API: one request at a time per partition
			// (key). A request stops being in flight when it is answered,
			// or when its client went away (fanout gave up on it) — at the
			// latest one attempt timeout after it arrived: the attempt
			// began before the API read the request, and the API may notice
			// the closed connection a little later than fanout closed it. Events
			// that went through a retry tier are left out in partition mode
			// (the tier's consumer runs beside the partition's lane, by
			// design), and so are keys whose tier barrier Redis lost.
			type span struct {
				r   faultRequest
				end time.Time
			}
			spans := map[string][]span{}
			forever := time.Unix(1<<40, 0)
			for _, r := range cs.Requests {
				i, ok := idx[r.Key]
				if !ok {
					continue
				}
				e := in.Events[i]
				g := group(e)
				if (cs.Mode == "partition" && parked[e.ID].tier) || len(redisKeys[g]) > 0 {
					continue
				}
				end := r.Answered
				if end.IsZero() {
					end = forever
				}
				if !r.Gone.IsZero() && r.Gone.Before(end) {
					end = r.Gone
				}
				if t := r.Arrived.Add(cs.Timeout); cs.Timeout > 0 && t.Before(end) {
					end = t
				}
				spans[g] = append(spans[g], span{r, end})
			}
			for g, ss := range spans {
				sort.Slice(ss, func(i, j int) bool { return ss[i].r.Seq < ss[j].r.Seq })
				var busy span
				for _, s := range ss {
					// A retry of an event whose answer was lost proves fanout
					// gave up on the first request (the API may notice the
					// closed connection later than the retry arrives).
					retry := s.r.Key == busy.r.Key && busy.r.Lost
					if !busy.end.IsZero() && s.r.Arrived.Before(busy.end) && !retry {
						rep.InFlightOver++
						example("INFLIGHT %s: %s arrived at %s from %s while %s from %s (arrived %s) was in flight until %s",
							g, s.r.Key, clock(s.r.Arrived), s.r.Instance, busy.r.Key, busy.r.Instance, clock(busy.r.Arrived), clock(busy.end))
					}
					if s.end.After(busy.end) {
						busy = s
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

// killExplains returns the index of the SIGKILL that explains next as a
// repeat of prev, or -1: prev came from the killed incarnation, its claim
// was still pending right after the process was reaped (it was in flight,
// not marked done), and next arrived after the kill.
func killExplains(sink string, kills []killEvent, prev, next faultRequest) int {
	for i, k := range kills {
		if k.Inc == prev.Instance && k.Pending[sink][prev.Key] && next.Arrived.After(k.Sent) {
			return i
		}
	}
	return -1
}

// inTierAtRestart returns the restart during which an event sat in a retry
// tier while Redis lost its data: parked there before Redis was back, first
// accepted after it stopped.
func inTierAtRestart(rs []redisRestart, p park, first faultRequest) (redisRestart, bool) {
	if !p.tier {
		return redisRestart{}, false
	}
	for _, r := range rs {
		if r.Lost && !p.tierAt.After(r.Ready) && !first.Arrived.Before(r.Stop) {
			return r, true
		}
	}
	return redisRestart{}, false
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

// redisExplains reports whether Redis really lost e's "done" key between
// prev and next: a restart without persistence that ended after prev
// arrived and began before next arrived, while e was not committed yet (its
// offset at or past what was committed before the restart,
// or e went through a retry tier, whose group's commit is not followed per
// event). A committed event is never fetched again: losing its key allows
// no repeat.
func redisExplains(rs []redisRestart, cs checkSink, e producedEvent, p park, prev, next faultRequest) bool {
	for _, r := range rs {
		if r.Lost && !prev.Arrived.After(r.Ready) && !next.Arrived.Before(r.Stop) &&
			(p.tier || e.Offset >= committedBefore(cs.Samples, e.Partition, r.Stop)) {
			return true
		}
	}
	return false
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format("15:04:05.000")
}

// failed reports whether r breaks an invariant or a bound (assertReport's rules).
func (r sinkReport) failures() []string {
	var f []string
	add := func(format string, args ...any) { f = append(f, fmt.Sprintf(format, args...)) }
	if r.Lost > 0 {
		add("%d events lost (neither accepted nor dead-lettered)", r.Lost)
	}
	if r.Unexplained > 0 {
		add("%d repeats without a lost answer, a SIGKILL of the sender while its claim was pending, or a Redis data loss before the commit to explain them", r.Unexplained)
	}
	if r.KillMax > r.KillCap {
		add("one SIGKILL explains %d repeats, bound %d (what one instance has in flight)", r.KillMax, r.KillCap)
	}
	if r.UnexpectedDLQ > 0 {
		add("%d events dead-lettered that the API never rejected", r.UnexpectedDLQ)
	}
	if (r.Mode == "key" || r.Mode == "partition") && r.OutOfOrder-r.OrderRedis > 0 {
		add("%d events first accepted out of %s order", r.OutOfOrder-r.OrderRedis, r.Mode)
	}
	if r.OrderRedis > r.OrderRedisBound {
		add("%d events out of key order on keys whose tier barrier Redis lost, bound %d (events in a tier then)", r.OrderRedis, r.OrderRedisBound)
	}
	if r.InFlightOver > 0 {
		add("%d requests arrived while another of their %s was in flight at the API", r.InFlightOver, r.Mode)
	}
	if r.CommittedAhead > 0 {
		add("%d commits past a record not yet accepted or parked", r.CommittedAhead)
	}
	if r.Backward > 0 {
		add("%d commits moved a partition's committed offset backward", r.Backward)
	}
	if r.TraceBad > 0 || r.BodyBad > 0 || r.Unknown > 0 || r.BadPark > 0 {
		add("%d trace mismatches, %d body mismatches, %d unknown ids, %d parked records with wrong coordinates", r.TraceBad, r.BodyBad, r.Unknown, r.BadPark)
	}
	if r.SamplePairs == 0 {
		add("no offset commit found in __consumer_offsets: committed-ahead was not checked")
	}
	return f
}

func repeatCells(r sinkReport) (kill, lost, redis string) {
	kill = fmt.Sprintf("%d (≤ %d per kill: most %d)", r.KillExplained, r.KillCap, r.KillMax)
	if r.KillExplained > 0 {
		kill = fmt.Sprintf("%d (≤ %d per kill: most %d; arrived up to %s before the kill)", r.KillExplained, r.KillCap, r.KillMax, r.KillInFlight.Round(time.Millisecond))
	}
	return kill,
		fmt.Sprintf("%d (%d answers lost)", r.LostExplained, r.LostAnswers),
		strconv.Itoa(r.RedisExplained)
}

// formatReport renders the per-sink table, each bound next to its measure;
// the examples and the timeline only when something failed.
func formatReport(in checkInput, reps []sinkReport, timeline []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "== checker: %s — %d events on %d partitions; %d SIGKILL, %d Redis restarts\n",
		in.Scenario, len(in.Events), in.Partitions, len(in.Kills), len(in.Restarts))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "sink\tmode\tdelivered\tlost\tdead-lettered\ttwice\trepeats: kill\tlost answer\tRedis loss\tunexplained\tout of order\tin flight >1\tcommitted ahead (of commits)\tbackward\t")
	failed := false
	for _, r := range reps {
		k, l, rd := repeatCells(r)
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d (unexpected %d)\t%d\t%s\t%s\t%s\t%d\t%s\t%d\t%d of %d\t%d\t\n",
			r.Sink, r.Mode, r.Delivered, r.Produced, r.Lost, r.DLQ, r.UnexpectedDLQ, r.Twice,
			k, l, rd, r.Unexplained, orderCell(r), r.InFlightOver, r.CommittedAhead, r.SamplePairs, r.Backward)
		failed = failed || len(r.failures()) > 0
	}
	tw.Flush()
	if !failed {
		return b.String()
	}
	for _, r := range reps {
		for _, ex := range r.Examples {
			fmt.Fprintf(&b, "  %s: %s\n", r.Sink, ex)
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
	s := fmt.Sprintf("%d of %d", r.OutOfOrder, r.OrderSeen)
	if r.Mode == "key" && (r.OrderRedis > 0 || r.OrderRedisBound > 0) {
		s = fmt.Sprintf("%d of %d: %d on keys whose tier barrier Redis lost (bound %d events in a tier then), %d other",
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
	b.WriteString("| sink | mode | delivered | lost | dead-lettered | twice | repeats after a kill (bound per kill) | after a lost answer | after Redis data loss | unexplained | out of order | in flight >1 | committed ahead (of commits) | backward |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range reps {
		k, l, rd := repeatCells(r)
		fmt.Fprintf(&b, "| %s | %s | %d/%d | %d | %d | %d | %s | %s | %s | %d | %s | %d | %d of %d | %d |\n",
			r.Sink, r.Mode, r.Delivered, r.Produced, r.Lost, r.DLQ, r.Twice, k, l, rd, r.Unexplained, orderCell(r), r.InFlightOver, r.CommittedAhead, r.SamplePairs, r.Backward)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("FANOUT_FAULT_REPORT: %v", err)
		return
	}
	defer f.Close()
	f.WriteString(b.String())
}

// assertReport fails the test for every broken invariant or exceeded bound.
func assertReport(t *testing.T, reps []sinkReport) {
	t.Helper()
	for _, r := range reps {
		for _, f := range r.failures() {
			t.Errorf("sink %s (%s): %s", r.Sink, r.Mode, f)
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
	final := offsetSample{At: at(1000), End: at(1001), Off: map[int32]int64{0: 3, 1: 3}}
	for _, tc := range []struct {
		name  string
		edit  func(in *checkInput)
		check func(r sinkReport) bool
	}{
		{"clean", func(*checkInput) {}, func(r sinkReport) bool {
			return r.Lost+r.Twice+r.OutOfOrder+r.CommittedAhead+r.DLQ+r.InFlightOver+r.Backward == 0 && r.Delivered == 6 && len(r.failures()) == 0
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
		{"repeat after a SIGKILL of the sender, its claim pending", func(in *checkInput) {
			in.Kills = []killEvent{{Inc: "i1.1", Sent: at(56), Dead: at(57), Pending: map[string]map[string]bool{"s": {eventID(5): true}}}}
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(5), Instance: "i2.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
		}, func(r sinkReport) bool {
			return r.Twice == 1 && r.KillExplained == 1 && r.KillMax == 1 && r.Unexplained == 0
		}},
		{"repeat after a SIGKILL whose claim was already done", func(in *checkInput) {
			in.Kills = []killEvent{{Inc: "i1.1", Sent: at(56), Dead: at(57), Pending: map[string]map[string]bool{"s": {}}}}
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(5), Instance: "i2.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
		}, func(r sinkReport) bool { return r.KillExplained == 0 && r.Unexplained == 1 }},
		{"repeat before the SIGKILL is not the kill's", func(in *checkInput) {
			in.Kills = []killEvent{{Inc: "i1.1", Sent: at(200), Dead: at(201), Pending: map[string]map[string]bool{"s": {eventID(5): true}}}}
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(5), Instance: "i2.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
		}, func(r sinkReport) bool { return r.Unexplained == 1 }},
		{"repeat of another incarnation's request is not the kill's", func(in *checkInput) {
			in.Kills = []killEvent{{Inc: "i3.1", Sent: at(56), Dead: at(57), Pending: map[string]map[string]bool{"s": {eventID(5): true}}}}
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(5), Instance: "i2.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
		}, func(r sinkReport) bool { return r.Unexplained == 1 }},
		{"more repeats at one SIGKILL than can be in flight", func(in *checkInput) {
			pend := map[string]bool{eventID(3): true, eventID(4): true, eventID(5): true}
			in.Kills = []killEvent{{Inc: "i1.1", Sent: at(56), Dead: at(57), Pending: map[string]map[string]bool{"s": pend}}}
			for i, id := range []int{3, 4, 5} {
				in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6 + i, Key: eventID(id), Instance: "i2.1", Trace: "t", Arrived: at(100 + i), Answered: at(101 + i), Status: 200, Accepted: true})
			}
		}, func(r sinkReport) bool {
			return r.KillExplained == 3 && r.KillMax == 3 && r.KillCap == 2 && len(r.failures()) == 1
		}},
		{"repeat after a lost answer", func(in *checkInput) {
			in.Sinks[0].Requests[2].Lost = true
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(2), Instance: "i1.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
		}, func(r sinkReport) bool { return r.LostExplained == 1 && r.LostAnswers == 1 && r.Unexplained == 0 }},
		{"repeat from the same live instance", func(in *checkInput) {
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(2), Instance: "i1.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
		}, func(r sinkReport) bool { return r.Unexplained == 1 && len(r.failures()) == 1 }},
		{"repeat across a Redis restart that lost the data", func(in *checkInput) {
			in.Restarts = []redisRestart{{Stop: at(70), Ready: at(80), Lost: true}}
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(2), Instance: "i2.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
			in.Sinks[0].Samples = append([]offsetSample{{At: at(14), End: at(15), Off: map[int32]int64{0: 1, 1: 0}}}, in.Sinks[0].Samples...)
		}, func(r sinkReport) bool { return r.RedisExplained == 1 && r.Unexplained == 0 }},
		{"Redis restart that kept the data excuses nothing", func(in *checkInput) {
			in.Restarts = []redisRestart{{Stop: at(70), Ready: at(80)}}
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(2), Instance: "i2.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
		}, func(r sinkReport) bool { return r.RedisExplained == 0 && r.Unexplained == 1 }},
		{"Redis data loss excuses no event committed before it", func(in *checkInput) {
			in.Restarts = []redisRestart{{Stop: at(70), Ready: at(80), Lost: true}}
			in.Sinks[0].Requests = append(in.Sinks[0].Requests, faultRequest{Seq: 6, Key: eventID(2), Instance: "i2.1", Trace: "t", Arrived: at(100), Answered: at(101), Status: 200, Accepted: true})
			in.Sinks[0].Samples = append([]offsetSample{{At: at(60), End: at(61), Off: map[int32]int64{0: 2, 1: 0}}}, in.Sinks[0].Samples...) // p0@1 (event 2) committed
		}, func(r sinkReport) bool { return r.RedisExplained == 0 && r.Unexplained == 1 }},
		{"out of order within a partition", func(in *checkInput) {
			rs := in.Sinks[0].Requests
			rs[0].Seq, rs[2].Seq = rs[2].Seq, rs[0].Seq // p0@1 first accepted before p0@0
		}, func(r sinkReport) bool { return r.OutOfOrder == 1 }},
		{"key order lost with the tier barriers in Redis", func(in *checkInput) {
			in.Sinks[0].Mode = "key"
			rs := in.Sinks[0].Requests
			in.Sinks[0].Parked = []*kgo.Record{parkedRec("x.retry.1", in.Events[0], at(2))} // p0@0 (k0) parked in a tier
			rs[0].Seq, rs[0].Arrived = 99, at(300)                                          // … and back after p0@1
			in.Restarts = []redisRestart{{Stop: at(10), Ready: at(15), Lost: true}}
		}, func(r sinkReport) bool {
			return r.OutOfOrder == 1 && r.OrderRedis == 1 && r.OrderRedisBound == 1 && len(r.failures()) == 0
		}},
		{"key order lost without a Redis restart", func(in *checkInput) {
			in.Sinks[0].Mode = "key"
			rs := in.Sinks[0].Requests
			in.Sinks[0].Parked = []*kgo.Record{parkedRec("x.retry.1", in.Events[0], at(2))}
			rs[0].Seq, rs[0].Arrived = 99, at(300)
		}, func(r sinkReport) bool { return r.OutOfOrder == 1 && r.OrderRedis == 0 }},
		{"key order lost on a key that had nothing in a tier at the Redis loss", func(in *checkInput) {
			in.Sinks[0].Mode = "key"
			rs := in.Sinks[0].Requests
			in.Sinks[0].Parked = []*kgo.Record{parkedRec("x.retry.1", in.Events[0], at(2))} // k0 in a tier
			rs[0].Seq, rs[0].Arrived = 99, at(300)
			rs[1].Seq, rs[1].Arrived = 98, at(290) // p1@0 (k1) after p1@1: k1 had nothing in a tier
			in.Restarts = []redisRestart{{Stop: at(10), Ready: at(15), Lost: true}}
		}, func(r sinkReport) bool { return r.OutOfOrder == 2 && r.OrderRedis == 1 && len(r.failures()) == 1 }},
		{"more key reorders than events in a tier at the Redis loss", func(in *checkInput) {
			in.Sinks[0].Mode = "key"
			rs := in.Sinks[0].Requests
			in.Sinks[0].Parked = []*kgo.Record{parkedRec("x.retry.1", in.Events[0], at(2))} // only p0@0 in a tier
			rs[0].Seq, rs[0].Arrived = 99, at(300)                                          // k0: p0@2, then p0@1, then p0@0
			rs[2].Seq, rs[2].Arrived = 98, at(290)
			in.Restarts = []redisRestart{{Stop: at(10), Ready: at(15), Lost: true}}
		}, func(r sinkReport) bool { return r.OrderRedis == 2 && r.OrderRedisBound == 1 && len(r.failures()) == 1 }},
		{"key reorder after the event in a tier came back is not Redis's", func(in *checkInput) {
			in.Sinks[0].Mode = "key"
			rs := in.Sinks[0].Requests
			in.Sinks[0].Parked = []*kgo.Record{parkedRec("x.retry.1", in.Events[0], at(2))} // p0@0 in a tier at the restart, back at 25
			rs[0].Arrived = at(25)
			rs[2].Seq, rs[2].Arrived = 99, at(300) // p0@1 after p0@2 (accepted at 40, after p0@0 came back)
			in.Restarts = []redisRestart{{Stop: at(10), Ready: at(15), Lost: true}}
		}, func(r sinkReport) bool { return r.OutOfOrder == 1 && r.OrderRedis == 0 && len(r.failures()) == 1 }},
		{"two requests of one partition in flight at once", func(in *checkInput) {
			in.Sinks[0].Requests[0].Answered = at(25) // p0@0 still in flight when p0@1 arrives at 20
		}, func(r sinkReport) bool { return r.InFlightOver == 1 }},
		{"a request whose client went away is no longer in flight", func(in *checkInput) {
			in.Sinks[0].Requests[0].Answered, in.Sinks[0].Requests[0].Gone = at(25), at(15)
		}, func(r sinkReport) bool { return r.InFlightOver == 0 }},
		{"committed before the API accepted", func(in *checkInput) {
			in.Sinks[0].Samples = append([]offsetSample{{At: at(25), End: at(26), Off: map[int32]int64{0: 3}}}, in.Sinks[0].Samples...)
		}, func(r sinkReport) bool { return r.CommittedAhead == 1 }},
		{"committed ahead as of the sample's start", func(in *checkInput) {
			// p0@1 accepted at 20; the sample starts at 15 and ends at 30
			in.Sinks[0].Samples = append([]offsetSample{{At: at(15), End: at(30), Off: map[int32]int64{0: 2}}}, in.Sinks[0].Samples...)
		}, func(r sinkReport) bool { return r.CommittedAhead == 1 }},
		{"committed offset moved backward", func(in *checkInput) {
			in.Sinks[0].Samples = append([]offsetSample{{At: at(500), End: at(501), Off: map[int32]int64{0: 3, 1: 3}}, {At: at(600), End: at(601), Off: map[int32]int64{0: 1, 1: 3}}}, in.Sinks[0].Samples...)
		}, func(r sinkReport) bool { return r.Backward == 1 && len(r.failures()) == 1 }},
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
