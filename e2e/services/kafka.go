package services

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/internal/testcert"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	kafkaReadyTimeout = 90 * time.Second // from `java` exec to a broker that passed the probe
	kafkaStopTimeout  = 20 * time.Second // SIGTERM grace before SIGKILL
	kafkaFormatTime   = 60 * time.Second // kafka.tools.StorageTool format
	kafkaLogTail      = 40               // lines of broker log quoted in errors

	// kafkaLibMarker is written by e2e/install.sh into a lib dir once it holds
	// every jar; a lib dir without it is a download that did not finish.
	kafkaLibMarker = ".fanout-complete"
)

// KafkaOptions configures StartKafka. The zero value is a usable broker.
type KafkaOptions struct {
	// Partitions is num.partitions, the partition count of topics created
	// without an explicit count (kadm's -1). Default 3.
	Partitions int
	// LogDir holds the broker's data (LogDir/data), its server.properties and
	// its stdout/stderr log (LogDir/broker.log). StartKafka empties
	// LogDir/data first. Default: a new directory under os.TempDir(), which
	// StartKafka leaves in place and NewKafka removes when the test passed.
	LogDir string
	// Secure, when set, adds a SASL_SSL listener (SCRAM-SHA-512) and an SSL
	// listener that requires client certificates, with certificates from a
	// CA made for the broker, and turns on the StandardAuthorizer. The
	// PLAINTEXT listener (Addr) stays, for the harness and the test's
	// admin client: its User:ANONYMOUS is the one super user.
	Secure *KafkaSecure
}

// KafkaSecure is what the secured listeners of KafkaOptions.Secure start
// with. Users and ACLs are added after start through Addr (kadm
// AlterUserSCRAMs, CreateACLs).
type KafkaSecure struct{}

// Kafka is one Apache Kafka 4.x broker in KRaft mode — a single node that is
// both broker and controller (node.id 1) — running as a child process of the
// test binary, on loopback ports picked when it first starts.
//
// Stop, Kill and Restart may be called from any goroutine; they are serialised.
type Kafka struct {
	// Addr is the broker's PLAINTEXT listener, "127.0.0.1:port": the only
	// bootstrap address a client needs. It stays the same across Restart.
	Addr string
	// With KafkaOptions.Secure: SASLSSLAddr is the SASL_SSL listener
	// (SCRAM-SHA-512), SSLAddr the SSL listener that requires a client
	// certificate, CA the authority that signed the broker's certificate
	// (CA.CAFile), and Client a certificate for CN=fanout (User:fanout).
	SASLSSLAddr, SSLAddr string
	// OAuthAddr is a SASL_PLAINTEXT listener taking OAUTHBEARER tokens
	// that Kafka's unsecured validator checks: unsigned JWS ({"alg":"none"})
	// whose "sub" claim is the principal.
	OAuthAddr string
	CA        *testcert.CA
	Client    *testcert.Cert

	secure *KafkaSecure
	broker *testcert.Cert

	java, lib, version string
	dir, props, log4j  string

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil when no broker process is running
	exited chan struct{} // closed once cmd has been waited for
	err    error         // cmd.Wait's result, set before exited is closed
}

// NewKafka starts a broker for the test (see StartKafka) and stops it when the
// test ends. It fails the test, quoting the broker log, if the broker does not
// come up. When the test fails, the end of the broker log is logged and the
// log directory is kept.
func NewKafka(t testing.TB, opts KafkaOptions) *Kafka {
	t.Helper()
	ownDir := opts.LogDir == ""
	start := time.Now()
	k, err := StartKafka(opts)
	if err != nil {
		t.Fatalf("start kafka: %v", err)
	}
	t.Logf("kafka %s ready at %s in %.1fs; log %s", k.Version(), k.Addr, time.Since(start).Seconds(), k.LogPath())
	t.Cleanup(func() {
		if err := k.Stop(); err != nil {
			t.Errorf("stop kafka: %v", err)
		}
		switch {
		case t.Failed():
			t.Logf("kafka log kept at %s; it ends:\n%s", k.LogPath(), logTail(k.LogPath(), kafkaLogTail))
		case ownDir:
			_ = os.RemoveAll(k.dir)
		}
	})
	return k
}

