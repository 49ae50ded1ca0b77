package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/internal/testcert"
	"github.com/fanout-dev/fanout/letter"
	"github.com/fanout-dev/fanout/sinktest"
)

// mtlsAPI is one HTTPS API that requires a client certificate from the
// test's CA: an httptest server whose paths /<route>/events are recording
// targets of their own, so each phase of a test sees only its own requests.
type mtlsAPI struct {
	t      *testing.T
	hs     *httptest.Server
	routes map[string]*target

	wrongPeer atomic.Int64 // requests whose client certificate is not CN=fanout

	mu         sync.Mutex
	handshakes []string // "http: TLS handshake error" lines the server logged
}

// newMTLSAPI starts the API with a server certificate for 127.0.0.1 from ca,
// tls.RequireAndVerifyClientCert and ca as the only client CA.
func newMTLSAPI(t *testing.T, ca *testcert.CA, routes ...string) *mtlsAPI {
	t.Helper()
	srvCert, err := ca.Issue("api")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(srvCert.CertPEM, srvCert.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(ca.PEM) {
		t.Fatal("the test CA's PEM holds no certificate")
	}
	api := &mtlsAPI{t: t, routes: map[string]*target{}}
	api.hs = httptest.NewUnstartedServer(api)
	api.hs.TLS = &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS12,
	}
	api.hs.Config.ErrorLog = log.New(api, "", 0)
	api.hs.StartTLS()
	t.Cleanup(api.hs.Close)
	for _, r := range routes {
		api.routes[r] = recorder(t, api.hs.URL+"/"+r+"/events")
	}
	return api
}

// recorder is a target without a server of its own: a handler that records,
// for a server in front of it that answers at url.
func recorder(t *testing.T, url string) *target {
	return asTarget(t, sinktest.New(sinktest.Options{}), url)
}

// Write takes the http.Server's error log: it keeps the handshake failures.
func (api *mtlsAPI) Write(p []byte) (int, error) {
	if line := strings.TrimSpace(string(p)); strings.Contains(line, "TLS handshake error") {
		api.mu.Lock()
		api.handshakes = append(api.handshakes, line)
		api.mu.Unlock()
	}
	return len(p), nil
}

func (api *mtlsAPI) handshakeErrors() []string {
	api.mu.Lock()
	defer api.mu.Unlock()
	return append([]string(nil), api.handshakes...)
}

func (api *mtlsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "fanout" {
		api.wrongPeer.Add(1)
		http.Error(w, "client certificate is not fanout's", http.StatusForbidden)
		return
	}
	route, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	tg := api.routes[route]
	if tg == nil {
		http.NotFound(w, r)
		return
	}
	tg.ServeHTTP(w, r)
}

