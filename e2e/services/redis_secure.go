package services

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
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
	"github.com/redis/go-redis/v9"
)

// Redis deployments of the security tests: a TLS server with a
// least-privilege ACL user, a 3-master Redis Cluster and a Sentinel-managed
// primary/replica pair, all on 127.0.0.1, every one a real redis-server.

const (
	// FanoutACLPrefix is the key pattern the least-privilege user may touch.
	FanoutACLPrefix = "fanout:dedupe:"
	// FanoutACLCommands are the commands fanout's dedupe store and barriers
	// send (scripts' own calls included: ACLs apply inside EVAL too), and the
	// connection handshake go-redis sends. README's ACL SETUSER line is this.
	FanoutACLCommands = "-@all +set +get +del +pexpire +pexpireat +zadd +zrange +zrem +zremrangebyscore +time +evalsha +eval +hello +auth +ping"
	// SentinelMaster is the name the sentinel monitors.
	SentinelMaster = "fanout"
)

// fanoutUser is the config line of the least-privilege user, with extra
// commands (cluster mode needs +cluster|slots).
func fanoutUser(user, password, extra string) string {
	return fmt.Sprintf("user %s on >%s resetchannels ~%s* %s%s\n", user, password, FanoutACLPrefix, FanoutACLCommands, extra)
}

// FanoutClusterACL is what cluster mode adds to FanoutACLCommands: go-redis
// reads the slot map.
const FanoutClusterACL = " +cluster|slots"

// TLSFiles are PEM files of a test CA and a server and client certificate it
// signed; the server's names are 127.0.0.1 and localhost.
type TLSFiles struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// NewTLSFiles generates a CA, a server and a client certificate into dir
// (testcert.New: ECDSA P-256, valid for a day). Both leaves serve either way:
// redis-server presents its certificate as a client too (replication, a
// sentinel's links).
func NewTLSFiles(dir string) (TLSFiles, error) {
	ca, err := testcert.New(dir)
	if err != nil {
		return TLSFiles{}, err
	}
	server, err := ca.Issue("server")
	if err != nil {
		return TLSFiles{}, err
	}
	client, err := ca.Issue("client")
	if err != nil {
		return TLSFiles{}, err
	}
	return TLSFiles{CA: ca.CAFile, ServerCert: server.CertFile, ServerKey: server.KeyFile,
		ClientCert: client.CertFile, ClientKey: client.KeyFile}, nil
}

// ClientTLS is the tls.Config of a client that trusts the CA and presents the
// client certificate.
func (f TLSFiles) ClientTLS() (*tls.Config, error) {
	ca, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	pair, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, nil
}

// RedisNode is one redis-server (data node or sentinel) started from a
// config file the test wrote.
type RedisNode struct {
	Addr string // 127.0.0.1:Port
	Port int
	Log  string

	conf  string
	ready func(ctx context.Context) error

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Pid is the server's process id, 0 when stopped.
func (n *RedisNode) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// startNode writes conf (after "port" and the common lines) to dir and starts
// redis-server on it, sentinel mode when sentinel is set, then waits for
// ready.
//
// The port comes from pick (freePort when nil); another process may
// take it before the server binds it, and then startNode tries a new one.
func startNode(dir string, pick func() (int, error), sentinel bool, confOf func(port int) string, ready func(ctx context.Context, addr string) error) (*RedisNode, error) {
	if pick == nil {
		pick = freePort
	}
	var err error
	for range redisStartTries {
		var port int
		if port, err = pick(); err != nil {
			return nil, err
		}
		var n *RedisNode
		n, err = startNodeOn(dir, port, sentinel, confOf(port), ready)
		if !errors.Is(err, errRedisPortTaken) {
			return n, err
		}
	}
	return nil, err
}

func startNodeOn(dir string, port int, sentinel bool, conf string, ready func(ctx context.Context, addr string) error) (*RedisNode, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found: run e2e/install.sh (%w)", err)
	}
	n := &RedisNode{Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	n.conf = filepath.Join(dir, fmt.Sprintf("redis-%d.conf", port))
	n.Log = filepath.Join(dir, fmt.Sprintf("redis-%d.log", port))
	common := fmt.Sprintf("bind 127.0.0.1\ndaemonize no\ndir %s\nlogfile %s\n", dir, n.Log)
	if !sentinel {
		common += "save \"\"\nappendonly no\n"
	}
	if err := os.WriteFile(n.conf, []byte(common+conf), 0o600); err != nil {
		return nil, err
	}
	args := []string{n.conf}
	if sentinel {
		args = append(args, "--sentinel")
	}
	n.ready = func(ctx context.Context) error { return ready(ctx, n.Addr) }
	if err := n.start(bin, args); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *RedisNode) start(bin string, args []string) error {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), redisReadyTimeout)
	defer cancel()
	for {
		err := n.ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			log := logTail(n.Log, 20)
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("redis-server on %s: %w", n.Addr, errRedisPortTaken)
			}
			return fmt.Errorf("redis-server %s exited at start; log %s:\n%s", n.Addr, n.Log, log)
		case <-ctx.Done():
			_ = n.Kill()
			return fmt.Errorf("redis-server %s not ready within %v: %v; log %s:\n%s", n.Addr, redisReadyTimeout, err, n.Log, logTail(n.Log, 20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Freeze stops the process (SIGSTOP) until Thaw: it neither reads nor
// answers, as a stalled replica.
func (n *RedisNode) Freeze() error { return n.send(syscall.SIGSTOP) }

// Thaw resumes a frozen process (SIGCONT).
func (n *RedisNode) Thaw() error { return n.send(syscall.SIGCONT) }

func (n *RedisNode) send(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return errors.New("redis-server " + n.Addr + " is not running")
	}
	return n.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL (a crash: nothing is flushed or handed over) and waits.
func (n *RedisNode) Kill() error { return n.signal(syscall.SIGKILL) }

// Stop sends SIGTERM, then SIGKILL after 5s, and waits.
func (n *RedisNode) Stop() error { return n.signal(syscall.SIGTERM) }

func (n *RedisNode) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return nil
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.exited:
	case <-time.After(redisStopTimeout):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
	n.cmd, n.exited = nil, nil
	return nil
}

// pingAs returns a ready check that PINGs with opts (TLS, user) filled in.
func pingAs(opts redis.Options) func(ctx context.Context, addr string) error {
	return func(ctx context.Context, addr string) error {
		o := opts
		o.Addr, o.DialTimeout, o.MaxRetries = addr, 500*time.Millisecond, -1
		c := redis.NewClient(&o)
		defer c.Close()
		return c.Ping(ctx).Err()
	}
}

// nodePort returns a free port whose +10000 (the cluster bus port) is free too.
func nodePort() (int, error) {
	for range 20 {
		p, err := freePort()
		if err != nil {
			return 0, err
		}
		if p+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+10000)))
		if err == nil {
			l.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free port pair for a cluster node")
}

