package services

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The broker's files and process: server.properties, the KRaft format, the
// jars and their version, ports, the child process attributes and log
// reading; kafka.go starts, stops and probes the broker with them.

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
