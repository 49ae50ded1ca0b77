package services

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// TestCA is a certificate authority made for one test: an ECDSA P-256 key
// and a self-signed certificate, valid for a day, whose PEM is CAFile.
type TestCA struct {
	CAFile string // PEM of the CA certificate
	PEM    []byte // the same

	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewTestCA makes a CA and writes its certificate to dir/ca.pem.
func NewTestCA(dir string) (*TestCA, error) {
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
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &TestCA{dir: dir, cert: cert, key: key, CAFile: filepath.Join(dir, "ca.pem"),
		PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	if err := os.WriteFile(ca.CAFile, ca.PEM, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// Issued is a certificate and its key, as PEM and as files.
type Issued struct {
	CertFile, KeyFile string
	CertPEM, KeyPEM   []byte // the key in PKCS#8, which Kafka's PEM keystore wants
}

// Issue signs a certificate for name: a server certificate for 127.0.0.1,
// ::1 and localhost plus hosts, usable as a client certificate too, with
// CN=name. It writes dir/<name>.pem and dir/<name>-key.pem.
func (ca *TestCA) Issue(name string, hosts ...string) (*Issued, error) {
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	is := &Issued{
		CertFile: filepath.Join(ca.dir, name+".pem"),
		KeyFile:  filepath.Join(ca.dir, name+"-key.pem"),
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}
	if err := os.WriteFile(is.CertFile, is.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(is.KeyFile, is.KeyPEM, 0o600); err != nil {
		return nil, err
	}
	return is, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// propPEM is PEM as one Java properties value: its newlines escaped.
func propPEM(b []byte) string {
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", `\n`)
}

// secureProps are the server.properties lines of KafkaSecure's listeners.
func secureProps(s *KafkaSecure, broker *Issued, ca *TestCA) string {
	return fmt.Sprintf(`
# Secured listeners (KafkaOptions.Secure). PLAINTEXT and CONTROLLER stay for the
# harness and the test's admin: their principal, User:ANONYMOUS, is a super user.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=false
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.certificate.chain=%[1]s
ssl.keystore.key=%[2]s
ssl.truststore.type=PEM
ssl.truststore.certificates=%[3]s
listener.name.ssl.ssl.client.auth=required
# An mTLS client's principal is its certificate's CN: CN=fanout is User:fanout.
ssl.principal.mapping.rules=RULE:^CN=([^,]+).*$/$1/,DEFAULT
# OAUTHBEARER on SASL_PLAINTEXT, checked by Kafka's unsecured validator (unsigned
# JWS; the "sub" claim is the principal). Not for production: it checks no signature.
listener.name.sasl_plaintext.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="admin";
listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler
# Re-authentication (KIP-368): a session ends when its token expires, at the
# latest after 10s; clients must log in again with a current token.
listener.name.sasl_plaintext.oauthbearer.connections.max.reauth.ms=10000
`, propPEM(broker.CertPEM), propPEM(broker.KeyPEM), propPEM(ca.PEM))
}