// StartKafka formats an empty KRaft log under opts.LogDir, starts
// `java -Xmx512m -cp <lib>/* kafka.Kafka server.properties` in its own process
// group, and returns once a client can fetch metadata, create a topic,
// produce to it with acks=all, commit a group offset and delete the topic
// again (at most 90s). The jars come from FANOUT_KAFKA_LIB or else from the
// newest complete ${FANOUT_CACHE:-$HOME/.cache/fanout}/kafka-4.*/lib, both
// filled by e2e/install.sh.
//
// On Linux the kernel kills the broker if the test binary dies without
// stopping it. The caller owns the broker and must Stop it.
func StartKafka(opts KafkaOptions) (*Kafka, error) {
	if opts.Partitions < 0 {
		return nil, fmt.Errorf("kafka options: Partitions %d is negative", opts.Partitions)
	}
	if opts.Partitions == 0 {
		opts.Partitions = 3
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, errors.New("java not found in PATH: Kafka 4.x brokers need Java 17+ (e2e/install.sh checks for it)")
	}
	lib, version, err := findKafkaLib()
	if err != nil {
		return nil, err
	}
	if opts.LogDir == "" {
		if opts.LogDir, err = os.MkdirTemp("", "fanout-kafka-"); err != nil {
			return nil, fmt.Errorf("kafka log dir: %w", err)
		}
	}
	if err := os.MkdirAll(opts.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("kafka log dir: %w", err)
	}
	k := &Kafka{
		java:    java,
		lib:     lib,
		version: version,
		dir:     opts.LogDir,
		props:   filepath.Join(opts.LogDir, "server.properties"),
		log4j:   filepath.Join(opts.LogDir, "log4j2.properties"),
		secure:  opts.Secure,
	}
	if k.secure != nil {
		if k.CA, err = testcert.New(opts.LogDir); err != nil {
			return nil, fmt.Errorf("kafka test CA: %w", err)
		}
		if k.broker, err = k.CA.Issue("broker"); err != nil {
			return nil, fmt.Errorf("kafka broker certificate: %w", err)
		}
		if k.Client, err = k.CA.Issue("fanout"); err != nil {
			return nil, fmt.Errorf("kafka client certificate: %w", err)
		}
	}
	if err := os.WriteFile(k.log4j, []byte(kafkaLog4j), 0o644); err != nil {
		return nil, fmt.Errorf("kafka log4j config: %w", err)
	}
	if err := os.WriteFile(k.LogPath(), nil, 0o644); err != nil { // a fresh log per StartKafka
		return nil, fmt.Errorf("kafka log: %w", err)
	}

	clusterID := newClusterID()
	deadline := time.Now().Add(kafkaReadyTimeout)
	// Ports are free when picked and taken when java binds them; someone else
	// may get there first. Then the broker dies with a BindException: pick
	// again, from an empty data dir.
	for attempt := 1; ; attempt++ {
		port, cport, err := freePortPair()
		if err != nil {
			return nil, err
		}
		k.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		var sport, tport int
		if k.secure != nil {
			if sport, tport, err = freePortPair(); err != nil {
				return nil, err
			}
			k.SASLSSLAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(sport))
			k.SSLAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tport))
			oport, _, err := freePortPair()
			if err != nil {
				return nil, err
			}
			k.OAuthAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(oport))
		}
		if err := k.writeProps(opts.Partitions, port, cport, sport, tport); err != nil {
			return nil, err
		}
		if err := k.format(clusterID); err != nil {
			return nil, err
		}
		k.mu.Lock()
		logStart := fileSize(k.LogPath())
		err = k.startLocked(deadline)
		k.mu.Unlock()
		if err == nil {
			return k, nil
		}
		if attempt < 3 && bytes.Contains(readFrom(k.LogPath(), logStart), []byte("BindException")) {
			continue
		}
		return nil, err
	}
}

// Stop sends SIGTERM to the broker's PID, waits up to 20s for a controlled
// shutdown, then sends SIGKILL (and reports that it had to). Stopping a
// stopped or killed broker does nothing.
func (k *Kafka) Stop() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stopLocked()
}

// Kill sends SIGKILL to the broker's PID and waits for it to die: a crash, for
// fault tests. Restart brings it back with the data that reached its files.
func (k *Kafka) Kill() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cmd == nil {
		return nil
	}
	k.note("SIGKILL broker pid %d", k.cmd.Process.Pid)
	if err := k.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill kafka broker pid %d: %w", k.cmd.Process.Pid, err)
	}
	<-k.exited
	k.cmd = nil
	return nil
}

