package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/consumer"
	"github.com/fanout-dev/fanout/internal/tlsfile"
)

// KafkaOpts are the client options every Kafka client of fanout shares.
func KafkaOpts(cfg *config.Config) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Kafka.Brokers...),
		kgo.ClientID(cfg.Kafka.ClientID),
		// Read the main topic, tiers and DLQs as committed data only: an
		// upstream's aborted transaction is never delivered or replayed.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, kafkaSecurityOpts(cfg)...)
}

// kafkaSecurityOpts are the TLS and SASL options of kafka.tls and kafka.sasl.
// The config's files were read when it was validated; should one fail now
// (removed since), every dial fails with that error instead.
func kafkaSecurityOpts(cfg *config.Config) []kgo.Opt {
	var opts []kgo.Opt
	if cfg.Kafka.TLS.Enabled {
		tc, err := kafkaTLSConfig(cfg.Kafka.TLS)
		if err != nil {
			return []kgo.Opt{kgo.Dialer(func(context.Context, string, string) (net.Conn, error) { return nil, err })}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := saslMechanism(cfg.Kafka.SASL); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts
}

// kafkaTLSConfig is TLS 1.2+ with the CA file's roots (the system's when
// none is given) and the client certificate when one is given. ServerName
// stays empty unless configured: franz-go then sets it per broker dialed.
func kafkaTLSConfig(t config.KafkaTLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pool, err := tlsfile.CAPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// saslMechanism is kafka.sasl's mechanism, nil without one.
func saslMechanism(s config.KafkaSASL) sasl.Mechanism {
	switch s.Mechanism {
	case config.SASLPlain:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
	case config.SASLScram256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
	case config.SASLScram512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
	case config.SASLOAuthBearer:
		if s.Token != "" {
			return oauth.Auth{Token: s.Token, Extensions: s.Extensions}.AsMechanism()
		}
		return oauth.Oauth(oauthTokens(s))
	case config.SASLAWSMSKIAM:
		return aws.ManagedStreamingIAM(awsCredentials())
	}
	return nil
}

// oauthTokens fetches OAUTHBEARER tokens with the client credentials grant.
// franz-go asks on every new connection and on re-authentication (KIP-368);
// the token source answers from its cache until 10s before the token
// expires, then fetches the next one.
func oauthTokens(s config.KafkaSASL) func(context.Context) (oauth.Auth, error) {
	cc := clientcredentials.Config{ClientID: s.ClientID, ClientSecret: s.ClientSecret, TokenURL: s.TokenURL, Scopes: s.Scopes}
	hc := &http.Client{Timeout: 10 * time.Second}
	src := cc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, hc))
	return func(context.Context) (oauth.Auth, error) {
		tok, err := src.Token()
		if err != nil {
			return oauth.Auth{}, fmt.Errorf("kafka.sasl: OAUTHBEARER token from kafka.sasl.token_url: %w", oauthError(err))
		}
		return oauth.Auth{Token: tok.AccessToken, Extensions: s.Extensions}, nil
	}
}

// oauthError keeps a token endpoint's refusal to its error code: its body
// and the URL's query could hold secrets.
func oauthError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return fmt.Errorf("the token endpoint refused: %s (HTTP %d)", re.ErrorCode, re.Response.StatusCode)
		}
		return fmt.Errorf("the token endpoint answered HTTP %d", re.Response.StatusCode)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("the token endpoint is unreachable: %v", ue.Err)
	}
	return err
}

