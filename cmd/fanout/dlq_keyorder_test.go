package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/fanout-dev/fanout/e2e/services"
)

// A redrive takes no part in key order: a letter of a key-ordered sink that
// fails again (retryably) is parked on the DLQ again and leaves nothing in
// Redis's order barriers. It used to enter tier 1 (+1) and never leave, and
// since every later park renewed the count, the key's live events went
// through a tier for good.
func TestDLQRedriveLeavesNoOrderBarrier(t *testing.T) {
	w := newDLQWorld(t, func(string) int { return http.StatusServiceUnavailable })
	srv := services.NewRedis(t)
	w.cfg = writeFile(t, fmt.Sprintf(`kafka: {brokers: [%s], topic: events}
redis: {addr: "%s", key_prefix: "t-redrive:"}
run: {drain_timeout: 5s}
sinks:
  - {name: profile, url: "%s", ordering: key, retry: {attempts: 1, tiers: [1s, 2s]}, breaker: {enabled: false}}
  - {name: email, url: "%s"}
`, w.addrs[0], srv.Addr, w.profile.srv.URL, w.email.srv.URL))
	w.park(dlqLetter{partition: 0, id: "k1", origin: 1, class: "retries-exhausted", status: 503},
		dlqLetter{partition: 1, id: "k2", origin: 2, class: "retries-exhausted", status: 503})
	code, out, stderr := w.fanout("dlq", "redrive", "--sink", "profile", "--output", "json")
	if got := dlqSummary(t, out); code != 0 || got.Selected != 2 || got.FailedAgain != 2 {
		t.Fatalf("exit %d, %+v\n%s", code, got, stderr)
	}
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer client.Close()
	keys, err := client.Keys(context.Background(), "t-redrive:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if typ := client.Type(context.Background(), k).Val(); typ != "string" { // dedupe keys are strings
			t.Errorf("the redrive left %s key %s in Redis", typ, k)
		}
	}
}
