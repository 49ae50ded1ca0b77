package config

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/fanout-dev/fanout/redact"
)

// Secrets returns every secret string the config holds, for a
// redact.Redactor: passwords and tokens, the passwords and query values of
// URLs, and the values of sink headers that carry credentials (by name) or
// came from ${VAR} or ${file:PATH}. Adding a secret field is one line here;
// config/secrets_test.go checks each one is listed.
func (c *Config) Secrets() []string {
	var out []string
	add := func(v ...string) { out = append(out, v...) }
	add(c.Kafka.SASL.Password, c.Kafka.SASL.Token, c.Kafka.SASL.ClientSecret)
	add(redact.URLSecrets(c.Kafka.SASL.TokenURL)...)
	add(c.Redis.Password, c.Redis.Sentinel.Password)
	add(c.Schemas.RegistryAuth.Password, c.Schemas.RegistryAuth.Token)
	add(c.Run.AdminToken)
	add(redact.URLSecrets(c.Tracing.OTLPEndpoint)...)
	for _, v := range c.Tracing.Headers {
		add(headerSecrets(v)...)
	}
	add(redact.URLSecrets(c.Schemas.RegistryURL)...)
	for i, s := range c.Sinks {
		add(redact.URLSecrets(s.URL)...)
		add(s.Auth.Token, s.Auth.Password, s.Auth.Value, s.Auth.OAuth2.ClientSecret)
		add(redact.URLSecrets(s.Auth.OAuth2.TokenURL)...)
		add(s.Signing.Secrets...)
		for _, sec := range s.Signing.Secrets {
			if k, ok := strings.CutPrefix(sec, "whsec_"); ok {
				add(k) // the key alone, as a receiver's error might show it
			}
		}
		for k, v := range s.Headers {
			_, expanded := c.expanded[fmt.Sprintf("sinks[%d].headers.%s", i, k)]
			if expanded || CredentialHeader(k) {
				add(headerSecrets(v)...)
			}
		}
	}
	return out
}

// headerSecrets is a header value and, for "<scheme> <credentials>"
// (Bearer, Basic), the credentials alone, which an API may echo without the
// scheme. A template's literal parts are no secret: its rendered value is the
// event's.
func headerSecrets(v string) []string {
	if strings.Contains(v, "{{") {
		return nil
	}
	out := []string{v}
	if _, cred, ok := strings.Cut(v, " "); ok {
		out = append(out, strings.TrimSpace(cred))
	}
	return out
}

// CredentialHeader reports whether a header's name says its value is a
// credential: Authorization, Proxy-Authorization, Cookie, or any name with
// token, secret, key, auth, password or signature in it (X-Api-Key,
// X-Auth-Token).
func CredentialHeader(name string) bool {
	n := strings.ToLower(http.CanonicalHeaderKey(name))
	if n == "cookie" {
		return true
	}
	for _, w := range []string{"auth", "token", "secret", "key", "password", "signature"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// minAdminToken is the shortest run.admin_token accepted.
const minAdminToken = 16

// validateAdmin checks run.admin_token and that an admin listener off
// loopback has one. Nothing here shows the token.
func (c *Config) validateAdmin() []Problem {
	var ps []Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Line: c.lineOf(path), Msg: fmt.Sprintf(format, args...)})
	}
	if t := c.Run.AdminToken; t != "" && (len(t) < minAdminToken || strings.ContainsAny(t, " \t\r\n")) {
		add("run.admin_token", "must be at least %d characters without spaces (given: %d characters)", minAdminToken, len(t))
	}
	if err := AdminExposed(c.Run.AdminAddr, c.Run.AdminToken); err != nil {
		add("run.admin_addr", "%s", err)
	}
	return ps
}

// AdminExposed returns why an admin listener on addr without token would be
// unsafe: an address that is not loopback (an empty host is every
// interface) serves counts and profiles to anyone who can reach it. nil when
// addr is empty, loopback, or token is set.
func AdminExposed(addr, token string) error {
	if addr == "" || token != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address and run.admin_token is not set: the admin endpoint would serve metrics, sink state and profiles to anyone who can reach it; set run.admin_token (e.g. ${file:/run/secrets/admin-token}) or bind 127.0.0.1", addr)
}
