package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fanout-dev/fanout/e2e/services"
)

// Shared by every test of the package: one broker, one redis-server, one
// binary. Tests isolate themselves by topic, group prefix and key prefix.
var (
	fanoutBin string
	kafka     *services.Kafka
	redisSrv  *services.Redis
)

func TestMain(m *testing.M) {
	os.Exit(mainWithServices(m))
}

func mainWithServices(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fanout-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	fanoutBin = filepath.Join(dir, "fanout")
	build := exec.Command("go", "build", "-o", fanoutBin, "../cmd/fanout")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build fanout:", err)
		return 1
	}
	kafka, err = services.StartKafka(services.KafkaOptions{Partitions: 3, LogDir: filepath.Join(dir, "kafka")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start Kafka:", err)
		return 1
	}
	defer kafka.Stop()
	fmt.Fprintf(os.Stderr, "e2e: real Apache Kafka %s broker at %s; log %s\n", kafka.Version(), kafka.Addr, kafka.LogPath())
	if err := os.MkdirAll(filepath.Join(dir, "redis"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	redisSrv, err = services.StartRedis(filepath.Join(dir, "redis"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start redis-server:", err)
		return 1
	}
	defer redisSrv.Stop()
	fmt.Fprintf(os.Stderr, "e2e: real redis-server at %s\n", redisSrv.Addr)
	return m.Run()
}