func cleanupNodes(t testing.TB, nodes ...*RedisNode) {
	t.Cleanup(func() {
		for _, n := range nodes {
			_ = n.Stop()
			if t.Failed() {
				t.Logf("redis log %s:\n%s", n.Log, logTail(n.Log, 30))
			}
		}
	})
}

// RedisTLS is a redis-server that listens on TLS only and requires client
// certificates, with an admin user (default) and a least-privilege user.
type RedisTLS struct {
	*RedisNode
	Files         TLSFiles
	AdminPassword string
	User          string // fanout's least-privilege user
	Password      string
}

// NewRedisTLS starts a TLS-only redis-server (tls-auth-clients yes) for t.
// User may run FanoutACLCommands on keys under FanoutACLPrefix only.
func NewRedisTLS(t testing.TB) *RedisTLS {
	t.Helper()
	dir := t.TempDir()
	files, err := NewTLSFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &RedisTLS{Files: files, AdminPassword: "admin-" + randHex(), User: "fanout", Password: "fanout-" + randHex()}
	clientTLS, err := files.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	conf := func(port int) string {
		return fmt.Sprintf(`port 0
tls-port %d
tls-cert-file %s
tls-key-file %s
tls-ca-cert-file %s
tls-auth-clients yes
user default on >%s ~* &* +@all
%s`, port, files.ServerCert, files.ServerKey, files.CA, r.AdminPassword, fanoutUser(r.User, r.Password, ""))
	}
	n, err := startNode(dir, nil, false, conf, pingAs(redis.Options{TLSConfig: clientTLS, Password: r.AdminPassword}))
	if err != nil {
		t.Fatal(err)
	}
	r.RedisNode = n
	cleanupNodes(t, n)
	return r
}

// RedisCluster is a Redis Cluster of three masters (no replicas); default
// is the admin user without a password, User the least-privilege one.
type RedisCluster struct {
	Nodes          []*RedisNode
	User, Password string
}

// Addrs returns the nodes' addresses.
func (c *RedisCluster) Addrs() []string {
	as := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		as[i] = n.Addr
	}
	return as
}

// NewRedisCluster starts three cluster-enabled redis-servers for t, joins
// them with redis-cli --cluster create and waits for cluster_state:ok on
// every node.
func NewRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	dir := t.TempDir()
	c := &RedisCluster{User: "fanout", Password: "fanout-" + randHex()}
	for range 3 {
		conf := func(port int) string {
			return fmt.Sprintf("port %d\ncluster-enabled yes\ncluster-config-file nodes-%d.conf\ncluster-node-timeout 2000\n%s", port, port, fanoutUser(c.User, c.Password, FanoutClusterACL))
		}
		n, err := startNode(dir, nodePort, false, conf, pingAs(redis.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, n)
		cleanupNodes(t, n)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: n.Addr})
		for {
			info, err := cl.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				cl.Close()
				t.Fatalf("cluster node %s not ok after 20s: %v\n%s", n.Addr, err, info)
			}
			time.Sleep(100 * time.Millisecond)
		}
		cl.Close()
	}
	return c
}

