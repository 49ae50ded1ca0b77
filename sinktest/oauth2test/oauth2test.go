// Package oauth2test runs go-oauth2's authorization server on loopback for
// tests: the client-credentials grant, for the clients a test names, with
// access tokens of a fixed lifetime kept in go-oauth2's memory store, where an
// API under test looks them up. It is a package of its own, not part of
// sinktest, so that the demo, which serves sinktest's API, does not link
// go-oauth2.
package oauth2test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-oauth2/oauth2/v4"
	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	"github.com/go-oauth2/oauth2/v4/store"
)

// Config is what a Server issues.
type Config struct {
	// Clients maps each client id to its secret.
	Clients map[string]string
	// Lifetime is the access tokens' lifetime (manage.Config.AccessTokenExp);
	// zero means go-oauth2's client-credentials default, 2h.
	Lifetime time.Duration
	// Generate makes the access tokens; nil means go-oauth2's default
	// generator (opaque tokens).
	Generate oauth2.AccessGenerate
}

// Server is go-oauth2's token endpoint on an httptest server. Clients
// authenticate either way RFC 6749 §2.3.1 allows (HTTP basic or form
// fields), so a test does not depend on the client's auth style.
type Server struct {
	// URL is the token endpoint.
	URL string
	// Manager is the server's go-oauth2 manager: LoadAccessToken validates a
	// token as an API would, RemoveAccessToken revokes one.
	Manager *manage.Manager
	// OAuth2 is the go-oauth2 server: ValidationBearerToken checks a
	// request's bearer token as an API would.
	OAuth2 *server.Server
	// Down, while set, answers every token request 503 without reaching
	// go-oauth2, and counts it in Refused.
	Down    atomic.Bool
	Refused atomic.Int64
	// Requests counts the token requests go-oauth2 answered (while not Down),
	// granted or not.
	Requests atomic.Int64

	mu       sync.Mutex
	issued   []string
	refusals []string
	params   map[string]int
}

// New starts a Server for t and closes it when t ends.
func New(t testing.TB, cfg Config) *Server {
	t.Helper()
	m := manage.NewDefaultManager()
	if cfg.Lifetime > 0 {
		m.SetClientTokenCfg(&manage.Config{AccessTokenExp: cfg.Lifetime})
	}
	m.MustTokenStorage(store.NewMemoryTokenStore())
	if cfg.Generate != nil {
		m.MapAccessGenerate(cfg.Generate)
	}
	cs := store.NewClientStore()
	for id, secret := range cfg.Clients {
		if err := cs.Set(id, &models.Client{ID: id, Secret: secret, Domain: "http://localhost"}); err != nil {
			t.Fatal(err)
		}
	}
	m.MapClientStorage(cs)
	srv := server.NewDefaultServer(m)
	srv.SetClientInfoHandler(func(r *http.Request) (string, string, error) {
		if id, secret, err := server.ClientBasicHandler(r); err == nil {
			return id, secret, nil
		}
		return server.ClientFormHandler(r)
	})
	s := &Server{Manager: m, OAuth2: srv, params: map[string]int{}}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	s.URL = hs.URL + "/token"
	return s
}

// ServeHTTP answers a token request through go-oauth2 and records what it
// answered.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.Down.Load() {
		s.Refused.Add(1)
		http.Error(w, "token endpoint down for maintenance", http.StatusServiceUnavailable)
		return
	}
	s.Requests.Add(1)
	rec := httptest.NewRecorder()
	if err := s.OAuth2.HandleTokenRequest(rec, r); err != nil {
		http.Error(w, "token endpoint failed", http.StatusInternalServerError)
		return
	}
	var answer struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &answer)
	s.mu.Lock()
	if answer.AccessToken != "" {
		s.issued = append(s.issued, answer.AccessToken)
	} else {
		s.refusals = append(s.refusals, answer.Error)
	}
	for _, k := range []string{"scope", "audience"} {
		s.params[k+"="+r.Form.Get(k)]++
	}
	s.mu.Unlock()
	maps.Copy(w.Header(), rec.Header())
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// Issued returns the access tokens granted so far, in order.
func (s *Server) Issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// Refusals returns go-oauth2's error code ("invalid_client", …) for each
// token request it refused, in order.
func (s *Server) Refusals() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.refusals...)
}

// Params returns how many token requests carried each "scope=…" and
// "audience=…" form value (empty when absent).
func (s *Server) Params() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.params)
}
