package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// AuthConfig is how a sink proves who it is to its API: one Type and its
// fields. The credentials are the sink's own (contrast PropagateHeaders,
// which forwards a record's). Every secret here is for the caller to keep
// out of logs (the sink never prints one, and scrubs the credential it sent
// from an error response's excerpt).
type AuthConfig struct {
	// Type is "" (none), "bearer", "basic", "header" or "oauth2".
	Type string
	// Token is the bearer token (Type bearer), unless TokenFile is set.
	Token string
	// TokenFile is a file holding the bearer token, read again when its
	// size or modification time changes (checked at most every
	// tokenFileCheck, and at once after a 401), so a token rotated on disk is
	// used without a restart. One trailing newline is trimmed.
	TokenFile string
	// Username and Password are basic auth (Type basic).
	Username, Password string
	// Header and Value are a custom credential header, e.g. X-Api-Key
	// (Type header).
	Header, Value string
	// OAuth2 is the client-credentials grant (Type oauth2).
	OAuth2 OAuth2Config
}

// OAuth2Config is an OAuth 2.0 client-credentials grant (RFC 6749 §4.4),
// fetched through golang.org/x/oauth2/clientcredentials.
type OAuth2Config struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scopes       []string
	// Audience is sent as the "audience" parameter (Auth0, Okta and others
	// want it). Default none.
	Audience string
	// Params are extra token-request parameters, e.g. resource.
	Params map[string]string
	// AuthStyle is how the client authenticates to the token endpoint:
	// "auto" (default: header, then parameters if refused), "header"
	// (HTTP basic) or "params" (client_id and client_secret in the body).
	AuthStyle string
	// TLS is the TLS to an https token endpoint; default the system roots.
	TLS TLSConfig
}

// tokenFileCheck is how often a TokenFile's stamp is looked at.
const tokenFileCheck = time.Second

var authTypes = []string{"bearer", "basic", "header", "oauth2"}

var authStyles = map[string]oauth2.AuthStyle{"": oauth2.AuthStyleAutoDetect, "auto": oauth2.AuthStyleAutoDetect,
	"header": oauth2.AuthStyleInHeader, "params": oauth2.AuthStyleInParams}

// authorizer sets a sink's credentials on each request.
type authorizer interface {
	// apply sets the credentials on h and returns their generation (for
	// refresh) and the secret sent (to scrub from error excerpts). An error
	// (a token endpoint that is down) is a tokenError.
	apply(ctx context.Context, h http.Header) (gen uint64, secret string, err error)
	// refresh is called after a 401 to a request sent with generation gen;
	// it reports whether newer credentials are there to try.
	refresh(ctx context.Context, gen uint64) bool
}

// tokenError is a failure to get a credential (a token endpoint down, slow
// or refusing): Retryable whatever it wraps, so it costs lag, never a dead
// letter.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "getting a credential: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// AuthStats are a sink's credential counts.
type authStats struct {
	refreshes atomic.Int64 // tokens fetched (oauth2) or token files read again (bearer)
	errors    atomic.Int64 // token fetches that failed
	retries   atomic.Int64 // 401s answered by newer credentials and a re-send
}

// newAuthorizer validates a and builds its authorizer; nil for no auth.
func newAuthorizer(name string, a AuthConfig, timeout time.Duration, maxConns int, st *authStats) (authorizer, error) {
	field := func(f string) string { return "auth." + f }
	needs := func(fields ...string) error {
		vals := map[string]string{"token": a.Token, "token_file": a.TokenFile, "username": a.Username, "password": a.Password,
			"header": a.Header, "value": a.Value, "oauth2.token_url": a.OAuth2.TokenURL, "oauth2.client_id": a.OAuth2.ClientID}
		for f, v := range vals {
			if v != "" && !slices.Contains(fields, f) && !(a.Type == "bearer" && (f == "token" || f == "token_file")) {
				return configError(name, field(f), "is not used by auth.type %s", a.Type)
			}
		}
		return nil
	}
	switch a.Type {
	case "":
		if a.Token != "" || a.TokenFile != "" || a.Username != "" || a.Password != "" || a.Header != "" || a.Value != "" ||
			a.OAuth2.TokenURL != "" || a.OAuth2.ClientID != "" || a.OAuth2.ClientSecret != "" {
			return nil, configError(name, field("type"), "required when other auth fields are set: one of %s", strings.Join(authTypes, ", "))
		}
		return nil, nil
	case "bearer":
		if err := needs(); err != nil {
			return nil, err
		}
		switch {
		case a.TokenFile != "":
			f := &fileToken{path: a.TokenFile, st: st}
			if err := f.load(); err != nil {
				return nil, configError(name, field("token_file"), "%s", err)
			}
			return f, nil
		case a.Token == "":
			return nil, configError(name, field("token"), "required with auth.type bearer (or token_file)")
		case !validHeaderValue(a.Token) || strings.ContainsAny(a.Token, " "):
			return nil, configError(name, field("token"), "holds a space or control character")
		}
		return staticAuth{"Authorization", "Bearer " + a.Token, a.Token}, nil
	case "basic":
		if err := needs("username", "password"); err != nil {
			return nil, err
		}
		if a.Username == "" || strings.Contains(a.Username, ":") || !validHeaderValue(a.Username) {
			return nil, configError(name, field("username"), "required, without ':' or control characters")
		}
		if !validHeaderValue(a.Password) {
			return nil, configError(name, field("password"), "holds a control character")
		}
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(a.Username, a.Password)
		return staticAuth{"Authorization", r.Header.Get("Authorization"), a.Password}, nil
	case "header":
		if err := needs("header", "value"); err != nil {
			return nil, err
		}
		c := http.CanonicalHeaderKey(a.Header)
		switch {
		case !validToken(a.Header):
			return nil, configError(name, field("header"), "%q is not a valid header name", a.Header)
		case reserved[c] != "":
			return nil, configError(name, field("header"), "%s is set by the sink", c)
		case a.Value == "" || !validHeaderValue(a.Value):
			return nil, configError(name, field("value"), "required, without control characters")
		}
		return staticAuth{c, a.Value, a.Value}, nil
	case "oauth2":
		if err := needs("oauth2.token_url", "oauth2.client_id"); err != nil {
			return nil, err
		}
		return newOAuth2(name, a.OAuth2, timeout, maxConns, st)
	}
	return nil, configError(name, field("type"), "%q is not one of %s", a.Type, strings.Join(authTypes, ", "))
}

