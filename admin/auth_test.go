package admin

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const adminTestToken = "ADMINTOKEN-0123456789abcdef"

// freeAddr is a loopback address nobody listens on (for serveAdmin, which
// takes an address, not a listener).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestAdminToken: on the real listener, with run.admin_token set, health and
// readiness are open and everything else needs the bearer token; pprof is
// there only with run.admin_pprof.
func TestAdminToken(t *testing.T) {
	for _, pprofOn := range []bool{false, true} {
		addr := freeAddr(t)
		stop, err := Serve(addr, &Server{Started: time.Now(), Token: adminTestToken, Pprof: pprofOn}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		get := func(path, auth string) (int, string) {
			t.Helper()
			req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		for _, tc := range []struct {
			path, auth string
			want       int
		}{
			{"/healthz", "", 200},
			{"/readyz", "", 200},
			{"/metrics", "", 401},
			{"/metrics", "Bearer wrong-token-0123456789ab", 401},
			{"/metrics", "Basic " + adminTestToken, 401},
			{"/metrics", "Bearer " + adminTestToken[:len(adminTestToken)-1], 401},
			{"/metrics", "Bearer " + adminTestToken, 200},
			{"/api/sinks", "", 401},
			{"/api/sinks", "Bearer " + adminTestToken, 200},
			{"/debug/pprof/", "", map[bool]int{false: 404, true: 401}[pprofOn]},
			{"/debug/pprof/", "Bearer " + adminTestToken, map[bool]int{false: 404, true: 200}[pprofOn]},
			{"/debug/pprof/cmdline", "Bearer " + adminTestToken, map[bool]int{false: 404, true: 200}[pprofOn]},
		} {
			code, body := get(tc.path, tc.auth)
			if code != tc.want {
				t.Errorf("pprof %v: GET %s (auth %q) = %d, want %d", pprofOn, tc.path, tc.auth, code, tc.want)
			}
			if strings.Contains(body, adminTestToken) {
				t.Errorf("GET %s: the body holds the token", tc.path)
			}
		}
		stop()
	}
}

// TestAdminRefusesExposedAddress: an admin address off loopback without a
// token is refused by Serve, naming why (cmd/fanout's
// TestRunRefusesExposedAdminAddress checks fanout run and validate).
func TestAdminRefusesExposedAddress(t *testing.T) {
	if _, err := Serve("0.0.0.0:0", &Server{}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "not a loopback address and run.admin_token is not set") {
		t.Errorf("Serve(0.0.0.0:0) without a token: %v", err)
	}
}
