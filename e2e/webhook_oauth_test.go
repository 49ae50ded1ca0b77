package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	oautherrors "github.com/go-oauth2/oauth2/v4/errors"

	"github.com/fanout-dev/fanout/e2e/services"
	"github.com/fanout-dev/fanout/sinktest/oauth2test"
)

// authAttempt is one request the API got for an event: the token it
// carried and the answer.
type authAttempt struct {
	token  string
	status int
}

// oauthAPI validates every request's bearer token with the authorization
// server's manager and hands valid ones to a recording target. It revokes
// the token of the revokeAt-th valid request (that request answered 401,
// like every later one carrying it), and takes the token endpoint down for
// outage once the downAt-th valid request arrives.
type oauthAPI struct {
	t        *testing.T
	as       *oauth2test.Server
	tg       *target
	revokeAt int64
	downAt   int64
	outage   time.Duration

	valid atomic.Int64

	mu         sync.Mutex
	revoked    string
	expired    int                      // 401s for an expired token
	invalid    int                      // 401s for an unknown or revoked token
	seen       map[string][]authAttempt // event id → its attempts, in order
	downSpan   [2]time.Time             // when the token endpoint went down and came back
	downValid  [2]int64                 // valid requests then
	unexpected []string
}

func newOAuthAPI(t *testing.T, as *oauth2test.Server, revokeAt, downAt int64, outage time.Duration) *oauthAPI {
	t.Helper()
	api := &oauthAPI{t: t, as: as, revokeAt: revokeAt, downAt: downAt, outage: outage, seen: map[string][]authAttempt{}}
	hs := httptest.NewServer(api)
	t.Cleanup(hs.Close)
	api.tg = recorder(t, hs.URL+"/events")
	return api
}

func (api *oauthAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	token, _ := api.as.OAuth2.AccessTokenResolveHandler(r)
	_, err := api.as.OAuth2.ValidationBearerToken(r)
	status := http.StatusOK
	if err != nil {
		status = http.StatusUnauthorized
		api.mu.Lock()
		if errors.Is(err, oautherrors.ErrExpiredAccessToken) {
			api.expired++
		} else {
			api.invalid++
		}
		api.mu.Unlock()
	} else {
		switch n := api.valid.Add(1); n {
		case api.revokeAt:
			// The authorization server revokes the token: this request and
			// every later one carrying it are refused.
			if err := api.as.Manager.RemoveAccessToken(r.Context(), token); err != nil {
				api.t.Errorf("revoke a token: %v", err)
			}
			api.mu.Lock()
			api.revoked = token
			api.invalid++
			api.mu.Unlock()
			status = http.StatusUnauthorized
		case api.downAt:
			api.as.Down.Store(true)
			api.mu.Lock()
			api.downSpan[0], api.downValid[0] = time.Now(), n
			api.mu.Unlock()
			time.AfterFunc(api.outage, func() {
				api.mu.Lock()
				api.downSpan[1], api.downValid[1] = time.Now(), api.valid.Load()
				api.mu.Unlock()
				api.as.Down.Store(false)
			})
		}
	}
	api.mu.Lock()
	api.seen[key] = append(api.seen[key], authAttempt{token: token, status: status})
	api.mu.Unlock()
	if status != http.StatusOK {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid or expired access token", status)
		return
	}
	api.tg.ServeHTTP(w, r)
}

// metric returns the value of the sample name{sink="<sink>"} in a
// Prometheus text exposition; ok is false when there is none.
func metric(exposition, name, sink string) (v float64, ok bool) {
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, `sink="`+sink+`"`) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			return v, true
		}
	}
	return 0, false
}

