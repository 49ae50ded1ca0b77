package services

import (
	"fmt"
	"strings"

	"github.com/fanout-dev/fanout/internal/testcert"
)

// propPEM is PEM as one Java properties value: its newlines escaped.
func propPEM(b []byte) string {
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", `\n`)
}

// secureProps are the server.properties lines of KafkaSecure's listeners.
func secureProps(s *KafkaSecure, broker *testcert.Cert, ca *testcert.CA) string {
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
