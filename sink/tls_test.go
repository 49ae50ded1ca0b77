package sink

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/internal/testcert"
)

// mtlsServer is an HTTPS API whose certificate ca signs and which requires
// a client certificate ca signs; it records each request's client CN.
type mtlsServer struct {
	*httptest.Server
	mu  sync.Mutex
	cns []string
}

func newMTLSServer(t *testing.T, ca *testcert.CA) *mtlsServer {
	t.Helper()
	kp, err := ca.IssueT(t, "api").KeyPair()
	if err != nil {
		t.Fatal(err)
	}
	m := &mtlsServer{}
	m.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.cns = append(m.cns, r.TLS.PeerCertificates[0].Subject.CommonName)
		m.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	m.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, ClientCAs: ca.Pool, ClientAuth: tls.RequireAndVerifyClientCert}
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
	ca := testcert.NewT(t)
	api := newMTLSServer(t, ca)
	c1 := ca.IssueT(t, "fanout-1")
	cert, key := c1.CertFile, c1.KeyFile
	ev := Event{ID: "e1", Body: []byte(`{}`)}

	s := newTestSink(t, Config{URL: api.URL, Attempts: 1, TLS: TLSConfig{CAFile: ca.CAFile, CertFile: cert, KeyFile: key}})
	if res := s.Deliver(context.Background(), ev); res.Class != Done {
		t.Fatalf("with ca_file and a client certificate: %v %v", res.Class, res.Err)
	}

	// The client certificate rotated on disk is used by the next connection.
	c2 := ca.IssueT(t, "fanout-2")
	rotated, rotatedKey := c2.CertFile, c2.KeyFile
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
	other := testcert.NewT(t)
	wrongCA := newTestSink(t, Config{URL: api.URL, Attempts: 1, TLS: TLSConfig{CAFile: other.CAFile}})
	if res := wrongCA.Deliver(context.Background(), ev); res.Class != Permanent || !strings.Contains(res.Err.Error(), "not signed by a CA in tls.ca_file") {
		t.Fatalf("wrong ca_file: %v %v", res.Class, res.Err)
	}
	// No client certificate: the API refuses the handshake. Retryable (the
	// API's trust may be what changed) and the error says what to set.
	noCert := newTestSink(t, Config{URL: api.URL, Attempts: 1, TLS: TLSConfig{CAFile: ca.CAFile}})
	res = noCert.Deliver(context.Background(), ev)
	if res.Class != Retryable || !strings.Contains(res.Err.Error(), "set tls.cert_file and tls.key_file") {
		t.Fatalf("without a client certificate: %v %v", res.Class, res.Err)
	}
	if n := len(api.clients()); n != 2 {
		t.Fatalf("the API served %d requests, want only the 2 with a trusted client certificate", n)
	}
}

func TestServerName(t *testing.T) {
	ca := testcert.NewT(t)
	api := newMTLSServer(t, ca)
	c := ca.IssueT(t, "fanout")
	cert, key := c.CertFile, c.KeyFile
	ev := Event{ID: "e1", Body: []byte(`{}`)}
	s := newTestSink(t, Config{URL: api.URL, Attempts: 1, TLS: TLSConfig{CAFile: ca.CAFile, CertFile: cert, KeyFile: key, ServerName: "api.internal"}})
	if res := s.Deliver(context.Background(), ev); res.Class != Permanent || !strings.Contains(res.Err.Error(), "set tls.server_name") {
		t.Fatalf("a server name the certificate lacks: %v %v", res.Class, res.Err)
	}
	s = newTestSink(t, Config{URL: api.URL, Attempts: 1, TLS: TLSConfig{CAFile: ca.CAFile, CertFile: cert, KeyFile: key, ServerName: "localhost", MinVersion: "1.3"}})
	if res := s.Deliver(context.Background(), ev); res.Class != Done {
		t.Fatalf("server_name localhost, TLS 1.3: %v %v", res.Class, res.Err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	ca := testcert.NewT(t)
	c := ca.IssueT(t, "c")
	cert, key := c.CertFile, c.KeyFile
	junk := filepath.Join(t.TempDir(), "junk.pem")
	_ = os.WriteFile(junk, []byte("not pem"), 0o600)
	for name, tc := range map[string]struct {
		url  string
		tls  TLSConfig
		want string
	}{
		"missing ca":    {"https://127.0.0.1:1/", TLSConfig{CAFile: "/nonexistent/ca.CAFile"}, "tls.ca_file: open /nonexistent/ca.CAFile"},
		"not pem":       {"https://127.0.0.1:1/", TLSConfig{CAFile: junk}, "holds no PEM certificate"},
		"cert alone":    {"https://127.0.0.1:1/", TLSConfig{CertFile: cert}, "tls.key_file: required with cert_file"},
		"key alone":     {"https://127.0.0.1:1/", TLSConfig{KeyFile: key}, "tls.cert_file: required with key_file"},
		"mismatched":    {"https://127.0.0.1:1/", TLSConfig{CertFile: cert, KeyFile: ca.CAFile}, "tls.cert_file: client certificate"},
		"old version":   {"https://127.0.0.1:1/", TLSConfig{MinVersion: "1.1"}, `tls.min_version: "1.1" is not 1.2 or 1.3`},
		"tls with http": {"http://127.0.0.1:1/", TLSConfig{CAFile: ca.CAFile}, "tls: set, but url is not https"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(Config{Name: "s", URL: tc.url, TLS: tc.tls}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
