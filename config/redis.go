package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Redis modes: one server, a Redis Cluster, or a primary found through Sentinel.
const (
	RedisSingle   = "single"
	RedisCluster  = "cluster"
	RedisSentinel = "sentinel"
)

// RedisTLS is how fanout connects to Redis (and to the sentinels) over TLS.
type RedisTLS struct {
	Enabled    bool   `yaml:"enabled"`     // default false
	CAFile     string `yaml:"ca_file"`     // default "": the system roots
	CertFile   string `yaml:"cert_file"`   // default "": no client certificate; with key_file
	KeyFile    string `yaml:"key_file"`    // default ""; with cert_file
	ServerName string `yaml:"server_name"` // default "": the host of the address dialled
}

// Sentinel says where the sentinels are and which primary they watch.
type Sentinel struct {
	MasterName string   `yaml:"master_name"` // required in sentinel mode
	Addrs      []string `yaml:"addrs"`       // required in sentinel mode: host:port of the sentinels
	Username   string   `yaml:"username"`    // default "": the sentinels' own ACL user
	Password   string   `yaml:"password"`    // default ""; use ${SENTINEL_PASSWORD}
}

// Enabled reports whether a Redis store is configured (else the in-memory one).
func (r Redis) Enabled() bool {
	return r.Addr != "" || r.Sentinel.MasterName != "" || len(r.Sentinel.Addrs) > 0
}

// Addrs returns addr's comma-separated addresses, trimmed.
func (r Redis) Addrs() []string {
	var as []string
	for _, a := range strings.Split(r.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			as = append(as, a)
		}
	}
	return as
}

// EffectiveMode is Mode, or the mode auto-detection chooses when Mode is "".
func (r Redis) EffectiveMode() string {
	switch {
	case r.Mode != "":
		return r.Mode
	case r.Sentinel.MasterName != "" || len(r.Sentinel.Addrs) > 0:
		return RedisSentinel
	case len(r.Addrs()) > 1:
		return RedisCluster
	}
	return RedisSingle
}

// Config returns the tls.Config of t, nil when TLS is off. Errors name the
// file and the field, never a secret.
func (t RedisTLS) Config() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: no PEM certificate in %s", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, errors.New("cert_file and key_file go together")
		}
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			// tls's own message names the problem (unreadable file, no PEM,
			// a key that does not match), never the key's bytes.
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// validateRedis checks the mode, the addresses, TLS and Sentinel settings.
func (c *Config) validateRedis() []Problem {
	var ps []Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Line: c.lineOf(path), Msg: fmt.Sprintf(format, args...)})
	}
	r := c.Redis
	if r.Mode != "" && r.Mode != RedisSingle && r.Mode != RedisCluster && r.Mode != RedisSentinel {
		add("redis.mode", "%q is not single, cluster or sentinel (or empty: detected)", r.Mode)
		return ps
	}
	addrs := r.Addrs()
	for _, a := range addrs {
		if !hostPort(a) {
			add("redis.addr", "%q is not host:port", a)
		}
	}
	if !r.Enabled() {
		if r.Mode != "" || r.TLS != (RedisTLS{}) {
			add("redis.addr", "required with the other redis settings: empty means the in-memory store")
		}
		return ps
	}
	switch r.EffectiveMode() {
	case RedisSingle:
		if len(addrs) > 1 {
			add("redis.mode", "single takes one address, redis.addr has %d: use cluster for a Redis Cluster", len(addrs))
		}
		if len(addrs) == 0 {
			add("redis.addr", "required in single mode")
		}
	case RedisCluster:
		if len(addrs) == 0 {
			add("redis.addr", "required in cluster mode: one or more nodes, comma-separated")
		}
		if r.DB != 0 {
			add("redis.db", "%d: a Redis Cluster has only db 0", r.DB)
		}
	case RedisSentinel:
		if r.Sentinel.MasterName == "" {
			add("redis.sentinel.master_name", "required in sentinel mode: the name the sentinels monitor")
		}
		if len(r.Sentinel.Addrs) == 0 {
			add("redis.sentinel.addrs", "required in sentinel mode: host:port of one or more sentinels")
		}
		if len(addrs) > 0 {
			add("redis.addr", "must be empty in sentinel mode: the sentinels name the primary (list them in redis.sentinel.addrs)")
		}
	}
	if r.EffectiveMode() != RedisSentinel && (r.Sentinel.MasterName != "" || len(r.Sentinel.Addrs) > 0 || r.Sentinel.Username != "" || r.Sentinel.Password != "") {
		add("redis.sentinel", "set, but redis.mode is %s: remove it or use mode sentinel", r.EffectiveMode())
	}
	for i, a := range r.Sentinel.Addrs {
		if !hostPort(a) {
			add(fmt.Sprintf("redis.sentinel.addrs[%d]", i), "%q is not host:port", a)
		}
	}
	t := r.TLS
	if !t.Enabled {
		if t != (RedisTLS{}) {
			add("redis.tls.enabled", "false, but other redis.tls fields are set: set enabled: true")
		}
		return ps
	}
	for _, f := range []struct{ path, file string }{
		{"redis.tls.ca_file", t.CAFile}, {"redis.tls.cert_file", t.CertFile}, {"redis.tls.key_file", t.KeyFile},
	} {
		if f.file == "" {
			continue
		}
		if _, err := os.Stat(f.file); err != nil {
			add(f.path, "%v", err)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		if t.CertFile == "" {
			add("redis.tls.cert_file", "required with key_file: a client certificate and its key go together")
		} else {
			add("redis.tls.key_file", "required with cert_file: a client certificate and its key go together")
		}
		return ps
	}
	if len(ps) == 0 {
		if _, err := t.Config(); err != nil {
			add("redis.tls", "%v", err)
		}
	}
	return ps
}

// hostPort reports whether s is host:port with a numeric port.
func hostPort(s string) bool {
	i := strings.LastIndex(s, ":")
	if i <= 0 || i == len(s)-1 {
		return false
	}
	for _, c := range s[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