// RedisSentinel is a primary, its replica and one sentinel (quorum 1) that
// monitors the primary as SentinelMaster and fails over after DownAfter.
// The data nodes have the least-privilege User besides the password-less
// default (which replication and the sentinel use); the sentinel requires
// SentinelPassword. With TLS every node listens on TLS only and requires
// client certificates, replication and the sentinel's links included.
type RedisSentinel struct {
	Primary, Replica, Sentinel *RedisNode
	DownAfter                  time.Duration
	User, Password             string
	SentinelPassword           string
	TLS                        *TLSFiles

	clientTLS *tls.Config
}

// NewRedisSentinel starts the pair and the sentinel for t and returns once
// the replica is in sync and the sentinel knows it.
func NewRedisSentinel(t testing.TB) *RedisSentinel { return newRedisSentinel(t, false) }

// NewRedisSentinelTLS is NewRedisSentinel with TLS everywhere.
func NewRedisSentinelTLS(t testing.TB) *RedisSentinel { return newRedisSentinel(t, true) }

func newRedisSentinel(t testing.TB, withTLS bool) *RedisSentinel {
	t.Helper()
	dir := t.TempDir()
	s := &RedisSentinel{DownAfter: time.Second, User: "fanout", Password: "fanout-" + randHex(), SentinelPassword: "sentinel-" + randHex()}
	listen := func(port int) string { return fmt.Sprintf("port %d\n", port) }
	if withTLS {
		files, err := NewTLSFiles(dir)
		if err != nil {
			t.Fatal(err)
		}
		if s.clientTLS, err = files.ClientTLS(); err != nil {
			t.Fatal(err)
		}
		s.TLS = &files
		listen = func(port int) string {
			return fmt.Sprintf("port 0\ntls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients yes\ntls-replication yes\n",
				port, files.ServerCert, files.ServerKey, files.CA)
		}
	}
	user := fanoutUser(s.User, s.Password, "")
	var err error
	if s.Primary, err = startNode(dir, nil, false, func(port int) string { return listen(port) + user }, pingAs(*s.options("", ""))); err != nil {
		t.Fatal(err)
	}
	cleanupNodes(t, s.Primary)
	replicaConf := func(port int) string {
		return listen(port) + fmt.Sprintf("replicaof 127.0.0.1 %d\n%s", s.Primary.Port, user)
	}
	if s.Replica, err = startNode(dir, nil, false, replicaConf, pingAs(*s.options("", ""))); err != nil {
		t.Fatal(err)
	}
	cleanupNodes(t, s.Replica)
	sconf := func(port int) string {
		return listen(port) + fmt.Sprintf(`sentinel monitor %s 127.0.0.1 %d 1
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s 10000
sentinel parallel-syncs %s 1
requirepass %s
`, SentinelMaster, s.Primary.Port, SentinelMaster, s.DownAfter.Milliseconds(), SentinelMaster, SentinelMaster, s.SentinelPassword)
	}
	if s.Sentinel, err = startNode(dir, nil, true, sconf, pingAs(*s.options("", s.SentinelPassword))); err != nil {
		t.Fatal(err)
	}
	cleanupNodes(t, s.Sentinel)

	ctx := context.Background()
	rc := s.Admin(s.Replica.Addr)
	defer rc.Close()
	sc := redis.NewSentinelClient(s.options(s.Sentinel.Addr, s.SentinelPassword))
	defer sc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, _ := rc.Info(ctx, "replication").Result()
		replicas, _ := sc.Replicas(ctx, SentinelMaster).Result()
		if strings.Contains(info, "master_link_status:up") && len(replicas) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s not in sync or unknown to the sentinel after 30s:\n%s\nsentinel's replicas: %v", s.Replica.Addr, info, replicas)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// ClientTLS is the client side of TLS (CA and client certificate), nil
// without TLS.
func (s *RedisSentinel) ClientTLS() *tls.Config { return s.clientTLS }

func (s *RedisSentinel) options(addr, password string) *redis.Options {
	return &redis.Options{Addr: addr, Password: password, TLSConfig: s.clientTLS}
}

// Admin is a client of the data node at addr as the password-less default
// user (over TLS when the nodes use it).
func (s *RedisSentinel) Admin(addr string) *redis.Client { return redis.NewClient(s.options(addr, "")) }

// MasterAddr asks the sentinel which address is the primary now.
func (s *RedisSentinel) MasterAddr(ctx context.Context) (string, error) {
	sc := redis.NewSentinelClient(s.options(s.Sentinel.Addr, s.SentinelPassword))
	defer sc.Close()
	a, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(a[0], a[1]), nil
}

func randHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
