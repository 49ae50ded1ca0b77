package e2e

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/redis/go-redis/v9"

	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/e2e/services"
	"github.com/fanout-dev/fanout/naming"
	"github.com/fanout-dev/fanout/sinktest"
)

// faultRun is one fault scenario's world: a fresh topic with its own partition
// count, group prefix and dedupe key prefix on the shared broker and
// redis-server; its events (produced directly with franz-go, keyed so that
// key-ordered sinks have something to order); a fleet of `fanout run`
// instances, each incarnation named in the X-Fanout-Instance header it sends;
// an offset monitor; and the timeline of the faults injected.
type faultRun struct {
	t          *testing.T
	name       string
	dir        string
	logDir     string
	topic      string
	prefix     string
	partitions int
	drain      string // run.drain_timeout; default 20s
	sinks      []*faultSink
	adm        *kadm.Client
	began      time.Time

	pmu    sync.Mutex
	events []producedEvent // index = event number = produce order
	prod   *kgo.Client

	fmu      sync.Mutex
	procs    map[string]*faultProc // slot → running incarnation
	incs     map[string]int        // slot → incarnations started
	all      []*faultProc
	kills    []killEvent
	restarts []redisRestart
	timeline []string
}

// faultSink is one sink of a fault run and the API behind it.
type faultSink struct {
	name        string
	mode        string // partition | key | unordered
	maxInFlight int    // max_in_flight (ignored by partition mode)
	batch       int    // batch.max_events; 0: one event per request
	target      *faultTarget
	extra       string // YAML lines for the sink block (dedupe, retry, breaker, start, …)
	tiers       int    // retry tiers configured in extra (their topics and groups are checked)
	// rejects reports the events the API answers with a permanent 4xx: they
	// must end in the DLQ, and nothing else may.
	rejects func(id string) bool
	// partial: the sink is not expected to finish (a deliberately slow API);
	// waitComplete and check leave it out.
	partial bool
}

// producedEvent is one event as the producer wrote it.
type producedEvent struct {
	ID, Key, Trace string
	BodyHash       [32]byte // of the golden JSON rendering the API must receive
	value          []byte
	Partition      int32
	Offset         int64 // -1 until acknowledged
}

type faultProc struct {
	slot, inc string
	cmd       *exec.Cmd
	log       string
	done      chan struct{} // closed when the process has been reaped
	err       error         // what Wait returned; read after done
	exited    bool
}

type killEvent struct {
	Inc        string
	Sent, Dead time.Time // SIGKILL sent; process reaped
	// Pending is, per sink, the events the killed incarnation had sent
	// (accepted by the API in the 30s before the kill) whose dedupe key
	// still held a pending claim right after the process was reaped: what
	// it had in flight, not yet marked done, when it died. Only those can
	// be delivered again because of this kill (by the next owner, once the
	// lease expires).
	Pending map[string]map[string]bool
}

// redisRestart is a redis-server restart. Lost: it came back without the
// data (no persistence): every claim and "done" key was gone.
type redisRestart struct {
	Stop, Ready time.Time
	Lost        bool
}

