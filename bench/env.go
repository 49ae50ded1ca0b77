package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/e2e/services"
	"github.com/fanout-dev/fanout/naming"
	"github.com/fanout-dev/fanout/schemas"
	"github.com/fanout-dev/fanout/sinktest"
)

// env is the world every scenario runs in: one Kafka (kfake in this process or
// a real broker as a child process), one redis-server child, the fanout binary,
// and a temp dir. close stops what it started, by PID, and removes the dir.
type env struct {
	opts options
	log  io.Writer

	dir       string
	bin       string // the fanout binary
	kafkaDesc string // what Kafka is, for the report
	brokers   []string
	kfake     *kfake.Cluster
	kafka     *services.Kafka
	redis     *services.Redis
	rdb       *redis.Client
	cl        *kgo.Client // admin and helper client
	adm       *kadm.Client
	codec     *schemas.Codec

	sizes eventSizes   // of the first batch produced, for the report
	seq   atomic.Int64 // names of topics, groups and key prefixes
	nonce uint32       // this process's id prefix, so ids never repeat across runs
}

// newEnv builds the binary and starts Kafka and redis-server. On error what it
// started is stopped again.
func newEnv(ctx context.Context, opts options, log io.Writer) (e *env, err error) {
	e = &env{opts: opts, log: log, nonce: uint32(time.Now().UnixNano())}
	defer func() {
		if err != nil {
			e.close()
			e = nil
		}
	}()
	if e.dir, err = os.MkdirTemp("", "fanout-bench-"); err != nil {
		return e, err
	}
	reg, err := schemas.NewLocal(schemas.Builtin(), schemas.BuiltinSubjects)
	if err != nil {
		return e, err
	}
	e.codec = schemas.NewCodec(reg)

	if e.bin = opts.fanoutBin; e.bin == "" {
		if e.bin, err = buildFanout(ctx, e.dir, log); err != nil {
			return e, err
		}
	}

	switch opts.kafka {
	case "kfake":
		e.kfake, err = kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return e, fmt.Errorf("kfake: %w", err)
		}
		e.brokers = e.kfake.ListenAddrs()
		e.kafkaDesc = "kfake (in the bench process)"
	case "real":
		start := time.Now()
		e.kafka, err = services.StartKafka(services.KafkaOptions{Partitions: 6, LogDir: filepath.Join(e.dir, "kafka")})
		if err != nil {
			return e, fmt.Errorf("start kafka (run `bash e2e/install.sh` first): %w", err)
		}
		e.brokers = []string{e.kafka.Addr}
		e.kafkaDesc = "Apache Kafka " + e.kafka.Version() + " (KRaft, separate process)"
		fmt.Fprintf(log, "kafka %s ready at %s in %.1fs\n", e.kafka.Version(), e.kafka.Addr, time.Since(start).Seconds())
	default:
		return e, fmt.Errorf("-kafka %q: want kfake or real", opts.kafka)
	}
	if e.cl, err = kgo.NewClient(kgo.SeedBrokers(e.brokers...)); err != nil {
		return e, err
	}
	e.adm = kadm.NewClient(e.cl)

	if err = os.MkdirAll(filepath.Join(e.dir, "redis"), 0o755); err != nil {
		return e, err
	}
	if e.redis, err = services.StartRedis(filepath.Join(e.dir, "redis")); err != nil {
		return e, fmt.Errorf("start redis-server (run `bash e2e/install.sh` first): %w", err)
	}
	e.rdb = redis.NewClient(&redis.Options{Addr: e.redis.Addr, PoolSize: 8})
	return e, nil
}

// close stops Kafka and redis-server and removes the temp dir (unless -keep).
func (e *env) close() {
	if e.rdb != nil {
		e.rdb.Close()
	}
	if e.redis != nil {
		if err := e.redis.Stop(); err != nil {
			fmt.Fprintf(e.log, "stop redis-server: %v\n", err)
		}
	}
	if e.cl != nil {
		e.cl.Close()
	}
	if e.kfake != nil {
		e.kfake.Close()
	}
	if e.kafka != nil {
		if err := e.kafka.Stop(); err != nil {
			fmt.Fprintf(e.log, "stop kafka: %v\n", err)
		}
	}
	if e.dir != "" {
		if e.opts.keep {
			fmt.Fprintf(e.log, "kept %s\n", e.dir)
		} else {
			os.RemoveAll(e.dir)
		}
	}
}

// name returns a fresh name for a topic, group prefix or key prefix.
func (e *env) name(what string) string {
	return fmt.Sprintf("bench-%s-%08x-%d", what, e.nonce, e.seq.Add(1))
}

// moduleRoot finds the directory of fanout's go.mod from the working directory
// up, so `go run ./bench` and `go test ./bench/` both find ./cmd/fanout.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(b), "module github.com/fanout-dev/fanout\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/fanout-dev/fanout above the working directory")
		}
		dir = parent
	}
}

