package config

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/fanout-dev/fanout/internal/tlsfile"
)

var saslMechanisms = []string{SASLPlain, SASLScram256, SASLScram512, SASLOAuthBearer, SASLAWSMSKIAM}

// validateKafkaSecurity checks kafka.tls and kafka.sasl: the files are read
// and parsed, so a wrong path or a key that does not match its certificate
// is a config problem rather than a failed dial. Messages name fields, never
// a secret's value.
func (c *Config) validateKafkaSecurity() []Problem {
	var ps []Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Line: c.lineOf(path), Msg: fmt.Sprintf(format, args...)})
	}
	t := c.Kafka.TLS
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "") {
		add("kafka.tls.enabled", "false while other kafka.tls fields are set: set enabled: true to use TLS")
	}
	if t.CAFile != "" {
		if _, err := tlsfile.CAPool(t.CAFile); err != nil {
			add("kafka.tls.ca_file", "%v", err)
		}
	}
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		if t.CertFile == "" {
			add("kafka.tls.cert_file", "required with kafka.tls.key_file: a client certificate needs both")
		} else {
			add("kafka.tls.key_file", "required with kafka.tls.cert_file: a client certificate needs both")
		}
	case t.CertFile != "":
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			add("kafka.tls.cert_file", "client certificate %s with key %s: %v", t.CertFile, t.KeyFile, err)
		}
	}

	s := c.Kafka.SASL
	switch s.Mechanism {
	case "":
		if s.Username != "" || s.Password != "" || s.Token != "" || s.TokenURL != "" || s.ClientID != "" || s.ClientSecret != "" {
			add("kafka.sasl.mechanism", "required when other kafka.sasl fields are set: one of %s", strings.Join(saslMechanisms, ", "))
		}
	case SASLPlain, SASLScram256, SASLScram512:
		if s.Username == "" {
			add("kafka.sasl.username", "required with mechanism %s", s.Mechanism)
		}
		if s.Password == "" {
			add("kafka.sasl.password", "required with mechanism %s", s.Mechanism)
		}
	case SASLOAuthBearer:
		switch {
		case s.Token != "" && s.TokenURL != "":
			add("kafka.sasl.token", "set either token (a static token) or token_url with client_id and client_secret, not both")
		case s.Token == "" && s.TokenURL == "":
			add("kafka.sasl.token_url", "required with mechanism OAUTHBEARER, or a static kafka.sasl.token")
		case s.TokenURL != "":
			if !absoluteHTTP(s.TokenURL) {
				add("kafka.sasl.token_url", "is not an absolute http(s) URL")
			}
			if s.ClientID == "" {
				add("kafka.sasl.client_id", "required with kafka.sasl.token_url")
			}
			if s.ClientSecret == "" {
				add("kafka.sasl.client_secret", "required with kafka.sasl.token_url")
			}
		}
	case SASLAWSMSKIAM:
		if !t.Enabled {
			add("kafka.sasl.mechanism", "AWS_MSK_IAM needs kafka.tls.enabled: true (MSK serves IAM on its TLS listener only)")
		}
	default:
		add("kafka.sasl.mechanism", "%q is not one of %s", s.Mechanism, strings.Join(saslMechanisms, ", "))
	}
	if s.Mechanism != "" && s.Mechanism != SASLOAuthBearer && (s.Token != "" || s.TokenURL != "" || s.ClientID != "" || s.ClientSecret != "") {
		add("kafka.sasl.mechanism", "%s takes no token, token_url, client_id or client_secret: those are for OAUTHBEARER", s.Mechanism)
	}
	if (s.Mechanism == SASLOAuthBearer || s.Mechanism == SASLAWSMSKIAM) && (s.Username != "" || s.Password != "") {
		add("kafka.sasl.mechanism", "%s takes no username or password", s.Mechanism)
	}
	return ps
}