func eventID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// newFaultRun creates the run's topics-to-be and encodes n events over keys
// distinct record keys. Nothing is produced yet.
func newFaultRun(t *testing.T, name string, n, partitions, keys int) *faultRun {
	t.Helper()
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1e9)
	fr := &faultRun{t: t, name: name, dir: t.TempDir(), topic: "e2e-fault-" + name + "-" + suffix,
		prefix: "e2e-fault-" + name + "-" + suffix + ".", partitions: partitions,
		procs: map[string]*faultProc{}, incs: map[string]int{}, began: time.Now()}
	fr.logDir = fr.dir
	if d := os.Getenv("FANOUT_FAULT_LOGS"); d != "" { // keep the instances' logs after the test
		fr.logDir = filepath.Join(d, fr.topic)
		if err := os.MkdirAll(fr.logDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	fr.adm = kadm.NewClient(cl)
	codec := builtinCodec(t)
	fr.events = make([]producedEvent, n)
	for i := range n {
		id := eventID(i)
		v, rec, err := codec.EncodeJSON(context.Background(), "user.registered", userRegistered(i, id))
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		var tr [16]byte
		rand.Read(tr[:])
		fr.events[i] = producedEvent{ID: id, Key: fmt.Sprintf("key-%04d", i%keys), Trace: hex.EncodeToString(tr[:]),
			BodyHash: sha256.Sum256(rec.JSON), value: v, Offset: -1}
	}
	fr.note("%d events encoded", n)
	t.Cleanup(func() {
		fr.fmu.Lock()
		procs := append([]*faultProc(nil), fr.all...)
		fr.fmu.Unlock()
		for _, p := range procs {
			if !p.exited {
				p.cmd.Process.Kill() // by PID: only the processes this run started
				<-p.done
				p.exited = true
			}
		}
		if fr.prod != nil {
			fr.prod.Close()
		}
		cl.Close()
		if t.Failed() {
			for _, p := range procs {
				b, _ := os.ReadFile(p.log)
				t.Logf("fanout %s output (tail):\n%s", p.inc, tail(string(b), 30))
			}
		}
	})
	return fr
}

// note adds a line to the run's timeline (and the test log).
func (fr *faultRun) note(format string, args ...any) {
	line := fmt.Sprintf("%6.1fs  ", time.Since(fr.began).Seconds()) + fmt.Sprintf(format, args...)
	fr.fmu.Lock()
	fr.timeline = append(fr.timeline, line)
	fr.fmu.Unlock()
	fr.t.Log(line)
}

// writeConfig writes a config with the given sinks to file and returns its path.
// Every sink sends X-Fanout-Instance from the instance's environment.
func (fr *faultRun) writeConfig(file string, sinks ...*faultSink) string {
	fr.t.Helper()
	drain, err := time.ParseDuration(cmp.Or(fr.drain, "20s"))
	if err != nil {
		fr.t.Fatalf("drain %q: %v", fr.drain, err)
	}
	c := sinktest.Config{
		Brokers: []string{kafka.Addr}, Topic: fr.topic, GroupPrefix: fr.prefix,
		SessionTimeout: 6 * time.Second, RebalanceTimeout: 20 * time.Second,
		RedisAddr: redisSrv.Addr, KeyPrefix: fr.topic + ":",
		DrainTimeout: drain, RevokeTimeout: 10 * time.Second,
	}
	for _, sk := range sinks {
		c.Sinks = append(c.Sinks, sinktest.Sink{Name: sk.name, URL: sk.target.URL, Ordering: sk.mode,
			MaxInFlight: sk.maxInFlight, BatchEvents: sk.batch,
			Headers: map[string]string{"X-Fanout-Instance": "${FANOUT_INSTANCE:-none}"}, Extra: sk.extra})
		known := false
		for _, s := range fr.sinks {
			known = known || s == sk
		}
		if !known {
			fr.sinks = append(fr.sinks, sk)
		}
	}
	path := filepath.Join(fr.dir, file)
	if err := c.Write(path); err != nil {
		fr.t.Fatal(err)
	}
	return path
}

// ensureTopics creates the topic and every sink's tier and DLQ topics.
func (fr *faultRun) ensureTopics(cfg string) {
	fr.t.Helper()
	out, err := exec.Command(fanoutBin, "topics", "ensure", "-c", cfg, "--partitions", fmt.Sprint(fr.partitions)).CombinedOutput()
	if err != nil {
		fr.t.Fatalf("fanout topics ensure: %v\n%s", err, out)
	}
	// topics ensure returns once the controller created the topics; the
	// broker's metadata may not list them yet, and `fanout run` refuses to
	// start on a topic it does not see. Wait until every one is listed.
	var topics []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "topic" {
			topics = append(topics, f[1])
		}
	}
	waitFor(fr.t, 30*time.Second, "created topics listed", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		details, err := fr.adm.ListTopics(ctx, topics...)
		if err != nil {
			return false, err.Error()
		}
		var missing []string
		for _, t := range topics {
			if d, ok := details[t]; !ok || d.Err != nil || len(d.Partitions) == 0 {
				missing = append(missing, t)
			}
		}
		return len(missing) == 0, "not listed yet: " + strings.Join(missing, ", ")
	})
	// Parked records carry the broker's append time (LogAppendTime), not
	// the time fanout built them: the checker takes it as the moment the
	// park was durable (the acknowledgement follows it).
	var parkTopics []string
	for _, t := range topics {
		if strings.HasSuffix(t, ".dlq") || strings.Contains(t, ".retry.") {
			parkTopics = append(parkTopics, t)
		}
	}
	if len(parkTopics) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v := "LogAppendTime"
		resp, err := fr.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "message.timestamp.type", Value: &v}}, parkTopics...)
		if err == nil {
			for _, r := range resp {
				if r.Err != nil {
					err = fmt.Errorf("%s: %w", r.Name, r.Err)
					break
				}
			}
		}
		if err != nil {
			fr.t.Fatalf("set message.timestamp.type=LogAppendTime on the tier and DLQ topics: %v", err)
		}
	}
	fr.note("%d topics created and listed (%d tier/DLQ topics with LogAppendTime)", len(topics), len(parkTopics))
}