// buildFanout builds ./cmd/fanout into dir.
func buildFanout(ctx context.Context, dir string, log io.Writer) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "fanout")
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/fanout")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/fanout: %w\n%s", err, out)
	}
	fmt.Fprintf(log, "built %s in %.1fs\n", bin, time.Since(start).Seconds())
	return bin, nil
}

// createTopics creates topic with partitions and one single-partition dead
// letter topic per sink (fanout run refuses to start without them).
func (e *env) createTopics(ctx context.Context, topic string, partitions int32, sinks ...string) error {
	if _, err := e.adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, s := range sinks {
		if _, err := e.adm.CreateTopic(ctx, 1, 1, nil, naming.DLQTopic(topic, s)); err != nil {
			return fmt.Errorf("create dlq topic for %s: %w", s, err)
		}
	}
	return nil
}

// sinkConf is one sink block of a bench config.
type sinkConf struct {
	name     string
	url      string
	ordering string // unordered | key | partition
	inFlight int
	dedupe   bool
	batch    int // > 0: batch.max_events
}

// writeConfig writes a fanout config for one run and returns its path. Retry
// tiers are off (every target answers 200), so only DLQ topics are needed.
func (e *env) writeConfig(name, topic string, sinks []sinkConf) (string, error) {
	c := sinktest.Config{
		Brokers: e.brokers, Topic: topic, GroupPrefix: e.name("group") + ".",
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 20 * time.Second,
		RedisAddr: e.redis.Addr, KeyPrefix: e.name("dedupe") + ":",
		DrainTimeout: 10 * time.Second, RevokeTimeout: 5 * time.Second,
	}
	for _, s := range sinks {
		c.Sinks = append(c.Sinks, sinktest.Sink{Name: s.name, URL: s.url, Ordering: s.ordering,
			MaxInFlight: s.inFlight, BatchEvents: s.batch,
			Extra: fmt.Sprintf("retry:\n  tiers: []\ndedupe:\n  enabled: %t", s.dedupe)})
	}
	path := filepath.Join(e.dir, name+".yaml")
	return path, c.Write(path)
}

// child is one `fanout run` process.
type child struct {
	cmd     *exec.Cmd
	logPath string
	started time.Time
	exited  chan struct{}
	err     error // cmd.Wait's result, set before exited is closed
}

// usage is what the kernel accounted to a child.
type usage struct {
	cpu time.Duration // user + system, from the rusage of the exited child
	// peakRSSKB is VmHWM from /proc/<pid>/status, read just before SIGTERM.
	// Not ru_maxrss: Go starts children with CLONE_VM|CLONE_VFORK, and exec
	// records the high-water mark of the mm it replaces — the bench
	// process's, which holds kfake's whole backlog — as the child's maxrss.
	peakRSSKB int64
}

// startFanout runs `fanout run -c cfg` with its output in logPath. The child is
// in its own process group and dies with this process (Pdeathsig).
func (e *env) startFanout(cfg, logPath string) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := []string{"run", "-c", cfg, "--stats-interval", "0"}
	if e.opts.admin != "" {
		args = append(args, "--admin", e.opts.admin)
	}
	cmd := exec.Command(e.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = services.ChildProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start fanout: %w", err)
	}
	c := &child{cmd: cmd, logPath: logPath, started: time.Now(), exited: make(chan struct{})}
	go func() { // owned by c: stop waits for it
		c.err = cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	return c, nil
}

// stop sends SIGTERM, waits up to a minute (then SIGKILL), and returns the
// child's CPU time and peak RSS. An exit code other than 0 is an error.
func (c *child) stop() (usage, error) {
	var err error
	var u usage
	select {
	case <-c.exited:
		err = fmt.Errorf("fanout exited early: %v\n%s", c.err, c.tail(30))
	default:
		u.peakRSSKB = vmHWM(c.cmd.Process.Pid)
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
			if c.err != nil {
				err = fmt.Errorf("fanout after SIGTERM: %v\n%s", c.err, c.tail(30))
			}
		case <-time.After(time.Minute):
			_ = c.cmd.Process.Signal(syscall.SIGKILL)
			<-c.exited
			err = fmt.Errorf("fanout pid %d still running a minute after SIGTERM; killed\n%s", c.cmd.Process.Pid, c.tail(30))
		}
	}
	if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return u, err
}

// vmHWM is the peak resident set of process pid in KiB, 0 if unknown.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}

// alive reports an early exit as an error.
func (c *child) alive() error {
	select {
	case <-c.exited:
		return fmt.Errorf("fanout exited early: %v\n%s", c.err, c.tail(30))
	default:
		return nil
	}
}

func (c *child) tail(n int) string {
	b, _ := os.ReadFile(c.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
