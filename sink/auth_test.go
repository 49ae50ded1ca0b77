package sink

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/sinktest/oauth2test"
)

// authServer is go-oauth2's authorization server (oauth2test) issuing
// client-credentials tokens that live for exp to client "fanout", and an API
// that validates each request's bearer token with the same manager (401
// otherwise).
type authServer struct {
	*oauth2test.Server
	api      *httptest.Server
	reject   atomic.Value // string: a token the API refuses once
	accepted atomic.Int64
	refused  atomic.Int64
	mu       sync.Mutex
	seen     map[string]bool
}

func newAuthServer(t *testing.T, secret string, exp time.Duration) *authServer {
	t.Helper()
	a := &authServer{seen: map[string]bool{},
		Server: oauth2test.New(t, oauth2test.Config{Clients: map[string]string{"fanout": secret}, Lifetime: exp})}
	a.reject.Store("")
	a.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, err := a.Manager.LoadAccessToken(r.Context(), tok); !ok || err != nil {
			a.refused.Add(1)
			http.Error(w, "invalid token "+tok, http.StatusUnauthorized)
			return
		}
		if a.reject.CompareAndSwap(tok, "") && tok != "" {
			a.refused.Add(1)
			http.Error(w, "revoked "+tok, http.StatusUnauthorized)
			return
		}
		a.mu.Lock()
		a.seen[tok] = true
		a.mu.Unlock()
		a.accepted.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(a.api.Close)
	return a
}

func (a *authServer) tokens() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.seen)
}

func oauthSink(t *testing.T, a *authServer, secret string, opts ...Option) *Sink {
	return newTestSink(t, Config{URL: a.api.URL, Attempts: 3, BackoffBase: time.Millisecond, BackoffCap: time.Millisecond,
		Auth: AuthConfig{Type: "oauth2", OAuth2: OAuth2Config{TokenURL: a.URL, ClientID: "fanout", ClientSecret: secret,
			Scopes: []string{"events"}, Audience: "https://api", Params: map[string]string{"resource": "x"}}}}, opts...)
}

