package services

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
