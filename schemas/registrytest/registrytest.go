// Package registrytest serves the few Confluent Schema Registry endpoints
// fanout's start-up type check reads, from the shipped schemas, for unit
// tests of that check (e2e tests run against a real registry).
package registrytest

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fanout-dev/fanout/schemas"
)

// Serve serves the Confluent endpoints run's type check reads:
// subjects events-value (versions 1: user.registered's schema, 2:
// order.placed's) and fanout.example.UserRegistered (id 1 again). With
// noVersions it predates GET /schemas/ids/{id}/versions. It returns the
// base URL; the server stops when the test ends.
func Serve(t testing.TB, noVersions bool) string {
	t.Helper()
	text := func(subject string) string {
		b, err := fs.ReadFile(schemas.Builtin(), subject+".avsc")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	byID := map[string]string{"1": text("user.registered"), "2": text("order.placed")}
	reply := func(w http.ResponseWriter, v any) { json.NewEncoder(w).Encode(v) }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /subjects", func(w http.ResponseWriter, r *http.Request) {
		reply(w, []string{"events-value", "fanout.example.UserRegistered"})
	})
	mux.HandleFunc("GET /subjects/events-value/versions", func(w http.ResponseWriter, r *http.Request) { reply(w, []int{1, 2}) })
	mux.HandleFunc("GET /subjects/{subject}/versions/{v}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("v")
		if id == "latest" {
			id = "1"
		}
		n := map[string]int{"1": 1, "2": 2}[id]
		reply(w, map[string]any{"subject": r.PathValue("subject"), "version": n, "id": n, "schema": byID[id]})
	})
	mux.HandleFunc("GET /schemas/ids/{id}/versions", func(w http.ResponseWriter, r *http.Request) {
		if noVersions {
			http.NotFound(w, r)
			return
		}
		reply(w, []map[string]any{{"subject": "events-value", "version": 1}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}