// Restart stops the broker (if it still runs) and starts it again on the same
// ports, cluster id and data, returning once it is ready as in StartKafka.
// After Kill this is a crash recovery: the broker replays its logs first.
func (k *Kafka) Restart() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.stopLocked(); err != nil {
		k.note("%v", err) // it is down now either way; say so in the log
	}
	return k.startLocked(time.Now().Add(kafkaReadyTimeout))
}

// LogPath is the file that receives the broker's stdout and stderr (its
// log4j output at INFO, and any JVM crash), across restarts.
func (k *Kafka) LogPath() string { return filepath.Join(k.dir, "broker.log") }

// Version is the Kafka version of the jars, e.g. "4.4.0".
func (k *Kafka) Version() string { return k.version }

// startLocked execs the broker and waits for it to pass the readiness probe;
// when it does not by deadline, it is killed. k.mu is held.
func (k *Kafka) startLocked(deadline time.Time) error {
	logf, err := os.OpenFile(k.LogPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("kafka log: %w", err)
	}
	cmd := exec.Command(k.java,
		"-Xms128m", "-Xmx512m",
		"-XX:+ExitOnOutOfMemoryError",
		"-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile="+k.log4j,
		"-cp", filepath.Join(k.lib, "*"),
		"kafka.Kafka", k.props)
	cmd.Dir = k.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childProcAttr()
	k.note("starting Kafka %s: %s", k.version, strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start kafka broker: %w", err)
	}
	k.cmd, k.exited, k.err = cmd, make(chan struct{}), nil
	go func(exited chan struct{}) { // owned by k: stopLocked and Kill wait for it
		k.err = cmd.Wait()
		logf.Close()
		close(exited)
	}(k.exited)

	start := time.Now()
	if err := k.waitReady(deadline); err != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-k.exited
		k.cmd = nil
		return fmt.Errorf("kafka %s broker (pid %d, %s) not ready after %.1fs: %w\n--- %s ends: ---\n%s",
			k.version, cmd.Process.Pid, k.Addr, time.Since(start).Seconds(), err, k.LogPath(), logTail(k.LogPath(), kafkaLogTail))
	}
	k.note("broker pid %d ready at %s after %.1fs", cmd.Process.Pid, k.Addr, time.Since(start).Seconds())
	return nil
}

// stopLocked is Stop; k.mu is held.
func (k *Kafka) stopLocked() error {
	if k.cmd == nil {
		return nil
	}
	cmd := k.cmd
	defer func() { k.cmd = nil }()
	k.note("SIGTERM broker pid %d", cmd.Process.Pid)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop kafka broker pid %d: %w", cmd.Process.Pid, err)
	}
	select {
	case <-k.exited:
		k.note("broker pid %d exited: %v", cmd.Process.Pid, k.err)
		return nil // a broker stopped by SIGTERM exits 143: that is success
	case <-time.After(kafkaStopTimeout):
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-k.exited
	return fmt.Errorf("kafka broker pid %d still running %s after SIGTERM; sent SIGKILL", cmd.Process.Pid, kafkaStopTimeout)
}