// start runs `fanout run -c cfg` as the next incarnation of slot (e.g. "i1" →
// "i1.3"), which it sends as X-Fanout-Instance.
func (fr *faultRun) start(slot, cfg string, args ...string) *faultProc {
	fr.t.Helper()
	fr.fmu.Lock()
	fr.incs[slot]++
	inc := fmt.Sprintf("%s.%d", slot, fr.incs[slot])
	fr.fmu.Unlock()
	p := &faultProc{slot: slot, inc: inc, done: make(chan struct{}), log: filepath.Join(fr.logDir, inc+".log")}
	f, err := os.Create(p.log)
	if err != nil {
		fr.t.Fatal(err)
	}
	p.cmd = exec.Command(fanoutBin, append([]string{"run", "-c", cfg, "--stats-interval", "10s"}, args...)...)
	p.cmd.Env = append(os.Environ(), "FANOUT_INSTANCE="+inc)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = services.ChildProcAttr()
	if err := p.cmd.Start(); err != nil {
		fr.t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); f.Close(); close(p.done) }()
	fr.fmu.Lock()
	fr.procs[slot] = p
	fr.all = append(fr.all, p)
	fr.fmu.Unlock()
	fr.note("start %s (pid %d)", inc, p.cmd.Process.Pid)
	return p
}

// kill SIGKILLs slot's running incarnation and records when.
func (fr *faultRun) kill(slot string) {
	fr.fmu.Lock()
	p := fr.procs[slot]
	delete(fr.procs, slot)
	fr.fmu.Unlock()
	if p == nil {
		return
	}
	k := killEvent{Inc: p.inc, Sent: time.Now()}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.exited = true
	k.Dead = time.Now()
	k.Pending = fr.pendingOf(p.inc, k.Sent)
	fr.fmu.Lock()
	fr.kills = append(fr.kills, k)
	fr.fmu.Unlock()
	n := 0
	for _, m := range k.Pending {
		n += len(m)
	}
	fr.note("SIGKILL %s: %d of its claims still pending", p.inc, n)
}

