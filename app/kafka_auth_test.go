package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/sinktest/oauth2test"
)

// tokenServer is go-oauth2's server issuing client-credentials tokens that
// live for exp, for client fanout with secret.
func tokenServer(t *testing.T, secret string, exp time.Duration) string {
	t.Helper()
	return oauth2test.New(t, oauth2test.Config{Clients: map[string]string{"fanout": secret}, Lifetime: exp}).URL
}

// The client-credentials token is fetched once and reused while valid, and
// fetched again once within 10s of its expiry (x/oauth2's expiry delta).
func TestOAuthBearerTokensCachedAndRefreshed(t *testing.T) {
	url := tokenServer(t, "client-SECRET-1", 12*time.Second) // valid for 2s here
	tokens := oauthTokens(config.KafkaSASL{Mechanism: config.SASLOAuthBearer, TokenURL: url, ClientID: "fanout", ClientSecret: "client-SECRET-1",
		Extensions: map[string]string{"logicalCluster": "lkc-1"}})
	a, err := tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a.Token == "" || a.Token != b.Token || a.Extensions["logicalCluster"] != "lkc-1" {
		t.Fatalf("two asks within the token's life: %q then %q (extensions %v), want one token reused", a.Token, b.Token, a.Extensions)
	}
	time.Sleep(2500 * time.Millisecond)
	c, err := tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Token == a.Token {
		t.Fatalf("token %q still used within 10s of its expiry, want a new one", c.Token)
	}
}

// A refused client says the endpoint's error code, never the secret.
func TestOAuthBearerRefusedNamesNoSecret(t *testing.T) {
	url := tokenServer(t, "client-SECRET-1", time.Hour)
	tokens := oauthTokens(config.KafkaSASL{Mechanism: config.SASLOAuthBearer, TokenURL: url + "?k=QUERYSECRET", ClientID: "fanout", ClientSecret: "WRONGSECRET"})
	_, err := tokens(context.Background())
	if err == nil {
		t.Fatal("a wrong client secret got a token")
	}
	msg := err.Error()
	if !strings.Contains(msg, "kafka.sasl: OAUTHBEARER token from kafka.sasl.token_url: the token endpoint refused: invalid_client") {
		t.Errorf("error = %s", msg)
	}
	for _, s := range []string{"WRONGSECRET", "QUERYSECRET", "client-SECRET"} {
		if strings.Contains(msg, s) {
			t.Errorf("error holds %s: %s", s, msg)
		}
	}
}

// Each mechanism reaches franz-go under its Kafka name.
func TestSASLMechanismNames(t *testing.T) {
	for _, m := range []string{config.SASLPlain, config.SASLScram256, config.SASLScram512, config.SASLOAuthBearer, config.SASLAWSMSKIAM} {
		s := config.KafkaSASL{Mechanism: m, Username: "u", Password: "p"}
		if m == config.SASLOAuthBearer {
			s = config.KafkaSASL{Mechanism: m, Token: "t"}
		}
		if got := saslMechanism(s).Name(); got != m {
			t.Errorf("mechanism %s reaches franz-go as %s", m, got)
		}
	}
	if saslMechanism(config.KafkaSASL{}) != nil {
		t.Error("no mechanism configured, but a SASL mechanism built")
	}
}

// AWS_MSK_IAM takes the AWS default chain: here, the environment's static
// keys (it cannot be tried against MSK here).
func TestAWSMSKIAMDefaultChain(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI")
	t.Setenv("AWS_SESSION_TOKEN", "session-token")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	a, err := awsCredentials()(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a.AccessKey != "AKIDEXAMPLE" || a.SecretKey != "wJalrXUtnFEMI" || a.SessionToken != "session-token" {
		t.Errorf("credentials = %q %q %q, want the environment's", a.AccessKey, a.SecretKey, a.SessionToken)
	}
}

// ExplainKafka words a refusal with the brokers, mechanism and user of the
// config it is given, once; without a config the error is left as it is.
func TestExplainKafka(t *testing.T) {
	cfg := &config.Config{Kafka: config.Kafka{Brokers: []string{"b1:9096", "b2:9096"},
		SASL: config.KafkaSASL{Mechanism: config.SASLScram512, Username: "fanout", Password: "PASSWORD-1234"}}}
	err := fmt.Errorf("list topics: %w", kerr.SaslAuthenticationFailed)
	got := ExplainKafka(cfg, err)
	want := `kafka b1:9096,b2:9096: SASL SCRAM-SHA-512 login as "fanout" refused (wrong username or password?)`
	if !strings.HasPrefix(got.Error(), want) || !errors.Is(got, kerr.SaslAuthenticationFailed) || strings.Contains(got.Error(), "PASSWORD") {
		t.Errorf("ExplainKafka = %v, want %q... wrapping the kerr", got, want)
	}
	if again := ExplainKafka(cfg, got); again.Error() != got.Error() {
		t.Errorf("explained twice: %v", again)
	}
	if plain := ExplainKafka(nil, err); plain != err {
		t.Errorf("ExplainKafka(nil, err) = %v, want err as it is", plain)
	}
}
