package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/internal/testcert"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// TestRegistryFromConfig: schemas.registry_auth and registry_tls reach the
// registry client run, emit and dlq use: a bearer token and a client
// certificate over TLS with a test CA, against franz-go's srfake.
func TestRegistryFromConfig(t *testing.T) {
	ca := testcert.NewT(t)
	srvCert, cli := ca.IssueT(t, "registry"), ca.IssueT(t, "fanout")
	caFile, certFile, keyFile := ca.CAFile, cli.CertFile, cli.KeyFile

	fake := srfake.NewRegistry(srfake.WithAuth("Bearer CFG-TOKEN-31"))
	id, _, err := fake.RegisterSchema("events-value", sr.Schema{Schema: `{"type":"record","name":"E","fields":[{"name":"id","type":"string"}]}`})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := srvCert.KeyPair()
	if err != nil {
		t.Fatal(err)
	}
	pool := ca.Pool
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