// pendingOf reads, per sink, the dedupe keys of the events inc's requests
// the API accepted from 30s before at until now, and returns those still
// holding a pending claim. Called right after inc was reaped: well within
// the lease, so a claim it held has not expired yet. A key that holds
// nothing at all counts too when a Redis restart lost the data after the
// request's claim (at most 30s before it arrived) and was back before its
// answer:
// the claim went with the data, "done" could only go to the new Redis, and
// it is not there — the event was as unfinished as a pending one, provided
// no later restart (after the answer, before the kill) could have taken a
// "done" written meanwhile (that is Redis data loss, judged by its rule).
func (fr *faultRun) pendingOf(inc string, at time.Time) map[string]map[string]bool {
	cl := redis.NewClient(&redis.Options{Addr: redisSrv.Addr})
	defer cl.Close()
	out := map[string]map[string]bool{}
	for _, sk := range fr.sinks {
		seen := map[string]bool{}
		var ids, keys []string
		claimLost := map[string]bool{}
		for _, r := range sk.target.requests() {
			if r.Instance == inc && r.Accepted && !seen[r.Key] && r.Arrived.After(at.Add(-30*time.Second)) {
				seen[r.Key] = true
				ids = append(ids, r.Key)
				keys = append(keys, fr.topic+":"+dedupe.Key(sk.name, r.Key))
				fr.fmu.Lock()
				answered := r.Answered
				if answered.IsZero() {
					answered = r.Arrived
				}
				// Lost after the claim was taken and back before the answer,
				// and no loss overlapping or after the answer that could have
				// taken a "done" written meanwhile: "done" could only be in
				// the new Redis.
				before, after := false, false
				for _, rs := range fr.restarts {
					switch {
					case !rs.Lost || !rs.Stop.Before(at) || !rs.Stop.After(r.Arrived.Add(-30*time.Second)):
					case !rs.Ready.After(answered):
						before = true
					default:
						after = true
					}
				}
				claimLost[r.Key] = before && !after
				fr.fmu.Unlock()
			}
		}
		out[sk.name] = map[string]bool{}
		for len(keys) > 0 {
			n := min(len(keys), 1000)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			vals, err := cl.MGet(ctx, keys[:n]...).Result()
			cancel()
			if err != nil {
				fr.t.Errorf("read %s's claims after the kill of %s: %v", sk.name, inc, err)
				break
			}
			for i, v := range vals {
				if s, ok := v.(string); ok && strings.HasPrefix(s, "pending:") || v == nil && claimLost[ids[i]] {
					out[sk.name][ids[i]] = true
				}
			}
			keys, ids = keys[n:], ids[n:]
		}
	}
	return out
}

// term SIGTERMs slot's running incarnation and waits for a clean exit.
func (fr *faultRun) term(slot string) {
	fr.t.Helper()
	fr.fmu.Lock()
	p := fr.procs[slot]
	delete(fr.procs, slot)
	fr.fmu.Unlock()
	if p == nil {
		return
	}
	// A SIGTERM that arrives before main has installed its handler (the
	// runtime's own start-up, a few ms, longer under -race) takes the default
	// action: the process dies by the signal before it has consumed anything.
	// That is not the graceful path this checks, so wait until it runs.
	fr.waitStarted(p)
	began := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		p.exited = true
		if err := p.err; err != nil {
			b, _ := os.ReadFile(p.log)
			fr.t.Errorf("fanout %s after SIGTERM: %v\n%s", p.inc, err, tail(string(b), 30))
		}
	case <-time.After(60 * time.Second):
		fr.t.Errorf("fanout %s did not stop within 60s of SIGTERM", p.inc)
		return
	}
	fr.note("SIGTERM %s: exited cleanly in %.1fs", p.inc, time.Since(began).Seconds())
}

// waitStarted waits until p has logged that its consumers started, so its
// signal handler is installed.
func (fr *faultRun) waitStarted(p *faultProc) {
	fr.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-p.done:
			return // exited on its own; term reports how
		default:
		}
		if b, _ := os.ReadFile(p.log); strings.Contains(string(b), "consumer started") {
			return
		}
	}
	fr.t.Errorf("fanout %s did not log \"consumer started\" within 30s", p.inc)
}

func (fr *faultRun) running() []string {
	fr.fmu.Lock()
	defer fr.fmu.Unlock()
	var s []string
	for slot := range fr.procs {
		s = append(s, slot)
	}
	sort.Strings(s)
	return s
}

