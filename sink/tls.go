package sink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/fanout-dev/fanout/internal/tlsfile"
)

// TLSConfig is a sink's TLS to its API: the authority that signs the API's
// certificate (a private CA) and the client certificate of mutual TLS.
type TLSConfig struct {
	// CAFile is a PEM file of the CA certificates this sink trusts, in place
	// of the system roots. Default "": the system roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate (chain) and its
	// key, for an API that requires mutual TLS; both or neither. They are
	// read again when either file changes (a rotated certificate is used by
	// the next new connection, without a restart).
	CertFile, KeyFile string
	// ServerName is the name checked against the API's certificate; default
	// the URL's host.
	ServerName string
	// MinVersion is "1.2" (the default) or "1.3".
	MinVersion string
}

func (t TLSConfig) set() bool { return t != TLSConfig{} }

var tlsVersions = map[string]uint16{"": tls.VersionTLS12, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// build returns the crypto/tls config for t; nil when t is not set. The
// error names the field.
func (t TLSConfig) build(name, prefix string) (*tls.Config, error) {
	if !t.set() {
		return nil, nil
	}
	v, ok := tlsVersions[t.MinVersion]
	if !ok {
		return nil, configError(name, prefix+"min_version", "%q is not 1.2 or 1.3", t.MinVersion)
	}
	c := &tls.Config{MinVersion: v, ServerName: t.ServerName}
	if t.CAFile != "" {
		pool, err := tlsfile.CAPool(t.CAFile)
		if err != nil {
			return nil, configError(name, prefix+"ca_file", "%s", err)
		}
		c.RootCAs = pool
	}
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		if t.CertFile == "" {
			return nil, configError(name, prefix+"cert_file", "required with key_file: a client certificate needs both")
		}
		return nil, configError(name, prefix+"key_file", "required with cert_file: a client certificate needs both")
	case t.CertFile != "":
		kp := &keyPair{cert: t.CertFile, key: t.KeyFile}
		if _, err := kp.get(); err != nil {
			return nil, configError(name, prefix+"cert_file", "%s", err)
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get() }
	}
	return c, nil
}

// keyPair is a client certificate read from files, read again when either
// file's size or modification time changes. A rotation caught half-written
// (the pair does not match) keeps the previous pair until both files agree.
type keyPair struct {
	cert, key string

	mu      sync.Mutex
	stamp   [2]fileStamp
	current *tls.Certificate
}

type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.Size(), fi.ModTime()}, nil
}

func (k *keyPair) get() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cs, err1 := stampOf(k.cert)
	ks, err2 := stampOf(k.key)
	if err := errors.Join(err1, err2); err != nil {
		if k.current != nil {
			return k.current, nil // files being replaced: keep what works
		}
		return nil, err
	}
	if k.current != nil && k.stamp == [2]fileStamp{cs, ks} {
		return k.current, nil
	}
	c, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		if k.current != nil {
			return k.current, nil
		}
		return nil, fmt.Errorf("client certificate %s with key %s: %w", k.cert, k.key, err)
	}
	k.current, k.stamp = &c, [2]fileStamp{cs, ks}
	return k.current, nil
}

// tlsHint is a TLS failure with the setting that fixes it. It unwraps to the
// original error, so classification (Classify) is unchanged.
type tlsHint struct {
	err  error
	hint string
}

func (e *tlsHint) Error() string { return e.err.Error() + " (" + e.hint + ")" }
func (e *tlsHint) Unwrap() error { return e.err }

// explainTLS adds to a handshake failure the setting that fixes it; other
// errors are returned as they are.
func (s *Sink) explainTLS(err error) error {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		alert    tls.AlertError
		op       *net.OpError
	)
	switch {
	case errors.As(err, &unknown):
		if s.cfg.TLS.CAFile != "" {
			return &tlsHint{err, fmt.Sprintf("the API's certificate is not signed by a CA in tls.ca_file %s: point tls.ca_file at the PEM of the CA that signed it", s.cfg.TLS.CAFile)}
		}
		return &tlsHint{err, "the API's certificate is not signed by a CA of the system roots: set tls.ca_file to the PEM file of the CA that signed it (a private CA)"}
	case errors.As(err, &hostname):
		return &tlsHint{err, "the API's certificate is for another name: set tls.server_name to a name it holds, or use that name in url"}
	case errors.As(err, &alert) || (errors.As(err, &op) && op.Op == "remote error"):
		if s.cfg.TLS.CertFile == "" {
			return &tlsHint{err, "the API refused the TLS handshake; if it requires a client certificate (mutual TLS), set tls.cert_file and tls.key_file"}
		}
		return &tlsHint{err, fmt.Sprintf("the API refused the TLS handshake; check that the CA it trusts signed tls.cert_file %s", s.cfg.TLS.CertFile)}
	}
	return err
}
