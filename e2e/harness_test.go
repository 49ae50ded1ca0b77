package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/e2e/services"
	"github.com/fanout-dev/fanout/schemas"
	"github.com/fanout-dev/fanout/sinktest"
)

// scenario is one test's world: a unique topic, group prefix and dedupe key
// prefix on the shared broker and redis-server, its events, and its config.
type scenario struct {
	t      *testing.T
	name   string
	dir    string
	topic  string
	prefix string // consumer group prefix
	cfg    string // config path
	top    string // extra top-level YAML for the config
	ids    []string
	docs   [][]byte
	bodies map[string][]byte // event id → the golden JSON rendering
}

// sinkSpec is one sink of a scenario's config; extra is YAML appended to the block.
type sinkSpec struct {
	name   string
	target *target
	extra  string
}

func newScenario(t *testing.T, name string, n int) *scenario {
	t.Helper()
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1e9)
	s := &scenario{t: t, name: name, dir: t.TempDir(), topic: "e2e-" + name + "-" + suffix,
		prefix: "e2e-" + name + "-" + suffix + ".", bodies: map[string][]byte{}}
	codec := builtinCodec(t)
	for i := range n {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		doc := userRegistered(i, id)
		_, rec, err := codec.EncodeJSON(context.Background(), "user.registered", doc)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		s.ids = append(s.ids, id)
		s.docs = append(s.docs, doc)
		s.bodies[id] = rec.JSON
	}
	return s
}

func builtinCodec(t *testing.T) *schemas.Codec {
	reg, err := schemas.NewLocal(schemas.Builtin(), schemas.BuiltinSubjects)
	if err != nil {
		t.Fatal(err)
	}
	return schemas.NewCodec(reg)
}

var plans = []string{"FREE", "PRO", "ENTERPRISE"}

// userRegistered is event i of the worked example, deterministic.
func userRegistered(i int, id string) []byte {
	ref := "null"
	if i%2 == 0 {
		ref = `"campaign-` + fmt.Sprint(i%7) + `"`
	}
	created := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	return fmt.Appendf(nil, `{"id":%q,"email":"user%d@example.com","name":"User %d ü","plan":%q,"created_at":%q,"referrer":%s,"metadata":{"i":"%d","src":"e2e"}}`,
		id, i, i, plans[i%3], created.Format("2006-01-02T15:04:05.000Z"), ref, i)
}

// writeConfig writes the scenario's fanout.yaml.
func (s *scenario) writeConfig(sinks ...sinkSpec) {
	c := sinktest.Config{
		Brokers: []string{kafka.Addr}, Topic: s.topic, GroupPrefix: s.prefix,
		SessionTimeout: 6 * time.Second, RebalanceTimeout: 20 * time.Second,
		RedisAddr: redisSrv.Addr, KeyPrefix: s.topic + ":",
		DrainTimeout: 20 * time.Second, RevokeTimeout: 10 * time.Second,
		Top: s.top,
	}
	for _, sk := range sinks {
		c.Sinks = append(c.Sinks, sinktest.Sink{Name: sk.name, URL: sk.target.URL, Extra: sk.extra})
	}
	s.cfg = filepath.Join(s.dir, "fanout.yaml")
	if err := c.Write(s.cfg); err != nil {
		s.t.Fatal(err)
	}
}

// fanout runs a fanout command to completion and returns its output.
func (s *scenario) fanout(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(fanoutBin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("fanout %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// emitAll creates the topics and emits every event through `fanout emit`.
func (s *scenario) emitAll() {
	s.t.Helper()
	s.fanout("topics", "ensure", "-c", s.cfg, "--partitions", "3")
	path := filepath.Join(s.dir, "events.jsonl")
	if err := os.WriteFile(path, append(bytes.Join(s.docs, []byte("\n")), '\n'), 0o644); err != nil {
		s.t.Fatal(err)
	}
	out := s.fanout("emit", "-c", s.cfg, "--type", "user.registered", "--file", path)
	if want := fmt.Sprintf("emitted %d user.registered events", len(s.docs)); !strings.Contains(out, want) {
		s.t.Fatalf("emit said %q, want %q", out, want)
	}
}

// proc is a running `fanout run`.
type proc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	done   chan error    // the exit error, once (buffered)
	exited chan struct{} // closed once the process has been waited for
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// start runs `fanout run -c cfg`; the test's cleanup kills it if still running.
func (s *scenario) start(args ...string) *proc {
	s.t.Helper()
	p := &proc{out: &syncBuffer{}, done: make(chan error, 1), exited: make(chan struct{})}
	p.cmd = exec.Command(fanoutBin, append([]string{"run", "-c", s.cfg, "--stats-interval", "5s"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = services.ChildProcAttr()
	if err := p.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		close(p.exited)
		p.done <- err
	}()
	s.t.Cleanup(func() {
		// Not p.cmd.ProcessState: the Wait goroutine writes it (a data race
		// when the process exits on its own).
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if s.t.Failed() {
			s.t.Logf("fanout run output (tail):\n%s", tail(p.out.String(), 60))
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits for a clean exit.
func (p *proc) term(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("fanout run after SIGTERM: %v\n%s", err, tail(p.out.String(), 40))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("fanout run did not stop within 60s of SIGTERM")
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls cond until it holds or timeout passes; why describes the state.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s: %s", what, timeout, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func admin(t *testing.T) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// committedAtEnd reports whether the sink's group has committed the topic's end offsets.
func (s *scenario) committedAtEnd(sink string) (bool, string) {
	return s.committedTopicAtEnd(s.topic, sink)
}

// committedTopicAtEnd reports whether group <prefix><group> has committed topic's end offsets.
func (s *scenario) committedTopicAtEnd(topic, group string) (bool, string) {
	adm := admin(s.t)
	ctx := context.Background()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false, err.Error()
	}
	com, err := adm.FetchOffsets(ctx, s.prefix+group)
	if err != nil {
		return false, err.Error()
	}
	ok := true
	var diff []string
	ends.Each(func(o kadm.ListedOffset) {
		c, found := com.Lookup(topic, o.Partition)
		if o.Offset > 0 && (!found || c.At != o.Offset) {
			ok = false
			diff = append(diff, fmt.Sprintf("p%d committed %d end %d", o.Partition, c.At, o.Offset))
		}
	})
	return ok, strings.Join(diff, ", ")
}

// readTopic reads every record of topic up to its end offsets.
func readTopic(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	adm := admin(t)
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			total += o.Offset
		}
	})
	if total == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	got := map[int32]int64{}
	for {
		done := true
		for p, end := range want {
			if got[p] < end {
				done = false
			}
		}
		if done {
			return recs
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: timed out with %d records", topic, len(recs))
		}
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, r)
			got[r.Partition] = r.Offset + 1
		})
	}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
