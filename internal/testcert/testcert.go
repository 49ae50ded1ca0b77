// Package testcert makes certificate authorities and the certificates they
// sign, for tests, with crypto/x509: ECDSA P-256 keys, valid from an hour ago
// for a day, written as PEM files. It is test support only; nothing in a
// production path imports it.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority made for one test: an ECDSA P-256 key and a
// self-signed certificate with CN "fanout test CA".
type CA struct {
	CAFile string            // PEM file of the CA certificate: dir/ca.pem
	PEM    []byte            // the same, in memory
	Cert   *x509.Certificate // the CA certificate
	Pool   *x509.CertPool    // a pool holding only Cert

	dir string
	key *ecdsa.PrivateKey
}

// Cert is a certificate the CA signed and its key, as PEM and as files.
type Cert struct {
	CertFile, KeyFile string // dir/<name>.pem and dir/<name>-key.pem
	CertPEM, KeyPEM   []byte // the key in PKCS#8, which Kafka's PEM keystore wants
}

// New makes a CA and writes its certificate to dir/ca.pem; the certificates it
// issues are written to dir too.
func New(dir string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "fanout test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{CAFile: filepath.Join(dir, "ca.pem"), PEM: pemOf("CERTIFICATE", der),
		Cert: cert, Pool: x509.NewCertPool(), dir: dir, key: key}
	ca.Pool.AddCert(cert)
	if err := os.WriteFile(ca.CAFile, ca.PEM, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// Issue signs a certificate with CN=name for 127.0.0.1, ::1, localhost and
// hosts, usable by a server and by a client, and writes dir/<name>.pem and
// dir/<name>-key.pem.
func (ca *CA) Issue(name string, hosts ...string) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"fanout e2e"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     append([]string{"localhost"}, hosts...),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	c := &Cert{
		CertFile: filepath.Join(ca.dir, name+".pem"),
		KeyFile:  filepath.Join(ca.dir, name+"-key.pem"),
		CertPEM:  pemOf("CERTIFICATE", der),
		KeyPEM:   pemOf("PRIVATE KEY", kder),
	}
	if err := os.WriteFile(c.CertFile, c.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.KeyFile, c.KeyPEM, 0o600); err != nil {
		return nil, err
	}
	return c, nil
}

// KeyPair is the certificate and key as a tls.Certificate, for a test server.
func (c *Cert) KeyPair() (tls.Certificate, error) { return tls.X509KeyPair(c.CertPEM, c.KeyPEM) }

// NewT is New in a temp dir of t; it fails t on error.
func NewT(t testing.TB) *CA {
	t.Helper()
	ca, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// IssueT is Issue; it fails t on error.
func (ca *CA) IssueT(t testing.TB, name string, hosts ...string) *Cert {
	t.Helper()
	c, err := ca.Issue(name, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}