// waitReady polls until the broker serves a client end to end, the broker
// process exits, or deadline passes. Each check gets a fresh topic and group
// so a half-done earlier attempt cannot satisfy it.
func (k *Kafka) waitReady(deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	go func(exited chan struct{}) { // ends with waitReady: cancel or exit
		select {
		case <-exited:
			cancel()
		case <-ctx.Done():
		}
	}(k.exited)

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(k.Addr),
		kgo.DialTimeout(2*time.Second),
		kgo.RecordDeliveryTimeout(10*time.Second),
		kgo.RetryTimeout(10*time.Second),
	)
	if err != nil {
		return fmt.Errorf("readiness client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	var last error
	for n := 0; ; n++ {
		actx, acancel := context.WithTimeout(ctx, 15*time.Second)
		last = probeKafka(actx, cl, adm, fmt.Sprintf("fanout-ready-%d-%d", time.Now().UnixNano(), n))
		acancel()
		if last == nil {
			return nil
		}
		select {
		case <-k.exited:
			return fmt.Errorf("broker exited (%v) while starting; last probe: %w", k.err, last)
		case <-ctx.Done():
			return fmt.Errorf("last probe: %w", last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// probeKafka is one readiness check: metadata names this broker as both
// broker and active controller; a topic can be created, produced to with
// acks=all (this needs a producer id from the controller); the group
// coordinator takes a commit (the first one creates __consumer_offsets);
// and the group and topic can be deleted.
func probeKafka(ctx context.Context, cl *kgo.Client, adm *kadm.Client, name string) error {
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if len(md.Brokers) != 1 || md.Controller != 1 {
		return fmt.Errorf("metadata: %d brokers, controller %d; want 1 broker, controller 1", len(md.Brokers), md.Controller)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, name); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: name, Value: []byte("ready?")}).FirstErr(); err != nil {
		return fmt.Errorf("produce to %s: %w", name, err)
	}
	var offs kadm.Offsets
	offs.AddOffset(name, 0, 1, -1)
	if resp, err := adm.CommitOffsets(ctx, name, offs); err != nil || resp.Error() != nil {
		return fmt.Errorf("commit offset for group %s: %w", name, errors.Join(err, resp.Error()))
	}
	if resp, err := adm.DeleteGroups(ctx, name); err != nil || resp.Error() != nil {
		return fmt.Errorf("delete group %s: %w", name, errors.Join(err, resp.Error()))
	}
	if _, err := adm.DeleteTopic(ctx, name); err != nil {
		return fmt.Errorf("delete topic %s: %w", name, err)
	}
	return nil
}

// writeProps writes server.properties for one combined broker+controller.
func (k *Kafka) writeProps(partitions, port, cport, sport, tport int) error {
	listeners := fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", port)
	protocols := "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
	if k.secure != nil {
		listeners += fmt.Sprintf(",SASL_SSL://127.0.0.1:%d,SSL://127.0.0.1:%d,SASL_PLAINTEXT://%s", sport, tport, k.OAuthAddr)
		protocols += ",SASL_SSL:SASL_SSL,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"
	}
	p := fmt.Sprintf(`# Written by fanout e2e/services/kafka.go: one KRaft node, broker and controller.
process.roles=broker,controller
node.id=1
# A static quorum of this node; Kafka 4.x formats and starts with it (no --standalone).
controller.quorum.voters=1@127.0.0.1:%[2]d
listeners=%[5]s,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=%[5]s
listener.security.protocol.map=%[6]s
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=%[3]s

num.partitions=%[4]d
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
# After a SIGKILL the restarted controller refuses the broker's new registration
# (DUPLICATE_BROKER_REGISTRATION) until the dead incarnation's session expires:
# 9s by default. Shorter makes Kill+Restart ~5s faster; 4 missed heartbeats
# (a 3s+ stall of the JVM) would fence the broker.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000

# Internal topics: one replica, few partitions (fast first commit/transaction).
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=4
`, port, cport, filepath.Join(k.dir, "data"), partitions, listeners, protocols)
	if k.secure != nil {
		p += secureProps(k.secure, k.broker, k.CA)
	}
	if err := os.WriteFile(k.props, []byte(p), 0o644); err != nil {
		return fmt.Errorf("kafka server.properties: %w", err)
	}
	return nil
}

// format empties LogDir/data and lays down a KRaft log for clusterID.
func (k *Kafka) format(clusterID string) error {
	if err := os.RemoveAll(filepath.Join(k.dir, "data")); err != nil {
		return fmt.Errorf("kafka data dir: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), kafkaFormatTime)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.java,
		"-Dlog4j2.configurationFile="+k.log4j,
		"-cp", filepath.Join(k.lib, "*"),
		"kafka.tools.StorageTool", "format", "-t", clusterID, "-c", k.props)
	cmd.Dir = k.dir
	out, err := cmd.CombinedOutput()
	k.note("kafka-storage format -t %s:\n%s", clusterID, bytes.TrimSpace(out))
	if err != nil {
		return fmt.Errorf("kafka.tools.StorageTool format: %w\n%s", err, bytes.TrimSpace(out))
	}
	return nil
}

// note appends one line from the harness to the broker log, so the log tells
// the whole story: starts, stops, restarts.
func (k *Kafka) note(format string, args ...any) {
	f, err := os.OpenFile(k.LogPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "=== fanout harness %s: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// findKafkaLib finds the jar directory the way e2e/install.sh fills it.
func findKafkaLib() (lib, version string, err error) {
	if lib := os.Getenv("FANOUT_KAFKA_LIB"); lib != "" {
		v, err := kafkaJarVersion(lib)
		if err != nil {
			return "", "", fmt.Errorf("FANOUT_KAFKA_LIB=%s: %w", lib, err)
		}
		return lib, v, nil
	}
	cache := os.Getenv("FANOUT_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "", fmt.Errorf("Kafka jars not found: run e2e/install.sh (no FANOUT_CACHE and %w)", err)
		}
		cache = filepath.Join(home, ".cache", "fanout")
	}
	pattern := filepath.Join(cache, "kafka-4.*", "lib")
	dirs, _ := filepath.Glob(pattern)
	var best []int
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, kafkaLibMarker)); err != nil {
			continue // a download that did not finish
		}
		v, err := kafkaJarVersion(d)
		if err != nil {
			continue
		}
		if n := versionNumbers(v); best == nil || compareVersions(n, best) > 0 {
			lib, version, best = d, v, n
		}
	}
	if lib == "" {
		return "", "", fmt.Errorf("Kafka jars not found: run e2e/install.sh (no complete %s, and FANOUT_KAFKA_LIB is not set)", pattern)
	}
	return lib, version, nil
}

// kafkaJarVersion reads the version off lib/kafka_2.13-<version>.jar.
func kafkaJarVersion(lib string) (string, error) {
	jars, _ := filepath.Glob(filepath.Join(lib, "kafka_2.13-*.jar"))
	for _, j := range jars {
		v := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(j), "kafka_2.13-"), ".jar")
		if v != "" && !strings.ContainsAny(v, "-") { // not -test, -sources, -javadoc
			return v, nil
		}
	}
	return "", fmt.Errorf("Kafka jars not found: run e2e/install.sh (no kafka_2.13-<version>.jar in %s)", lib)
}

