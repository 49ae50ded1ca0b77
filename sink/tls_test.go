package sink

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCA signs certificates for the TLS tests, written as PEM files in dir.
type testCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string // CA certificate file
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{t: t, dir: t.TempDir(), cert: cert, key: key}
	ca.pem = filepath.Join(ca.dir, name+"-ca.pem")
	writePEM(t, ca.pem, "CERTIFICATE", der)
	return ca
}

// issue writes <name>.pem and <name>-key.pem: a certificate for 127.0.0.1
// and localhost, usable by a server and a client.
func (ca *testCA) issue(name string) (certFile, keyFile string) {
	ca.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+"-key.pem")
	writePEM(ca.t, certFile, "CERTIFICATE", der)
	writePEM(ca.t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// mtlsServer is an HTTPS API whose certificate ca signs and which requires
// a client certificate ca signs; it records each request's client CN.
type mtlsServer struct {
	*httptest.Server
	mu  sync.Mutex
	cns []string
}

func newMTLSServer(t *testing.T, ca *testCA) *mtlsServer {
	t.Helper()
	certFile, keyFile := ca.issue("api")
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	m := &mtlsServer{}
	m.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.cns = append(m.cns, r.TLS.PeerCertificates[0].Subject.CommonName)
		m.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	m.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	m.StartTLS()
	t.Cleanup(m.Close)
	return m
}

func (m *mtlsServer) clients() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.cns...)
}

func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t, "private")
	api := newMTLSServer(t, ca)
	cert, key := ca.issue("fanout-1")
	ev := Event{ID: "e1", Body: []byte(`{}`)}

	s := newTestSink(t, Config{URL: api.URL, Attempts: 1, TLS: TLSConfig{CAFile: ca.pem, CertFile: cert, KeyFile: key}})
	if res := s.Deliver(context.Background(), ev); res.Class != Done {
		t.Fatalf("with ca_file and a client certificate: %v %v", res.Class, res.Err)
	}

	// The client certificate rotated on disk is used by the next connection.
	rotated, rotatedKey := ca.issue("fanout-2")
	for _, f := range [][2]string{{rotated, cert}, {rotatedKey, key}} {
		b, _ := os.ReadFile(f[0])
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	later := time.Now().Add(time.Second)
	_ = os.Chtimes(cert, later, later)
	s.Close() // drop the pooled connection
	if res := s.Deliver(context.Background(), ev); res.Class != Done {
		t.Fatalf("after rotation: %v %v", res.Class, res.Err)
	}
	if got := strings.Join(api.clients(), ","); got != "fanout-1,fanout-2" {
		t.Fatalf("client certificates seen: %s, want fanout-1 then the rotated fanout-2", got)
	}

	// Without ca_file the API's certificate is unknown: permanent, and the
	// error names the setting that fixes it.
	noCA := newTestSink(t, Config{URL: api.URL, Attempts: 1, TLS: TLSConfig{CertFile: cert, KeyFile: key}})
	res := noCA.Deliver(context.Background(), ev)
	if res.Class != Permanent || !strings.Contains(res.Err.Error(), "set tls.ca_file to the PEM file of the CA") {
		t.Fatalf("without ca_file: %v %v", res.Class, res.Err)
	}
	// Another CA in ca_file: the error says the file holds the wrong CA.
	other := newTestCA(t, "other")
	wrongCA := newTestSink(t, Config{URL: api.URL, Attempts: 1, TLS: TLSConfig{CAFile: other.pem}})
	if res := wrongCA.Deliver(context.Background(), ev); res.Class != Permanent || !strings.Contains(res.Err.Error(), "not signed by a CA in tls.ca_file") {
		t.Fatalf("wrong ca_file: %v %v", res.Class, res.Err)
	}
	// No client certificate: the API refuses the handshake. Retryable (the
	// API's trust may be what changed) and the error says what to set.
	noCert := newTestSink(t, Config{URL: api.URL, Attempts: 1, TLS: TLSConfig{CAFile: ca.pem}})
	res = noCert.Deliver(context.Background(), ev)
	if res.Class != Retryable || !strings.Contains(res.Err.Error(), "set tls.cert_file and tls.key_file") {
		t.Fatalf("without a client certificate: %v %v", res.Class, res.Err)
	}
	if n := len(api.clients()); n != 2 {
		t.Fatalf("the API served %d requests, want only the 2 with a trusted client certificate", n)
	}
}

func TestServerName(t *testing.T) {
	ca := newTestCA(t, "private")
	api := newMTLSServer(t, ca)
	cert, key := ca.issue("fanout")
	ev := Event{ID: "e1", Body: []byte(`{}`)}
	s := newTestSink(t, Config{URL: api.URL, Attempts: 1, TLS: TLSConfig{CAFile: ca.pem, CertFile: cert, KeyFile: key, ServerName: "api.internal"}})
	if res := s.Deliver(context.Background(), ev); res.Class != Permanent || !strings.Contains(res.Err.Error(), "set tls.server_name") {
		t.Fatalf("a server name the certificate lacks: %v %v", res.Class, res.Err)
	}
	s = newTestSink(t, Config{URL: api.URL, Attempts: 1, TLS: TLSConfig{CAFile: ca.pem, CertFile: cert, KeyFile: key, ServerName: "localhost", MinVersion: "1.3"}})
	if res := s.Deliver(context.Background(), ev); res.Class != Done {
		t.Fatalf("server_name localhost, TLS 1.3: %v %v", res.Class, res.Err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	ca := newTestCA(t, "private")
	cert, key := ca.issue("c")
	junk := filepath.Join(t.TempDir(), "junk.pem")
	_ = os.WriteFile(junk, []byte("not pem"), 0o600)
	for name, tc := range map[string]struct {
		url  string
		tls  TLSConfig
		want string
	}{
		"missing ca":    {"https://127.0.0.1:1/", TLSConfig{CAFile: "/nonexistent/ca.pem"}, "tls.ca_file: open /nonexistent/ca.pem"},
		"not pem":       {"https://127.0.0.1:1/", TLSConfig{CAFile: junk}, "holds no PEM certificate"},
		"cert alone":    {"https://127.0.0.1:1/", TLSConfig{CertFile: cert}, "tls.key_file: required with cert_file"},
		"key alone":     {"https://127.0.0.1:1/", TLSConfig{KeyFile: key}, "tls.cert_file: required with key_file"},
		"mismatched":    {"https://127.0.0.1:1/", TLSConfig{CertFile: cert, KeyFile: ca.pem}, "tls.cert_file: client certificate"},
		"old version":   {"https://127.0.0.1:1/", TLSConfig{MinVersion: "1.1"}, `tls.min_version: "1.1" is not 1.2 or 1.3`},
		"tls with http": {"http://127.0.0.1:1/", TLSConfig{CAFile: ca.pem}, "tls: set, but url is not https"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(Config{Name: "s", URL: tc.url, TLS: tc.tls}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