func (fr *faultRun) termAll() {
	for _, slot := range fr.running() {
		fr.term(slot)
	}
}

// restartRedis restarts the shared redis-server (every key is lost) and
// records the window; the cleanup brings it back if the restart failed.
func (fr *faultRun) restartRedis() {
	fr.t.Helper()
	r := redisRestart{Stop: time.Now(), Lost: true} // redisSrv keeps nothing on disk
	err := redisSrv.Restart()
	r.Ready = time.Now()
	if err != nil {
		fr.t.Cleanup(func() { redisSrv.Restart() })
		fr.t.Fatalf("restart redis-server: %v", err)
	}
	fr.fmu.Lock()
	fr.restarts = append(fr.restarts, r)
	fr.fmu.Unlock()
	fr.note("redis-server restarted (all keys lost), down %.0fms", r.Ready.Sub(r.Stop).Seconds()*1000)
}

// producer returns the run's producing client (acks=all, idempotent).
func (fr *faultRun) producer() *kgo.Client {
	fr.pmu.Lock()
	defer fr.pmu.Unlock()
	if fr.prod == nil {
		cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr), kgo.DefaultProduceTopic(fr.topic),
			kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(50_000))
		if err != nil {
			fr.t.Fatal(err)
		}
		fr.prod = cl
	}
	return fr.prod
}

// produce writes events [from, to) at rate per second (0: as fast as the
// client takes them) and returns once they are all acknowledged, or ctx ends.
// Each record carries event-id and traceparent headers, like fanout emit's.
func (fr *faultRun) produce(ctx context.Context, from, to, rate int) {
	cl := fr.producer()
	began := time.Now()
	var wg sync.WaitGroup
	for i := from; i < to; i++ {
		if rate > 0 {
			if due := began.Add(time.Duration(float64(i-from) / float64(rate) * float64(time.Second))); time.Until(due) > 0 {
				select {
				case <-time.After(time.Until(due)):
				case <-ctx.Done():
					return
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		ev := &fr.events[i]
		r := &kgo.Record{Key: []byte(ev.Key), Value: ev.value, Headers: []kgo.RecordHeader{
			{Key: "event-id", Value: []byte(ev.ID)},
			{Key: "traceparent", Value: []byte("00-" + ev.Trace + "-" + ev.Trace[:16] + "-01")},
		}}
		wg.Add(1)
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				if ctx.Err() == nil {
					fr.t.Errorf("produce event %d: %v", i, err)
				}
				return
			}
			fr.pmu.Lock()
			ev.Partition, ev.Offset = r.Partition, r.Offset
			fr.pmu.Unlock()
		})
	}
	wg.Wait()
}

// produced copies the events acknowledged so far.
func (fr *faultRun) produced() []producedEvent {
	fr.pmu.Lock()
	defer fr.pmu.Unlock()
	var out []producedEvent
	for _, e := range fr.events {
		if e.Offset >= 0 {
			e.value = nil
			out = append(out, e)
		}
	}
	return out
}

// group is the consumer group of sink's main topic consumer, or of tier n.
func (fr *faultRun) group(sink string, tier int) string {
	if tier == 0 {
		return naming.Group(fr.prefix, sink)
	}
	return naming.TierGroup(fr.prefix, sink, tier)
}

func (fr *faultRun) tierTopic(sink string, tier int) string {
	return naming.TierTopic(fr.topic, sink, tier)
}

// committedEnd reports whether group has committed topic's end offsets.
func (fr *faultRun) committedEnd(topic, group string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := fr.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false, err.Error()
	}
	com, err := fr.adm.FetchOffsets(ctx, group)
	if err != nil {
		return false, err.Error()
	}
	var behind []string
	ends.Each(func(o kadm.ListedOffset) {
		if c, ok := com.Lookup(topic, o.Partition); o.Offset > 0 && (!ok || c.At != o.Offset) {
			behind = append(behind, fmt.Sprintf("p%d %d/%d", o.Partition, c.At, o.Offset))
		}
	})
	return len(behind) == 0, strings.Join(behind, " ")
}

