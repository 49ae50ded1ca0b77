package services_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanout-dev/fanout/e2e/services"
)

// TestRedis starts a server, writes a key, restarts it on the same port (the
// key is gone: no persistence), stops it (nothing listens any more) and stops
// it again (a no-op).
func TestRedis(t *testing.T) {
	r := services.NewRedis(t)
	if want := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port)); r.Addr != want {
		t.Fatalf("Addr = %q, want %q", r.Addr, want)
	}
	rawPing(t, r.Addr) // ready on return, without the client's dial retries
	ctx := t.Context()
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()

	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET on a started server: %v", err)
	}
	addr := r.Addr
	if err := r.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if r.Addr != addr {
		t.Fatalf("Restart moved the server from %s to %s", addr, r.Addr)
	}
	rawPing(t, r.Addr)
	// The pooled connection died with the old process; the next command may
	// see that once before go-redis dials again.
	err := redisEventually(t, func() error { return c.Get(ctx, "k").Err() })
	if !errors.Is(err, redis.Nil) {
		t.Fatalf("GET k after Restart: %v, want redis.Nil (no persistence)", err)
	}

	start := time.Now()
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// SIGTERM stops redis-server at once; the SIGKILL fallback comes only
	// after 5s.
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Stop took %v: SIGTERM did not stop the server", took)
	}
	if conn, err := net.DialTimeout("tcp", r.Addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after Stop", r.Addr)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	if err := r.Restart(); err != nil {
		t.Fatalf("Restart after Stop: %v", err)
	}
	rawPing(t, r.Addr)
}

// rawPing sends one PING on one new connection, with no retries.
func rawPing(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("server not ready: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatalf("PING: %v", err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "+PONG\r\n" {
		t.Fatalf("PING answered %q, %v", buf, err)
	}
}

func TestStartRedisMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	r, err := services.StartRedis(t.TempDir())
	if err == nil {
		r.Stop()
		t.Fatal("StartRedis succeeded without redis-server on PATH")
	}
	if !strings.Contains(err.Error(), "run e2e/install.sh") {
		t.Fatalf("error %q does not name the install step", err)
	}
}

// redisEventually calls f until it returns nil or redis.Nil, for up to 5s, and
// returns its last error.
func redisEventually(t *testing.T, f func() error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for {
		err := f()
		if err == nil || errors.Is(err, redis.Nil) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}