// header is the request header an auth config sets, "" for none.
func (a AuthConfig) header() string {
	switch a.Type {
	case "":
		return ""
	case "header":
		return http.CanonicalHeaderKey(a.Header)
	}
	return "Authorization"
}

// staticAuth is a credential that never changes: a bearer token from the
// config, basic auth, a custom header.
type staticAuth struct{ name, value, secret string }

func (s staticAuth) apply(_ context.Context, h http.Header) (uint64, string, error) {
	h[s.name] = []string{s.value}
	return 0, s.secret, nil
}

func (staticAuth) refresh(context.Context, uint64) bool { return false }

// fileToken is a bearer token read from a file, read again when the file
// changes.
type fileToken struct {
	path string
	st   *authStats

	mu      sync.Mutex
	token   string
	gen     uint64
	stamp   fileStamp
	checked time.Time
}

// load reads the file if its stamp changed; a file that cannot be read, or
// is empty, keeps the token it had (an error only when there is none).
func (f *fileToken) load() error {
	st, err := stampOf(f.path)
	if err == nil && f.token != "" && st == f.stamp {
		return nil
	}
	var b []byte
	if err == nil {
		b, err = os.ReadFile(f.path)
	}
	tok := string(bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r")))
	switch {
	case err == nil && (tok == "" || !validHeaderValue(tok) || strings.Contains(tok, " ")):
		err = fmt.Errorf("%s holds no token (empty, or a space or control character in it)", f.path)
	case err == nil:
		if tok != f.token {
			if f.token != "" {
				f.st.refreshes.Add(1)
			}
			f.token, f.gen = tok, f.gen+1
		}
		f.stamp = st
		return nil
	}
	if f.token != "" {
		return nil // being replaced: keep the last token
	}
	return err
}

func (f *fileToken) apply(_ context.Context, h http.Header) (uint64, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := time.Now(); now.Sub(f.checked) >= tokenFileCheck {
		f.checked = now
		if err := f.load(); err != nil {
			return 0, "", &tokenError{err}
		}
	}
	h["Authorization"] = []string{"Bearer " + f.token}
	return f.gen, f.token, nil
}

func (f *fileToken) refresh(_ context.Context, gen uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked = time.Now()
	_ = f.load()
	return f.gen != gen
}

// oauth2Auth caches a client-credentials token and fetches a new one before
// it expires: one fetch at a time for the whole sink, in the background
// while the current token is still good, and in the foreground (callers
// wait, each within its own context) when there is none.
type oauth2Auth struct {
	cc     *clientcredentials.Config
	client *http.Client
	st     *authStats
	now    func() time.Time
	wait   time.Duration // bounds one fetch

	mu       sync.Mutex
	token    string
	gen      uint64
	expiry   time.Time // zero: none given, good until a 401
	renewAt  time.Time // when to fetch the next one in the background
	fetching chan struct{}
	lastErr  error        // the last fetch's, nil once one succeeds
	fails    int          // fetches failed in a row
	retryAt  time.Time    // no fetch before this after a failure
	waits    atomic.Int64 // deliveries that waited for a fetch (no good token)
}

func newOAuth2(name string, o OAuth2Config, timeout time.Duration, maxConns int, st *authStats) (*oauth2Auth, error) {
	f := func(s string) string { return "auth.oauth2." + s }
	u, err := url.Parse(o.TokenURL)
	switch {
	case o.TokenURL == "":
		return nil, configError(name, f("token_url"), "required with auth.type oauth2")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, configError(name, f("token_url"), "must be an absolute http(s) URL")
	case o.ClientID == "":
		return nil, configError(name, f("client_id"), "required with auth.type oauth2")
	case o.ClientSecret == "":
		return nil, configError(name, f("client_secret"), "required with auth.type oauth2")
	case o.TLS.set() && u.Scheme != "https":
		return nil, configError(name, f("tls"), "set, but token_url is not https")
	}
	style, ok := authStyles[o.AuthStyle]
	if !ok {
		return nil, configError(name, f("auth_style"), "%q is not auto, header or params", o.AuthStyle)
	}
	params := url.Values{}
	for k, v := range o.Params {
		if k == "" || slices.Contains([]string{"grant_type", "scope", "client_id", "client_secret"}, k) {
			return nil, configError(name, f("params"), "%q is set by the grant (use scopes, client_id, client_secret)", k)
		}
		params.Set(k, v)
	}
	if o.Audience != "" {
		params.Set("audience", o.Audience)
	}
	tc, err := o.TLS.build(name, "auth.oauth2.tls.")
	if err != nil {
		return nil, err
	}
	return &oauth2Auth{
		cc: &clientcredentials.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: o.TokenURL,
			Scopes: o.Scopes, EndpointParams: params, AuthStyle: style},
		client: &http.Client{Transport: newTransport(min(maxConns, 4), tc), Timeout: timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		st: st, now: time.Now, wait: timeout,
	}, nil
}

func (o *oauth2Auth) apply(ctx context.Context, h http.Header) (uint64, string, error) {
	tok, gen, err := o.get(ctx, 0, false)
	if err != nil {
		return 0, "", err
	}
	h["Authorization"] = []string{"Bearer " + tok}
	return gen, tok, nil
}

// refresh fetches a new token unless one newer than gen is there already
// (another delivery's 401 fetched it).
func (o *oauth2Auth) refresh(ctx context.Context, gen uint64) bool {
	_, got, err := o.get(ctx, gen, true)
	return err == nil && got != gen
}

// get returns a good token. With force, a token of generation gen is not
// good (the API refused it). Without a good token it waits for one fetch;
// after a failed fetch it fails at once (retryable) until the fetch backoff
// has passed, so a token endpoint that is down is asked a few times a
// second at most, not once per delivery.
func (o *oauth2Auth) get(ctx context.Context, gen uint64, force bool) (string, uint64, error) {
	waited := false
	for {
		o.mu.Lock()
		now := o.now()
		good := o.token != "" && (o.expiry.IsZero() || now.Before(o.expiry)) && !(force && o.gen == gen)
		if good {
			if !o.expiry.IsZero() && !now.Before(o.renewAt) && !now.Before(o.retryAt) {
				o.startFetch() // renew ahead, keep using this one meanwhile
			}
			tok, g := o.token, o.gen
			o.mu.Unlock()
			return tok, g, nil
		}
		if waited || (o.lastErr != nil && now.Before(o.retryAt)) {
			err := o.lastErr
			o.mu.Unlock()
			if err == nil {
				err = errors.New("the token endpoint gave no token that is still valid")
			}
			return "", 0, &tokenError{fmt.Errorf("oauth2 token endpoint: %w", err)}
		}
		ch := o.startFetch()
		o.mu.Unlock()
		o.waits.Add(1)
		select {
		case <-ch:
		case <-ctx.Done():
			return "", 0, ctx.Err()
		}
		waited = true
	}
}

// fetchBackoff is the wait after the n-th failed fetch in a row before the
// next: 100ms doubling to 5s.
func fetchBackoff(n int) time.Duration {
	return min(100*time.Millisecond<<min(n-1, 6), 5*time.Second)
}

// startFetch starts a fetch unless one runs, and returns its done channel.
// o.mu is held.
func (o *oauth2Auth) startFetch() chan struct{} {
	if o.fetching != nil {
		return o.fetching
	}
	ch := make(chan struct{})
	o.fetching = ch
	go func() {
		defer close(ch)
		// Not the caller's context: the fetch is shared, and one caller
		// giving up must not fail it for the others.
		ctx, cancel := context.WithTimeout(context.Background(), o.wait)
		defer cancel()
		ctx = context.WithValue(ctx, oauth2.HTTPClient, o.client)
		tok, err := o.cc.Token(ctx)
		o.mu.Lock()
		defer o.mu.Unlock()
		o.fetching = nil
		if err == nil && tok.AccessToken == "" {
			err = errors.New("the token response holds no access_token")
		}
		if err != nil {
			o.lastErr = err
			o.fails++
			o.retryAt = o.now().Add(fetchBackoff(o.fails))
			o.st.errors.Add(1)
			return
		}
		o.st.refreshes.Add(1)
		o.lastErr, o.fails, o.retryAt = nil, 0, time.Time{}
		o.token, o.gen, o.expiry = tok.AccessToken, o.gen+1, tok.Expiry
		if !o.expiry.IsZero() {
			// Renew when a quarter of the lifetime is left, at most 10s
			// before the end: a 5s token is renewed after 3.75s, an hour's
			// 10s before it ends.
			left := o.expiry.Sub(o.now())
			o.renewAt = o.expiry.Add(-min(left/4, 10*time.Second))
		}
	}()
	return ch
}
