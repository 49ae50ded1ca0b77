package consumer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Denied reports whether err is Kafka refusing fanout rather than failing
// for a while: a missing ACL, a failed login, a SASL mechanism the broker
// does not offer, or a broker certificate fanout does not trust. Retrying
// does not help; a consumer that sees one in a fetch ends with it.
func Denied(err error) bool {
	for _, e := range []error{
		kerr.TopicAuthorizationFailed, kerr.GroupAuthorizationFailed, kerr.ClusterAuthorizationFailed,
		kerr.TransactionalIDAuthorizationFailed, kerr.SaslAuthenticationFailed,
		kerr.UnsupportedSaslMechanism, kerr.IllegalSaslState,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var (
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
		cve *tls.CertificateVerificationError
	)
	return errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) || errors.As(err, &cve) || TLSAlert(err)
}

// TLSAlert reports whether err is the broker ending the TLS handshake with
// an alert ("remote error: tls: bad certificate"): most often a listener
// that requires a client certificate fanout did not present or it does not
// trust.
func TLSAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil && strings.HasPrefix(oe.Err.Error(), "tls: ")
}