// waitComplete waits until every sink's API accepted every event it does not
// reject, and every sink's groups (main and tiers) committed their topics'
// ends. It gives up — failing the test, so that the checker still runs and
// says what is missing — at timeout, or when nothing moved for stall.
func (fr *faultRun) waitComplete(timeout time.Duration) bool {
	fr.t.Helper()
	const stall = 45 * time.Second
	evs := fr.produced()
	if len(evs) != len(fr.events) {
		fr.t.Errorf("only %d of %d events were acknowledged by the broker", len(evs), len(fr.events))
	}
	want := map[string][]string{}
	for _, sk := range fr.sinks {
		for _, e := range evs {
			if sk.rejects == nil || !sk.rejects(e.ID) {
				want[sk.name] = append(want[sk.name], e.ID)
			}
		}
	}
	began, moved, last := time.Now(), time.Now(), ""
	for {
		var status []string
		for _, sk := range fr.sinks {
			if sk.partial {
				continue
			}
			if n := sk.target.missing(want[sk.name]); n > 0 {
				status = append(status, fmt.Sprintf("%s: %d of %d not accepted", sk.name, n, len(want[sk.name])))
			}
			for tier := 0; tier <= sk.tiers; tier++ {
				topic := fr.topic
				if tier > 0 {
					topic = fr.tierTopic(sk.name, tier)
				}
				if ok, why := fr.committedEnd(topic, fr.group(sk.name, tier)); !ok {
					status = append(status, fmt.Sprintf("%s not at the end (%s)", fr.group(sk.name, tier), why))
				}
			}
		}
		if len(status) == 0 {
			fr.note("every sink delivered everything and committed the end (%.1fs after the wait began)", time.Since(began).Seconds())
			return true
		}
		now := strings.Join(status, "; ")
		if now != last {
			last, moved = now, time.Now()
		}
		switch {
		case time.Since(began) > timeout:
			fr.t.Errorf("not complete %s after the wait began: %s", timeout, now)
			return false
		case time.Since(moved) > stall:
			fr.t.Errorf("no progress for %s: %s", stall, now)
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// logLines returns the lines of every instance's log that contain any of subs.
func (fr *faultRun) logLines(subs ...string) []string {
	fr.fmu.Lock()
	procs := append([]*faultProc(nil), fr.all...)
	fr.fmu.Unlock()
	var out []string
	for _, p := range procs {
		b, _ := os.ReadFile(p.log)
		for _, l := range strings.Split(string(b), "\n") {
			for _, s := range subs {
				if strings.Contains(l, s) {
					out = append(out, p.inc+": "+l)
					break
				}
			}
		}
	}
	return out
}

// lostEvents finds the main consumers' "partitions revoked … committed=false"
// lines (OnPartitionsLost) in every instance's log.
func (fr *faultRun) lostEvents() []lostEvent {
	var out []lostEvent
	for _, l := range fr.logLines(`msg="partitions revoked"`) {
		if !strings.Contains(l, "committed=false") {
			continue
		}
		inc, line, _ := strings.Cut(l, ": ")
		var ev lostEvent
		ev.Inc = inc
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "time="); ok {
				ev.At, _ = time.Parse(time.RFC3339Nano, v)
			}
			if v, ok := strings.CutPrefix(f, "sink="); ok {
				ev.Sink = v
			}
		}
		out = append(out, ev)
	}
	return out
}

// groupKey names one consumer group of a sink: its main consumer (tier 0)
// or one of its tier consumers.
type groupKey struct {
	sink string
	tier int
}

// offsetSample is one offset commit as the group coordinator wrote it to
// __consumer_offsets: At = End = the broker's commit timestamp plus its
// millisecond resolution, so that every record the commit covers had to be
// settled by then.
type offsetSample struct {
	At, End time.Time
	Off     map[int32]int64
}

// commits reads __consumer_offsets (the broker's own log of every offset
// commit, with the time the coordinator handled it) and returns, per group
// of this run and per topic, its commits in the order they were written.
func (fr *faultRun) commits() map[groupKey][]offsetSample {
	fr.t.Helper()
	groups := map[string]groupKey{}
	topics := map[groupKey]string{}
	for _, sk := range fr.sinks {
		groups[fr.group(sk.name, 0)] = groupKey{sk.name, 0}
		topics[groupKey{sk.name, 0}] = fr.topic
		for tier := 1; tier <= sk.tiers; tier++ {
			groups[fr.group(sk.name, tier)] = groupKey{sk.name, tier}
			topics[groupKey{sk.name, tier}] = fr.tierTopic(sk.name, tier)
		}
	}
	out := map[groupKey][]offsetSample{}
	recs := readTopic(fr.t, "__consumer_offsets")
	sort.SliceStable(recs, func(i, j int) bool { // a group's commits live in one partition, in commit order
		return recs[i].Partition < recs[j].Partition || recs[i].Partition == recs[j].Partition && recs[i].Offset < recs[j].Offset
	})
	for _, r := range recs {
		var k kmsg.OffsetCommitKey
		if len(r.Value) == 0 || k.ReadFrom(r.Key) != nil || k.Version > 1 {
			continue // a tombstone, or group metadata (key version 2)
		}
		mk, ok := groups[k.Group]
		if !ok || k.Topic != topics[mk] {
			continue
		}
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(r.Value); err != nil {
			fr.t.Errorf("__consumer_offsets %d@%d: %v", r.Partition, r.Offset, err)
			continue
		}
		at := time.UnixMilli(v.CommitTimestamp).Add(time.Millisecond)
		out[mk] = append(out[mk], offsetSample{At: at, End: at, Off: map[int32]int64{k.Partition: v.Offset}})
	}
	return out
}

// check stops the monitor, reads the tier and DLQ topics, runs the checker
// over everything recorded, logs the table and asserts the invariants.
func (fr *faultRun) check() []sinkReport {
	fr.t.Helper()
	commits := fr.commits()
	in := checkInput{Scenario: fr.name, Events: fr.produced(), Kills: fr.kills, Restarts: fr.restarts,
		Partitions: fr.partitions, Lost: fr.lostEvents()}
	for _, sk := range fr.sinks {
		if sk.partial {
			continue
		}
		cs := checkSink{Name: sk.name, Mode: sk.mode, MaxInFlight: sk.maxInFlight, Requests: sk.target.requests(),
			Samples: commits[groupKey{sk.name, 0}], Rejects: sk.rejects, TierSamples: map[int][]offsetSample{}}
		for tier := 1; tier <= sk.tiers; tier++ {
			cs.TierSamples[tier] = commits[groupKey{sk.name, tier}]
		}
		if cs.MaxInFlight == 0 {
			cs.MaxInFlight = 64
		}
		cs.Timeout = 10 * time.Second // the default attempt timeout
		for _, l := range strings.Split(sk.extra, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "timeout: "); ok {
				if d, err := time.ParseDuration(v); err == nil {
					cs.Timeout = d
				}
			}
		}
		cs.Parked = append(cs.Parked, readTopic(fr.t, fr.topic+"."+sk.name+".dlq")...)
		cs.DLQCount = len(cs.Parked)
		for tier := 1; tier <= sk.tiers; tier++ {
			cs.Parked = append(cs.Parked, readTopic(fr.t, fr.tierTopic(sk.name, tier))...)
		}
		in.Sinks = append(in.Sinks, cs)
	}
	reps := runChecker(in)
	fr.t.Log("\n" + formatReport(in, reps, fr.timeline))
	appendMarkdownReport(fr.t, in, reps, time.Since(fr.began))
	assertReport(fr.t, reps)
	return reps
}

// jittered returns a duration uniformly in [lo, hi).
func jittered(rng interface{ Float64() float64 }, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(math.Floor(rng.Float64()*float64(hi-lo)))
}