// awsCredentials reads the AWS default credential chain once, on first use;
// its cache refreshes expiring credentials (roles, SSO) itself.
func awsCredentials() func(context.Context) (aws.Auth, error) {
	var (
		mu   sync.Mutex
		load func(context.Context) (aws.Auth, error)
	)
	return func(ctx context.Context) (aws.Auth, error) {
		mu.Lock()
		if load == nil {
			ac, err := awsconfig.LoadDefaultConfig(ctx)
			if err != nil {
				mu.Unlock()
				return aws.Auth{}, fmt.Errorf("kafka.sasl: AWS_MSK_IAM: AWS config: %w", err)
			}
			load = func(ctx context.Context) (aws.Auth, error) {
				c, err := ac.Credentials.Retrieve(ctx)
				if err != nil {
					return aws.Auth{}, fmt.Errorf("kafka.sasl: AWS_MSK_IAM: no AWS credentials: %w", err)
				}
				return aws.Auth{AccessKey: c.AccessKeyID, SecretKey: c.SecretAccessKey, SessionToken: c.SessionToken, UserAgent: "fanout"}, nil
			}
		}
		mu.Unlock()
		return load(ctx)
	}
}

// kafkaError says in one line why a Kafka request failed when the cause is
// the connection's security: a refused login, a mechanism the broker does
// not offer, an untrusted certificate, a listener of another protocol, or
// a missing ACL. Other errors come back as they are. It names the brokers,
// the mechanism and the user, never a secret.
func kafkaError(cfg *config.Config, err error) error {
	var done *kafkaRefusal
	if err == nil || errors.As(err, &done) {
		return err
	}
	if e := classifyKafka(cfg, err); e != err {
		return &kafkaRefusal{e}
	}
	return err
}

// kafkaRefusal is an error kafkaError explained: it is not explained again.
type kafkaRefusal struct{ error }

func (r *kafkaRefusal) Unwrap() error { return r.error }

// ExplainKafka is kafkaError for a command's final error: cfg is the config
// the command loaded (nil if it loaded none: err comes back as it is).
func ExplainKafka(cfg *config.Config, err error) error {
	if cfg != nil {
		return kafkaError(cfg, err)
	}
	return err
}

func classifyKafka(cfg *config.Config, err error) error {
	at := "kafka " + strings.Join(cfg.Kafka.Brokers, ",")
	s := cfg.Kafka.SASL
	var (
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
		rhe tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return fmt.Errorf("%s: SASL %s login as %q refused (wrong username or password?): %w", at, s.Mechanism, s.Username, err)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("%s: the broker does not offer SASL mechanism %s (kafka.sasl.mechanism): %w", at, s.Mechanism, err)
	case errors.Is(err, kerr.IllegalSaslState):
		return fmt.Errorf("%s: SASL %s: the broker refused the exchange (is this listener SASL?): %w", at, s.Mechanism, err)
	case errors.As(err, &ua):
		return fmt.Errorf("%s: TLS: the broker's certificate is signed by an authority fanout does not trust: set kafka.tls.ca_file to its CA (%w)", at, err)
	case errors.As(err, &he):
		return fmt.Errorf("%s: TLS: the broker's certificate is not valid for the address dialed: set kafka.tls.server_name or use a name it holds (%w)", at, err)
	case errors.As(err, &ci):
		return fmt.Errorf("%s: TLS: the broker's certificate is invalid (%w)", at, err)
	case errors.As(err, &rhe):
		return fmt.Errorf("%s: TLS: the listener does not speak TLS: turn kafka.tls.enabled off or use its TLS port (%w)", at, err)
	case consumer.TLSAlert(err):
		return fmt.Errorf("%s: TLS: the broker refused the handshake; if it requires a client certificate (mTLS), set kafka.tls.cert_file and key_file to one it trusts (%w)", at, err)
	case errors.Is(err, kerr.ClusterAuthorizationFailed):
		return fmt.Errorf("%s: not authorized on the cluster (missing ACL for user %q): %w", at, s.Username, err)
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%s: the broker closed the connection: does the listener want TLS (kafka.tls) or SASL (kafka.sasl)? (%w)", at, err)
	}
	return err
}