// TestSinkOAuth2ClientCredentials: a sink with auth type oauth2 delivers
// 10,000 events, rate limited to last ~20s, to an API that validates every
// bearer token with a real OAuth2 authorization server (go-oauth2) issuing
// 5-second tokens: every event accepted once, nothing dead-lettered, several
// tokens fetched; a token revoked while in use costs one refresh and an
// immediate re-send; the token endpoint down for 10s costs lag, not letters.
// Neither the client secret nor any token appears in fanout's output.
func TestSinkOAuth2ClientCredentials(t *testing.T) {
	start := time.Now()
	const (
		secret   = "oauth-e2e-Client-Secret-7f3a9c"
		lifetime = 5 * time.Second
		outage   = 10 * time.Second
		// At most 500 token requests a second on average while the
		// endpoint is down.
		maxWhileDown = 5000
	)
	as := oauth2test.New(t, oauth2test.Config{Clients: map[string]string{"fanout": secret}, Lifetime: lifetime})
	api := newOAuthAPI(t, as, 3000, 6000, outage)
	t.Setenv("FANOUT_E2E_OAUTH_SECRET", secret)

	s := newScenario(t, "oauth2", events)
	s.writeConfig(sinkSpec{name: "api", target: api.tg, extra: fmt.Sprintf(`ordering: unordered
max_in_flight: 32
rate_limit: {rate: 500}
auth:
  type: oauth2
  oauth2:
    token_url: %s
    client_id: fanout
    client_secret: ${FANOUT_E2E_OAUTH_SECRET}
    scopes: [events.write]
    audience: https://api.e2e.test
    auth_style: auto`, as.URL)})
	s.emitAll()
	adminAddr := fmt.Sprintf("127.0.0.1:%d", services.FreePort(t))
	p := s.start("--admin", adminAddr)
	s.waitDone(5*time.Minute, map[string]*target{"api": api.tg}, map[string][]string{"api": s.ids})
	delivered := time.Since(start)
	metrics := httpGet(t, "http://"+adminAddr+"/metrics")
	p.term(t)

	checkAccepted(t, "api", api.tg, s.ids, 0)
	if n, err := s.dlqCount("api"); err != nil || n != 0 {
		t.Errorf("DLQ holds %d records (%v), want none: a token problem is lag, not letters", n, err)
	}
	issued := as.Issued()
	refreshes, ok1 := metric(metrics, "fanout_auth_token_refreshes_total", "api")
	tokenErrs, ok2 := metric(metrics, "fanout_auth_token_errors_total", "api")
	retries, ok3 := metric(metrics, "fanout_auth_retries_total", "api")
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("/metrics lacks a fanout_auth_* sample for sink api:\n%s", metrics)
	}
	api.mu.Lock()
	t.Logf("delivered %d events in %.1fs; token endpoint issued %d tokens, refused %d requests while down, go-oauth2 refused %d (%v); "+
		"fanout counted %g token refreshes, %g token errors, %g auth retries; the API answered 401 to %d expired and %d unknown/revoked tokens; "+
		"token requests' params %v",
		events, delivered.Seconds(), len(issued), as.Refused.Load(), len(as.Refusals()), as.Refusals(),
		refreshes, tokenErrs, retries, api.expired, api.invalid, as.Params())
	t.Logf("outage from valid request %d to %d (%d delivered in the %s the endpoint was down)",
		api.downValid[0], api.downValid[1], api.downValid[1]-api.downValid[0], api.downSpan[1].Sub(api.downSpan[0]).Round(time.Millisecond))
	api.mu.Unlock()

	// Several token lifetimes, each token fetched once and then cached.
	if refreshes < 3 {
		t.Errorf("fanout_auth_token_refreshes_total = %g, want >= 3 over a run of several 5s token lifetimes", refreshes)
	}
	if int(refreshes) > len(issued) {
		t.Errorf("fanout_auth_token_refreshes_total = %g, but the token endpoint issued only %d tokens", refreshes, len(issued))
	}
	if len(issued) > events/10 {
		t.Errorf("the token endpoint issued %d tokens for %d events: fanout does not cache its token", len(issued), events)
	}
	for p, n := range as.Params() {
		if p != "scope=events.write" && p != "audience=https://api.e2e.test" {
			t.Errorf("%d token requests had %s, want scope=events.write and audience=https://api.e2e.test", n, p)
		}
	}

	// The revoked token: every request refused with it was sent again at
	// once with another token, and accepted.
	api.mu.Lock()
	if api.revoked == "" {
		t.Errorf("the API never revoked a token: fewer than %d valid requests", api.revokeAt)
	}
	// Only each event's first refusal: after it the re-send must carry a
	// new token and be accepted.
	rejected, notResent := 0, 0
	for key, atts := range api.seen {
		for i, a := range atts {
			if a.token != api.revoked || a.status != http.StatusUnauthorized {
				continue
			}
			rejected++
			switch {
			case i+1 == len(atts):
				notResent++
				t.Errorf("event %s: refused with the revoked token and never sent again", key)
			case atts[i+1].token == api.revoked || atts[i+1].status != http.StatusOK:
				if notResent++; notResent <= 5 {
					t.Errorf("event %s: after the 401 for the revoked token the next attempt carried the same token: %v, answered %d",
						key, atts[i+1].token == api.revoked, atts[i+1].status)
				}
			}
			break
		}
	}
	if notResent > 0 {
		t.Errorf("%d of the %d events refused with the revoked token were not sent again at once with a new token", notResent, rejected)
	}
	api.mu.Unlock()
	t.Logf("%d events refused with the revoked token", rejected)
	if retries < 1 {
		t.Errorf("fanout_auth_retries_total = %g after a token was revoked, want >= 1", retries)
	}

	// The outage: fanout tried and failed to fetch a token, and waited.
	if as.Refused.Load() == 0 {
		t.Errorf("no token request reached the endpoint while it was down for %s", outage)
	}
	if tokenErrs < 1 {
		t.Errorf("fanout_auth_token_errors_total = %g after the token endpoint was down for %s, want >= 1", tokenErrs, outage)
	}
	// Backoff: a failed fetch fails the attempt (retryable: in-line backoff,
	// tiers, the breaker), it does not ask again at once. Measured: ~800
	// requests in the 10s with a backoff, ~24,000 from a fetch loop.
	if n := as.Refused.Load(); n > maxWhileDown {
		t.Errorf("the token endpoint got %d requests in the %s it was down (%.0f/s), want at most %d: fanout asks again without backing off",
			n, outage, float64(n)/outage.Seconds(), maxWhileDown)
	}

	out := p.out.String()
	if strings.Contains(out, secret) {
		t.Errorf("fanout run printed the client secret")
	}
	leaked := 0
	for _, tok := range issued {
		if strings.Contains(out, tok) {
			leaked++
		}
	}
	if leaked > 0 {
		t.Errorf("fanout run printed %d of the %d access tokens it was issued", leaked, len(issued))
	}
	t.Logf("TestSinkOAuth2ClientCredentials took %.1fs", time.Since(start).Seconds())
}
