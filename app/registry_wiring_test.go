package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/config"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// TestRegistryFromConfig: schemas.registry_auth and registry_tls reach the
// registry client run, emit and dlq use: a bearer token and a client
// certificate over TLS with a test CA, against franz-go's srfake.
func TestRegistryFromConfig(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	srvCert, srvKey := issue("registry", 2, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := issue("fanout", 3, x509.ExtKeyUsageClientAuth)
	certFile, keyFile := write("client.pem", cliCert), write("client-key.pem", cliKey)

	fake := srfake.NewRegistry(srfake.WithAuth("Bearer CFG-TOKEN-31"))
	id, _, err := fake.RegisterSchema("events-value", sr.Schema{Schema: `{"type":"record","name":"E","fields":[{"name":"id","type":"string"}]}`})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv := httptest.NewUnstartedServer(fake.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.Config.ErrorLog = nil
	srv.StartTLS()
	t.Cleanup(srv.Close)

	t.Setenv("FANOUT_TEST_SR_TOKEN", "CFG-TOKEN-31")
	yaml := fmt.Sprintf(`kafka: {brokers: [a:1], topic: events}
sinks: [{name: a, url: "http://127.0.0.1:1/"}]
schemas:
  registry_url: %s
  registry_auth: {token: "${FANOUT_TEST_SR_TOKEN}"}
  registry_tls: {ca_file: %s, cert_file: %s, key_file: %s}
`, srv.URL, caFile, certFile, keyFile)
	cfg, err := config.Parse("f.yaml", []byte(yaml), func(k string) (string, bool) { return os.LookupEnv(k) })
	if err != nil {
		t.Fatal(err)
	}
	reg, err := newRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := reg.ByID(context.Background(), id)
	if err != nil || s.Name != "E" {
		t.Fatalf("ByID through the configured auth and TLS: %+v, %v", s, err)
	}
	if _, err := BuildCodec(cfg); err != nil {
		t.Fatal(err)
	}
}