func versionNumbers(v string) []int {
	var n []int
	for _, f := range strings.Split(v, ".") {
		i, _ := strconv.Atoi(f)
		n = append(n, i)
	}
	return n
}

func compareVersions(a, b []int) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// newClusterID makes what `kafka-storage random-uuid` prints, without a JVM:
// a random (version 4) UUID in unpadded URL-safe base64, never starting with
// '-' (Kafka's Uuid.randomUuid rejects those: they read as flags).
func newClusterID() string {
	for {
		var b [16]byte
		_, _ = rand.Read(b[:])
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		if id := base64.RawURLEncoding.EncodeToString(b[:]); id[0] != '-' {
			return id
		}
	}
}

// freePortPair picks two distinct free loopback ports: PLAINTEXT, CONTROLLER.
// (FreePort needs a testing.TB, which StartKafka does not have.)
func freePortPair() (port, cport int, err error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range 2 { // both held open at once, so they differ
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, fmt.Errorf("find a free port for kafka: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports[0], ports[1], nil
}

// childProcAttr puts the broker in its own process group (a ^C in the
// terminal reaches the test, which then stops the broker by PID) and, on
// Linux, asks the kernel to SIGKILL it if the test binary dies first (go
// test -timeout, kill -9), so no orphan broker keeps its ports and heap.
// Pdeathsig exists only on Linux; setting it by name keeps this file
// building everywhere.
// ChildProcAttr is childProcAttr for other processes tests start (the fanout
// binary under test), so they do not outlive a killed test binary either.
func ChildProcAttr() *syscall.SysProcAttr { return childProcAttr() }

func childProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if f := reflect.ValueOf(a).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
	return a
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func readFrom(path string, off int64) []byte {
	b, _ := os.ReadFile(path)
	if off > int64(len(b)) {
		return nil
	}
	return b[off:]
}

// logTail returns the last n lines of a log, each cut to 500 bytes.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 500 {
			lines[i] = l[:500] + " …"
		}
	}
	return strings.Join(lines, "\n")
}

// kafkaLog4j sends the broker's log to stdout, which the harness points at
// LogPath: INFO, with the loggers that repeat themselves at WARN.
const kafkaLog4j = `status = warn
name = fanout-e2e-kafka
appender.out.type = Console
appender.out.name = STDOUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
# The full config dump on every start; server.properties is next to the log.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.requestchannel.name = kafka.network.RequestChannel$
logger.requestchannel.level = WARN
# Thread start/stop chatter, ~300 lines per start and stop.
logger.reaper.name = org.apache.kafka.server.quota.ClientQuotaManager$ThrottledChannelReaper
logger.reaper.level = WARN
logger.purgatory.name = org.apache.kafka.server.purgatory.DelayedOperationPurgatory$ExpiredOperationReaper
logger.purgatory.level = WARN
logger.timer.name = org.apache.kafka.server.util.timer.SystemTimerReaper$Reaper
logger.timer.level = WARN
logger.events.name = org.apache.kafka.coordinator.common.runtime.MultiThreadedEventProcessor$EventProcessorThread
logger.events.level = WARN
logger.queue.name = org.apache.kafka.queue.KafkaEventQueue
logger.queue.level = WARN
`