// checkGroupAccess asks the broker, before a command starts its work, whether
// fanout may use the groups it needs: a group ACL that is missing
// ends the command naming the group instead of a consumer that never
// joins. (Topic ACLs show up as TOPIC_AUTHORIZATION_FAILED in the
// metadata CheckTopics asks for.)
func checkGroupAccess(ctx context.Context, cfg *config.Config, adm *kadm.Client, groups []string) error {
	if len(groups) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// One group at a time: a group the user may not use fails its
	// FindCoordinator, which kadm reports without the group's name.
	for _, g := range groups {
		described, err := adm.DescribeGroups(ctx, g)
		if d, ok := described[g]; ok && d.Err != nil {
			err = d.Err
		}
		if errors.Is(err, kerr.GroupAuthorizationFailed) {
			return fmt.Errorf("kafka %s: user %q is not authorized for consumer group %s (an ACL READ on group prefix %q is missing): %w",
				strings.Join(cfg.Kafka.Brokers, ","), cfg.Kafka.SASL.Username, g, cfg.Kafka.GroupPrefix, err)
		}
		if err != nil && consumer.Denied(err) {
			return kafkaError(cfg, err)
		}
	}
	return nil
}

// deniedTopic names the first of topics the user may not describe: kadm
// reports a metadata request that names several without saying which.
func deniedTopic(ctx context.Context, cfg *config.Config, adm *kadm.Client, topics []string, err error) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	name := strings.Join(topics, ", ")
	if len(topics) > 1 {
		for _, t := range topics {
			d, terr := adm.ListTopics(ctx, t)
			if errors.Is(terr, kerr.TopicAuthorizationFailed) || errors.Is(d[t].Err, kerr.TopicAuthorizationFailed) {
				name = t
				break
			}
		}
	}
	return fmt.Errorf("kafka %s: user %q is not authorized for topic %s (a missing ACL; see the README's ACL list): %w",
		strings.Join(cfg.Kafka.Brokers, ","), cfg.Kafka.SASL.Username, name, err)
}

// ProbeKafka asks the brokers for the metadata of topics with a 15s
// deadline: a refused login, an untrusted certificate or a missing topic ACL
// comes back as kafkaError words it, before a producer would retry it
// until its records time out.
func ProbeKafka(ctx context.Context, cfg *config.Config, cl *kgo.Client, topics ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, topics...)
	if errors.Is(err, kerr.TopicAuthorizationFailed) {
		return deniedTopic(ctx, cfg, adm, topics, err)
	}
	if err != nil {
		var done *kafkaRefusal
		if err := kafkaError(cfg, err); errors.As(err, &done) {
			return err
		}
		return fmt.Errorf("kafka %s: %w", strings.Join(cfg.Kafka.Brokers, ","), err)
	}
	for _, t := range topics {
		if d, ok := details[t]; ok && errors.Is(d.Err, kerr.TopicAuthorizationFailed) {
			return deniedTopic(ctx, cfg, adm, []string{t}, d.Err)
		}
	}
	return nil
}

// checkTopicOps asks the brokers which operations the user may perform on
// each topic (Metadata with IncludeTopicAuthorizedOperations, KIP-430) and
// names the first that lacks one it needs: a missing WRITE on a DLQ would
// otherwise show only at the first park, which then retries until fixed.
// A broker that does not report operations is not checked.
func checkTopicOps(ctx context.Context, cfg *config.Config, cl *kgo.Client, need map[string][]kadm.ACLOperation) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.IncludeTopicAuthorizedOperations = true
	topics := slices.Sorted(maps.Keys(need))
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return kafkaError(cfg, err)
	}
	have := map[string][]kadm.ACLOperation{}
	reported := map[string]bool{}
	for _, t := range resp.Topics {
		if t.Topic != nil && t.AuthorizedOperations != math.MinInt32 {
			have[*t.Topic], reported[*t.Topic] = kadm.DecodeACLOperations(t.AuthorizedOperations), true
		}
	}
	for _, t := range topics {
		if !reported[t] {
			continue
		}
		for _, op := range need[t] {
			if !slices.Contains(have[t], op) && !slices.Contains(have[t], kadm.OpAll) {
				return fmt.Errorf("kafka %s: user %q may not %s topic %s (a missing ACL; see the README's ACL list)",
					strings.Join(cfg.Kafka.Brokers, ","), cfg.Kafka.SASL.Username, op, t)
			}
		}
	}
	return nil
}