// Tokens are cached, renewed before they expire, and a 401 to a token the
// API revoked costs one refresh and one more request, not a letter.
func TestOAuth2TokensRenewedAndRefreshedOn401(t *testing.T) {
	a := newAuthServer(t, "s3cret-client", 2*time.Second)
	s := oauthSink(t, a, "s3cret-client")
	ev := Event{ID: "e", Body: []byte(`{}`)}
	deadline := time.Now().Add(5 * time.Second)
	n := 0
	for ; time.Now().Before(deadline); n++ {
		if res := s.Deliver(context.Background(), ev); res.Class != Done {
			t.Fatalf("event %d: %v %v", n, res.Class, res.Err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := s.Stats()
	if a.refused.Load() != 0 || st.TokenRefreshes < 3 || a.tokens() < 3 || int64(a.Requests.Load()) > int64(st.TokenRefreshes)+1 {
		t.Fatalf("%d events over 5s of 2s tokens: %d refused, %d tokens fetched (%d issued, %d used); want none refused, a token per ~1.5s, each fetched once",
			n, a.refused.Load(), st.TokenRefreshes, a.Requests.Load(), a.tokens())
	}
	// The API revokes the token in use: one refresh, one more request.
	h := http.Header{}
	if _, _, err := s.auth.apply(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	a.reject.Store(strings.TrimPrefix(h.Get("Authorization"), "Bearer "))
	before := s.Stats()
	res := s.Deliver(context.Background(), ev)
	after := s.Stats()
	if res.Class != Done || res.Attempts != 1 || after.AuthRetries != before.AuthRetries+1 || after.TokenRefreshes != before.TokenRefreshes+1 {
		t.Fatalf("revoked token: %v %v after %d attempts, auth retries %d→%d, refreshes %d→%d; want done in one attempt after one refresh",
			res.Class, res.Err, res.Attempts, before.AuthRetries, after.AuthRetries, before.TokenRefreshes, after.TokenRefreshes)
	}
}

// A token is renewed in the background before it expires: no delivery
// waits for a fetch but the very first.
func TestOAuth2RenewedAhead(t *testing.T) {
	a := newAuthServer(t, "s3cret-client", 3*time.Second) // renewed 0.75s before its end
	s := oauthSink(t, a, "s3cret-client")
	for start := time.Now(); time.Since(start) < 4*time.Second; {
		if res := s.Deliver(context.Background(), Event{ID: "e", Body: []byte(`{}`)}); res.Class != Done {
			t.Fatalf("%v %v", res.Class, res.Err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	o := s.auth.(*oauth2Auth)
	if w, r := o.waits.Load(), s.Stats().TokenRefreshes; w != 1 || r < 2 {
		t.Fatalf("%d deliveries waited for a token fetch over %d fetches, want only the first to wait", w, r)
	}
}

// A token endpoint that is down is retryable (lag, the breaker), never a
// dead letter, also when its failure looks permanent (a 503 here).
func TestOAuth2EndpointDownIsRetryable(t *testing.T) {
	a := newAuthServer(t, "s3cret-client", time.Hour)
	a.Down.Store(true)
	s := oauthSink(t, a, "s3cret-client")
	res := s.Deliver(context.Background(), Event{ID: "e", Body: []byte(`{}`)})
	if res.Class != Retryable || !strings.Contains(res.Err.Error(), "oauth2 token endpoint") || s.Stats().Requests != 0 {
		t.Fatalf("endpoint down: %v %v, %d API requests; want retryable, no request", res.Class, res.Err, s.Stats().Requests)
	}
	if st := s.Stats(); st.TokenErrors < 1 {
		t.Fatalf("token errors %d", st.TokenErrors)
	}
	a.Down.Store(false)
	time.Sleep(fetchBackoff(1) + 50*time.Millisecond) // no fetch before the backoff has passed
	if res := s.Deliver(context.Background(), Event{ID: "e", Body: []byte(`{}`)}); res.Class != Done {
		t.Fatalf("endpoint back: %v %v", res.Class, res.Err)
	}
	// A wrong client secret: retryable too (the sink's own credentials), and
	// the secret is not in the error.
	bad := oauthSink(t, a, "WRONG-secret-value")
	res = bad.Deliver(context.Background(), Event{ID: "e", Body: []byte(`{}`)})
	if res.Class != Retryable || strings.Contains(res.Err.Error(), "WRONG-secret-value") {
		t.Fatalf("wrong secret: %v %v", res.Class, res.Err)
	}
	// A caller that gives up while the fetch runs is Canceled, not retryable.
	a.Down.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res := oauthSink(t, a, "s3cret-client").Deliver(ctx, Event{ID: "e", Body: []byte(`{}`)}); res.Class != Canceled {
		t.Fatalf("cancelled: %v %v", res.Class, res.Err)
	}
}

// A bearer token file rotated on disk is used without a restart: a 401 to
// the old token reads the file again at once.
func TestBearerTokenFileRotation(t *testing.T) {
	var want atomic.Value
	want.Store("token-one-aaaa")
	var got401 atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+want.Load().(string) {
			got401.Add(1)
			http.Error(w, "bad token: "+r.Header.Get("Authorization"), http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(api.Close)
	file := filepath.Join(t.TempDir(), "token")
	_ = os.WriteFile(file, []byte("token-one-aaaa\n"), 0o600)
	s := newTestSink(t, Config{URL: api.URL, Attempts: 1, Auth: AuthConfig{Type: "bearer", TokenFile: file}})
	ev := Event{ID: "e", Body: []byte(`{}`)}
	if res := s.Deliver(context.Background(), ev); res.Class != Done {
		t.Fatalf("first token: %v %v", res.Class, res.Err)
	}
	want.Store("token-two-bbbb")
	_ = os.WriteFile(file, []byte("token-two-bbbb\n"), 0o600)
	later := time.Now().Add(2 * time.Second)
	_ = os.Chtimes(file, later, later)
	if res := s.Deliver(context.Background(), ev); res.Class != Done || got401.Load() != 1 || s.Stats().AuthRetries != 1 {
		t.Fatalf("rotated token: %v %v, %d 401s, %d auth retries; want done after one 401 and one re-read", res.Class, res.Err, got401.Load(), s.Stats().AuthRetries)
	}
	// The file keeps the old token and the API wants another: a 401 that no
	// newer token answers is retryable (the sink's own credentials), and the
	// token the API echoed is scrubbed from the error.
	want.Store("token-three-cccc")
	res := s.Deliver(context.Background(), ev)
	if res.Class != Retryable || !strings.Contains(res.Err.Error(), "also after a refresh") || strings.Contains(res.Err.Error(), "token-two-bbbb") {
		t.Fatalf("stale token: %v %v", res.Class, res.Err)
	}
}

func TestStaticAuthKinds(t *testing.T) {
	rec := newRecorder(t)
	for name, a := range map[string]AuthConfig{
		"bearer": {Type: "bearer", Token: "tok-123456"},
		"basic":  {Type: "basic", Username: "fan", Password: "p4ss:word"},
		"header": {Type: "header", Header: "x-api-key", Value: "key-123456"},
	} {
		s := newTestSink(t, Config{URL: rec.srv.URL, Auth: a})
		if res := s.Deliver(context.Background(), Event{ID: "e", Body: []byte(`{}`)}); res.Class != Done {
			t.Fatalf("%s: %v %v", name, res.Class, res.Err)
		}
		c := rec.next(t)
		switch name {
		case "bearer":
			if c.header.Get("Authorization") != "Bearer tok-123456" {
				t.Errorf("bearer: %q", c.header.Get("Authorization"))
			}
		case "basic":
			if c.user != "fan" || c.pass != "p4ss:word" {
				t.Errorf("basic: %q %q", c.user, c.pass)
			}
		case "header":
			if c.header.Get("X-Api-Key") != "key-123456" {
				t.Errorf("header: %v", c.header)
			}
		}
	}
	// A static credential the API refuses: retryable, no refresh to try.
	s := newTestSink(t, Config{URL: newRecorder(t, 401).srv.URL, Attempts: 2, Auth: AuthConfig{Type: "bearer", Token: "tok-123456"}}, WithSleep(noWait))
	if res := s.Deliver(context.Background(), Event{ID: "e", Body: []byte(`{}`)}); res.Class != Retryable || res.Attempts != 2 || s.Stats().AuthRetries != 0 {
		t.Fatalf("refused static token: %v %v after %d attempts", res.Class, res.Err, res.Attempts)
	}
	// permanent_status still wins.
	s = newTestSink(t, Config{URL: newRecorder(t, 401).srv.URL, PermanentStatus: []int{401}, Auth: AuthConfig{Type: "bearer", Token: "tok-123456"}})
	if res := s.Deliver(context.Background(), Event{ID: "e", Body: []byte(`{}`)}); res.Class != Permanent {
		t.Fatalf("401 in permanent_status: %v", res.Class)
	}
}

func TestAuthConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"no type":        {Config{Auth: AuthConfig{Token: "x"}}, "auth.type: required when other auth fields are set"},
		"unknown type":   {Config{Auth: AuthConfig{Type: "digest"}}, `auth.type: "digest" is not one of bearer, basic, header, oauth2`},
		"bearer empty":   {Config{Auth: AuthConfig{Type: "bearer"}}, "auth.token: required"},
		"bearer file":    {Config{Auth: AuthConfig{Type: "bearer", TokenFile: "/nonexistent/t"}}, "auth.token_file: stat /nonexistent/t"},
		"stray field":    {Config{Auth: AuthConfig{Type: "basic", Username: "u", Password: "p", Token: "t"}}, "auth.token: is not used by auth.type basic"},
		"basic colon":    {Config{Auth: AuthConfig{Type: "basic", Username: "a:b", Password: "p"}}, "auth.username: required, without ':'"},
		"reserved":       {Config{Auth: AuthConfig{Type: "header", Header: "Idempotency-Key", Value: "v"}}, "auth.header: Idempotency-Key is set by the sink"},
		"no secret":      {Config{Auth: AuthConfig{Type: "oauth2", OAuth2: OAuth2Config{TokenURL: "https://a/t", ClientID: "c"}}}, "auth.oauth2.client_secret: required"},
		"bad style":      {Config{Auth: AuthConfig{Type: "oauth2", OAuth2: OAuth2Config{TokenURL: "https://a/t", ClientID: "c", ClientSecret: "s", AuthStyle: "jwt"}}}, `auth.oauth2.auth_style: "jwt" is not auto`},
		"grant param":    {Config{Auth: AuthConfig{Type: "oauth2", OAuth2: OAuth2Config{TokenURL: "https://a/t", ClientID: "c", ClientSecret: "s", Params: map[string]string{"grant_type": "password"}}}}, `"grant_type" is set by the grant`},
		"and a header":   {Config{Auth: AuthConfig{Type: "bearer", Token: "t"}, Headers: map[string]string{"authorization": "x"}}, "auth: sets Authorization, which headers or propagate_headers set too"},
		"and propagated": {Config{Auth: AuthConfig{Type: "header", Header: "X-Key", Value: "v"}, PropagateHeaders: []string{"x-key"}}, "auth: sets X-Key"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.cfg.Name, tc.cfg.URL = "s", "https://127.0.0.1:1/"
			_, err := New(tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if err != nil && errors.Is(err, ErrRender) {
				t.Fatal("a config error is not a render error")
			}
		})
	}
}

// The token endpoint down after the token expired: deliveries fail at once
// (retryable), and the endpoint is asked with a backoff, not once per
// delivery (e2e TestSinkOAuth2ClientCredentials saw 2,470 asks a second).
func TestOAuth2EndpointDownAfterExpiry(t *testing.T) {
	a := newAuthServer(t, "s3cret-client", time.Hour)
	s := oauthSink(t, a, "s3cret-client")
	if res := s.Deliver(context.Background(), Event{ID: "e", Body: []byte(`{}`)}); res.Class != Done {
		t.Fatalf("%v %v", res.Class, res.Err)
	}
	o := s.auth.(*oauth2Auth)
	o.mu.Lock()
	o.expiry = time.Now().Add(-time.Second) // the token expired meanwhile
	o.mu.Unlock()
	a.Down.Store(true)
	var asked atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < time.Second {
				res := s.Deliver(context.Background(), Event{ID: "e", Body: []byte(`{}`)})
				if res.Class != Retryable {
					t.Errorf("endpoint down, token expired: %v %v", res.Class, res.Err)
					return
				}
				asked.Add(1)
			}
		}()
	}
	wg.Wait()
	// 100ms, 200ms, 400ms backoff: about 4 fetches in the second.
	if errs := s.Stats().TokenErrors; errs > 10 || errs < 2 || asked.Load() < 8 {
		t.Fatalf("%d deliveries in 1s asked the endpoint %d times, want a handful (backoff)", asked.Load(), errs)
	}
}

// A token endpoint slower than the attempt's timeout: retryable, and the
// error says a credential is what was missing.
func TestOAuth2EndpointSlow(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	api := newRecorder(t)
	s := newTestSink(t, Config{URL: api.srv.URL, Attempts: 1, Timeout: 200 * time.Millisecond,
		Auth: AuthConfig{Type: "oauth2", OAuth2: OAuth2Config{TokenURL: slow.URL, ClientID: "c", ClientSecret: "s"}}})
	res := s.Deliver(context.Background(), Event{ID: "e", Body: []byte(`{}`)})
	// Which deadline ends first, the fetch's or the attempt's (both the
	// sink's timeout), decides the wording; both say a credential is missing.
	if _, isTok := errors.AsType[*tokenError](res.Err); res.Class != Retryable || !isTok || !strings.Contains(res.Err.Error(), "getting a credential") || api.hits.Load() != 0 {
		t.Fatalf("slow endpoint: %v %v, %d API requests", res.Class, res.Err, api.hits.Load())
	}
}
