package sink

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func newSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// verifier is an API that checks every request with the official Standard
// Webhooks library, with whichever secret it holds now.
type verifier struct {
	srv      *httptest.Server
	mu       sync.Mutex
	wh       *standardwebhooks.Webhook
	ok, bad  int
	lastID   string
	failures []string
}

func newVerifier(t *testing.T, secret string) *verifier {
	t.Helper()
	v := &verifier{}
	v.use(t, secret)
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		v.mu.Lock()
		defer v.mu.Unlock()
		if err := v.wh.Verify(body, r.Header); err != nil {
			v.bad++
			v.failures = append(v.failures, err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		v.ok++
		v.lastID = r.Header.Get("webhook-id")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *verifier) use(t *testing.T, secret string) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	v.wh = wh
	v.mu.Unlock()
}

func (v *verifier) counts() (ok, bad int, failures []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ok, v.bad, v.failures
}

// Every request verifies with the official library across a rotation: old
// secret, then old and new (the receiver switching midway), then new.
func TestSigningVerifiesAcrossRotation(t *testing.T) {
	old, nu := newSecret(t), newSecret(t)
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			v := newVerifier(t, old)
			cfg := func(secrets ...string) Config {
				c := Config{URL: v.srv.URL, Attempts: 1, Signing: SigningConfig{Secrets: secrets}}
				if batched {
					c.Batch = BatchConfig{MaxEvents: 10}
				}
				return c
			}
			deliver := func(s *Sink, n int) {
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if res := s.Deliver(context.Background(), Event{ID: fmt.Sprintf("ev-%d", i), Body: []byte(`{"i":1}`)}); res.Class != Done {
							t.Errorf("event %d: %v %v", i, res.Class, res.Err)
						}
					}()
				}
				wg.Wait()
			}
			deliver(newTestSink(t, cfg(old)), 20)
			both := newTestSink(t, cfg(old, nu))
			deliver(both, 20)
			v.use(t, nu)
			deliver(both, 20)
			deliver(newTestSink(t, cfg(nu)), 20)
			ok, bad, failures := v.counts()
			if bad != 0 || ok == 0 {
				t.Fatalf("%d requests verified, %d failed: %v", ok, bad, failures)
			}
			// A sink still on the old secret alone fails the new receiver.
			if res := newTestSink(t, cfg(old)).Deliver(context.Background(), Event{ID: "late", Body: []byte(`{}`)}); res.Class != Permanent {
				t.Fatalf("old secret after the rotation: %v", res.Class)
			}
		})
	}
}

func TestSigningConfig(t *testing.T) {
	for _, tc := range []struct {
		secret, want string
	}{
		{"whsec_!!!", "signing.secrets[0]: is not whsec_ and base64"},
		{"whsec_" + base64.StdEncoding.EncodeToString([]byte("short")), "holds a 5-byte key, want at least 16"},
	} {
		_, err := New(Config{Name: "s", URL: "https://127.0.0.1:1/", Signing: SigningConfig{Secrets: []string{tc.secret}}}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), tc.secret) {
			t.Errorf("%q: got %v, want %q without the secret", tc.secret, err, tc.want)
		}
	}
}

// webhook-timestamp is per attempt, and each attempt's signature covers its
// own timestamp: a retry a minute later still verifies within the
// receiver's 5-minute tolerance.
func TestSigningPerAttempt(t *testing.T) {
	secret := newSecret(t)
	wh, _ := standardwebhooks.NewWebhook(secret)
	var mu sync.Mutex
	var stamps []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		stamps = append(stamps, r.Header.Get("webhook-timestamp"))
		if err := wh.VerifyIgnoringTimestamp(body, r.Header); err != nil {
			t.Errorf("attempt %d: %v", len(stamps), err)
		}
		if len(stamps) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	s := newTestSink(t, Config{URL: srv.URL, Attempts: 2, Signing: SigningConfig{Secrets: []string{secret}}}, WithSleep(noWait))
	clock := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { clock = clock.Add(time.Minute); return clock }
	if res := s.Deliver(context.Background(), Event{ID: "e", Body: []byte(`{}`)}); res.Class != Done {
		t.Fatalf("%v %v", res.Class, res.Err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(stamps) != 2 || stamps[0] == stamps[1] {
		t.Fatalf("timestamps %v: want one per attempt", stamps)
	}
}
