package services

import (
	"bufio"
	"errors"
	"fmt"
	"io"
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
)

const (
	redisReadyTimeout = 10 * time.Second // from start until PING answers
	redisStopTimeout  = 5 * time.Second  // from SIGTERM until SIGKILL
	redisStartTries   = 3                // ports tried when the chosen one is taken
)

// Redis is a redis-server child process on 127.0.0.1 without persistence:
// no RDB snapshots and no AOF (--save "" --appendonly no), so a restart
// loses every key.
type Redis struct {
	Addr string // 127.0.0.1:Port
	Port int
	Log  string // path of the server's log file (stdout and stderr, appended across restarts)

	dir string

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil when stopped
	exited chan struct{} // closed when cmd has been waited for
}

// StartRedis starts redis-server on a free port with its log in dir and
// returns once it answers PING. It fails with a message naming the install
// step if redis-server is not installed.
func StartRedis(dir string) (*Redis, error) {
	r := &Redis{dir: dir}
	var err error
	for range redisStartTries {
		var port int
		if port, err = freePort(); err != nil {
			return nil, err
		}
		r.Port, r.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		r.Log = filepath.Join(dir, fmt.Sprintf("redis-%d.log", port))
		if err = r.start(); !errors.Is(err, errRedisPortTaken) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// NewRedis starts a redis-server for t and stops it when t ends; the server's
// log is printed if t failed.
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	r, err := StartRedis(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("redis-server log %s:\n%s", r.Log, logTail(r.Log, 40))
		}
	})
	return r
}

// Stop sends SIGTERM to the server, kills it if it has not exited within 5s,
// and waits for it. Stopping a stopped server does nothing.
func (r *Redis) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stop()
}

// Restart stops the server and starts it again on the same port, with no keys,
// and returns once it answers PING.
func (r *Redis) Restart() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.stop(); err != nil {
		return err
	}
	// The port was ours a moment ago; another process may take it in between,
	// and then there is nothing to do but report it.
	return r.startLocked()
}

var errRedisPortTaken = errors.New("port taken")

func (r *Redis) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.startLocked()
}

// startLocked starts the process and waits for PING. r.mu must be held.
func (r *Redis) startLocked() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("redis-server not found: run e2e/install.sh (%w)", err)
	}
	logf, err := os.OpenFile(r.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("redis log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "--- fanout e2e: starting redis-server on %s at %s\n", r.Addr, time.Now().Format(time.RFC3339Nano))

	cmd := exec.Command(bin,
		"--port", strconv.Itoa(r.Port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", r.dir,
	)
	cmd.Dir = r.dir
	cmd.SysProcAttr = childProcAttr() // no orphan server if the test binary dies
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { // owned by r: stop waits for it through exited
		_ = cmd.Wait()
		close(exited)
	}()
	r.cmd, r.exited = cmd, exited

	deadline := time.Now().Add(redisReadyTimeout)
	for {
		perr := redisPing(r.Addr, cmd.Process.Pid)
		if perr == nil {
			return nil
		}
		select {
		case <-exited:
			r.cmd, r.exited = nil, nil
			log := logTail(r.Log, 20)
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("redis-server on %s: %w", r.Addr, errRedisPortTaken)
			}
			return fmt.Errorf("redis-server on %s exited at start (%v); log %s:\n%s", r.Addr, cmd.ProcessState, r.Log, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = r.stop()
			return fmt.Errorf("redis-server on %s did not answer PING within %v: %v; log %s:\n%s",
				r.Addr, redisReadyTimeout, perr, r.Log, logTail(r.Log, 20))
		}
	}
}

// stop is Stop with r.mu held.
func (r *Redis) stop() error {
	if r.cmd == nil {
		return nil
	}
	cmd, exited := r.cmd, r.exited
	select {
	case <-exited: // it exited by itself (or was shut down by a client)
	default:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(redisStopTimeout):
			_ = cmd.Process.Kill()
			select {
			case <-exited:
			case <-time.After(redisStopTimeout):
				return fmt.Errorf("redis-server pid %d on %s did not exit after SIGKILL", cmd.Process.Pid, r.Addr)
			}
		}
	}
	r.cmd, r.exited = nil, nil
	return nil
}

// redisPing sends PING and INFO server on a new connection and checks that
// the server answers +PONG and is the process pid, not another server that
// took the port before ours could bind it.
func redisPing(addr string, pid int) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("PING\r\nINFO server\r\n")); err != nil {
		return err
	}
	rd := bufio.NewReader(conn)
	line, err := rd.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	line, err = rd.ReadString('\n') // $<length> of the INFO bulk string
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
	if !strings.HasPrefix(line, "$") || err != nil {
		return fmt.Errorf("INFO server answered %q", strings.TrimSpace(line))
	}
	info := make([]byte, n)
	if _, err := io.ReadFull(rd, info); err != nil {
		return err
	}
	want := "process_id:" + strconv.Itoa(pid) + "\r\n"
	if !strings.Contains(string(info), want) {
		return fmt.Errorf("the server on %s is not pid %d", addr, pid)
	}
	return nil
}
