package consumer

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/letter"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A retryable failure goes main → tier 1 → (delivered | DLQ), waiting each
// tier's delay, keeping its original coordinates and adding up its attempts.
func TestRetryTierThenDelivered(t *testing.T) {
	topic := "t-tier"
	tier := &Tier{Number: 1, Topic: topic + ".s.retry.1", Delay: 400 * time.Millisecond}
	addrs := newCluster(t, topic, tier.Topic, topic+".s.dlq")
	produce(t, addrs, topic, 60, 60)

	var mu sync.Mutex
	failing := map[string]bool{} // values that fail until healed
	for i := 0; i < 60; i += 6 {
		failing[strconv.Itoa(i)] = true
	}
	healed := map[string]bool{"0": true, "6": true, "12": true} // healed once they reach the tier
	seenAt := map[string][]time.Time{}
	handler := func(tierNo int) Handler {
		return HandlerFunc(func(_ context.Context, r *kgo.Record) Outcome {
			v := string(r.Value)
			mu.Lock()
			defer mu.Unlock()
			seenAt[v] = append(seenAt[v], time.Now())
			if failing[v] && !(tierNo > 0 && healed[v]) {
				return Outcome{Verdict: DeadLetter, Retryable: true, Reason: "retries-exhausted", Attempts: 3, Status: 503,
					Err: fmt.Errorf("http 503: busy"), Excerpt: "busy"}
			}
			return Outcome{Verdict: Done}
		})
	}
	main := cfgFor(topic, Unordered)
	main.Retry = tier
	tc := cfgFor(tier.Topic, Unordered)
	tc.Group, tc.Tier, tc.DLQTopic = "g-tier-1", 1, topic+".s.dlq"
	_, stopMain := run(t, addrs, main, handler(0))
	tierC, stopTier := run(t, addrs, tc, handler(1))
	waitCommitted(t, addrs, main.Group, topic)
	waitCommitted(t, addrs, tc.Group, tier.Topic)
	stopMain()
	stopTier()

	mu.Lock()
	defer mu.Unlock()
	for v := range failing {
		times := seenAt[v]
		if len(times) != 2 {
			t.Fatalf("record %s handled %d times, want 2 (main, tier)", v, len(times))
		}
		if gap := times[1].Sub(times[0]); gap < tier.Delay {
			t.Errorf("record %s retried after %v, before the tier delay %v", v, gap, tier.Delay)
		}
	}
	if got := tierC.Stats().Parked; got != int64(len(failing)-len(healed)) {
		t.Fatalf("tier parked %d on the DLQ, want %d", got, len(failing)-len(healed))
	}
	dlq := readAll(t, addrs, topic+".s.dlq", len(failing)-len(healed))
	for _, r := range dlq {
		h := headersOf(r)
		if h[letter.HeaderTopic] != topic || h[letter.HeaderOffset] == "" || h[letter.HeaderAttempts] != "6" || h[letter.HeaderStatus] != "503" ||
			h[letter.HeaderExcerpt] != "busy" || h[letter.HeaderTier] != "" || h[letter.HeaderNotBefore] != "" {
			t.Errorf("DLQ record %s headers %v", r.Value, h)
		}
		if off, _ := strconv.Atoi(h[letter.HeaderOffset]); r.Topic == topic || off < 0 {
			t.Errorf("DLQ record %s lost its original coordinates: %v", r.Value, h)
		}
		if healed[string(r.Value)] || !failing[string(r.Value)] {
			t.Errorf("record %s should not be in the DLQ", r.Value)
		}
	}
}

func headersOf(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

func readAll(t *testing.T, addrs []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	if len(out) != n {
		t.Fatalf("read %d records from %s, want %d", len(out), topic, n)
	}
	return out
}