// dlqCount is how many records the sink's DLQ topic holds.
func (s *scenario) dlqCount(sink string) (int64, error) {
	ends, err := admin(s.t).ListEndOffsets(context.Background(), s.topic+"."+sink+".dlq")
	if err != nil {
		return 0, err
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, ends.Error()
}

// waitParked waits until the sink's DLQ holds want records and the sink's
// group has committed the end of the topic, and returns the DLQ's records.
func (s *scenario) waitParked(sink string, want int, timeout time.Duration) []*kgo.Record {
	s.t.Helper()
	waitFor(s.t, timeout, "sink "+sink+" parked every event", func() (bool, string) {
		n, err := s.dlqCount(sink)
		if err != nil {
			return false, err.Error()
		}
		return n >= int64(want), fmt.Sprintf("%d of %d parked", n, want)
	})
	waitFor(s.t, timeout, "sink "+sink+" committed the end offsets", func() (bool, string) { return s.committedAtEnd(sink) })
	recs := readTopic(s.t, s.topic+"."+sink+".dlq")
	if len(recs) != want {
		s.t.Errorf("sink %s: DLQ holds %d records, want %d", sink, len(recs), want)
	}
	return recs
}

// TestSinkMutualTLS: a sink with tls.ca_file, cert_file and key_file
// delivers 10,000 events exactly once to an HTTPS API that requires a client
// certificate from a private CA. Without ca_file every event is parked as
// permanent with an error naming tls.ca_file, and without a client
// certificate the API refuses the handshake: nothing is delivered, every
// event parked.
func TestSinkMutualTLS(t *testing.T) {
	start := time.Now()
	ca, err := testcert.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue("fanout")
	if err != nil {
		t.Fatal(err)
	}
	api := newMTLSAPI(t, ca, "mtls", "noca", "nocert")

	// 1. The whole chain configured: 10,000 events, each accepted once.
	s := newScenario(t, "mtls", events)
	tg := api.routes["mtls"]
	s.writeConfig(sinkSpec{name: "api", target: tg, extra: fmt.Sprintf(
		"ordering: unordered\nmax_in_flight: 32\ntls: {ca_file: %q, cert_file: %q, key_file: %q}",
		ca.CAFile, client.CertFile, client.KeyFile)})
	s.emitAll()
	p := s.start()
	s.waitDone(5*time.Minute, map[string]*target{"api": tg}, map[string][]string{"api": s.ids})
	p.term(t)
	checkAccepted(t, "api", tg, s.ids, 0)
	if n, err := s.dlqCount("api"); err != nil || n != 0 {
		t.Errorf("DLQ of the mTLS sink holds %d records (%v), want none", n, err)
	}
	if n := api.wrongPeer.Load(); n != 0 {
		t.Errorf("%d requests came without fanout's client certificate", n)
	}
	t.Logf("phase 1: %d events over mTLS in %.1fs (%d requests, %d TLS handshake errors on the server)",
		events, time.Since(start).Seconds(), tg.requests.Load(), len(api.handshakeErrors()))

	// 2. No ca_file: the system roots do not know the test CA. Every event is
	// parked as permanent, its error naming the setting that fixes it.
	before := len(api.handshakeErrors())
	const few = 300
	s2 := newScenario(t, "mtls-noca", few)
	noCA := api.routes["noca"]
	s2.writeConfig(sinkSpec{name: "api", target: noCA, extra: fmt.Sprintf(
		"ordering: unordered\ntls: {cert_file: %q, key_file: %q}", client.CertFile, client.KeyFile)})
	s2.emitAll()
	p2 := s2.start()
	for i, r := range s2.waitParked("api", few, 3*time.Minute) {
		id := header(r, "event-id")
		if i == 0 {
			t.Logf("phase 2: e.g. %s %q", letter.HeaderError, header(r, letter.HeaderError))
		}
		if class := header(r, letter.HeaderErrorClass); class != "permanent" {
			t.Errorf("event %s parked with %s %q, want permanent", id, letter.HeaderErrorClass, class)
		}
		if msg := header(r, letter.HeaderError); !strings.Contains(msg, "tls.ca_file") {
			t.Errorf("event %s parked with %s %q: it does not name tls.ca_file", id, letter.HeaderError, msg)
		}
	}
	p2.term(t)
	if n := noCA.requests.Load(); n != 0 {
		t.Errorf("the API received %d requests from the sink without ca_file, want none", n)
	}
	hs := api.handshakeErrors()
	if len(hs) == before {
		t.Errorf("the API logged no refused handshake while the sink without ca_file ran: did fanout reach it?")
	} else {
		t.Logf("phase 2: the API logged %d refused handshakes, e.g. %q", len(hs)-before, hs[before])
	}

	// 3. No client certificate: the API refuses the handshake. fanout takes
	// that as retryable (seen: "remote error: tls: certificate required"):
	// with two attempts and no tiers every event is parked as
	// retries-exhausted after both failed, its error naming tls.cert_file;
	// none is delivered.
	before = len(hs)
	s3 := newScenario(t, "mtls-nocert", few)
	noCert := api.routes["nocert"]
	s3.writeConfig(sinkSpec{name: "api", target: noCert, extra: fmt.Sprintf(
		"ordering: unordered\nbreaker: {enabled: false}\nretry: {attempts: 2, backoff_base: 10ms, backoff_cap: 50ms, tiers: []}\ntls: {ca_file: %q}", ca.CAFile)})
	s3.emitAll()
	p3 := s3.start()
	var sample string
	for _, r := range s3.waitParked("api", few, 3*time.Minute) {
		id, msg := header(r, "event-id"), header(r, letter.HeaderError)
		if sample == "" {
			sample = msg
		}
		if class, n := header(r, letter.HeaderErrorClass), header(r, letter.HeaderAttempts); class != "retries-exhausted" || n != "2" {
			t.Errorf("event %s parked with %s %q after %s attempts, want retries-exhausted after 2", id, letter.HeaderErrorClass, class, n)
		}
		if !strings.Contains(msg, "certificate required") || !strings.Contains(msg, "tls.cert_file") {
			t.Errorf("event %s parked with %s %q: it does not say the API required a certificate, naming tls.cert_file", id, letter.HeaderError, msg)
		}
	}
	p3.term(t)
	t.Logf("phase 3: e.g. %s %q", letter.HeaderError, sample)
	if n := noCert.requests.Load(); n != 0 {
		t.Errorf("the API received %d requests from the sink without a client certificate, want none", n)
	}
	hs = api.handshakeErrors()
	if len(hs) == before {
		t.Errorf("the API logged no refused handshake while the sink without a client certificate ran")
	} else {
		t.Logf("phase 3: the API logged %d refused handshakes, e.g. %q", len(hs)-before, hs[before])
	}
	for _, out := range []string{p.out.String(), p2.out.String(), p3.out.String()} {
		if strings.Contains(out, string(client.KeyPEM)) || strings.Contains(out, "PRIVATE KEY") {
			t.Errorf("fanout run printed the client key")
		}
	}
	t.Logf("TestSinkMutualTLS took %.1fs", time.Since(start).Seconds())
}
