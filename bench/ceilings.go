package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/dedupe"
)

// The ceilings run in the bench process, against the same Kafka, topic and
// target as the fanout run they are compared with.

// rawConsume polls b's topic with a plain franz-go consumer (every partition
// from the start, no group: nothing to join) until n records came, and returns
// records/s from the first poll to the last record.
func (e *env) rawConsume(ctx context.Context, b *batch, n int) (result, error) {
	var h batchHook
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(b.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(&h))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var got int
	start := time.Now()
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return result{}, fmt.Errorf("raw consume: %d of %d records: %w", got, n, err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return result{}, fmt.Errorf("raw consume: %w", errs[0].Err)
		}
		got += fs.NumRecords()
	}
	el := time.Since(start)
	if recs := h.records.Load(); recs > 0 {
		e.sizes.BatchBytes = float64(h.uncompressed.Load()) / float64(recs)
		e.sizes.CompressedBytes = float64(h.compressed.Load()) / float64(recs)
	}
	return result{Kind: "ceiling", Run: "raw consume (franz-go PollFetches)", Events: got, Delivered: got,
		EventsPerSec: float64(got) / el.Seconds(), WallSec: el.Seconds()}, nil
}

// batchHook counts the bytes of fetched batches.
type batchHook struct{ records, uncompressed, compressed atomic.Int64 }

func (h *batchHook) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	h.records.Add(int64(m.NumRecords))
	h.uncompressed.Add(int64(m.UncompressedBytes))
	h.compressed.Add(int64(m.CompressedBytes))
}

// rawHTTP POSTs n bodies of the batch's event size from c goroutines with a
// plain net/http client to the target (path /raw) and returns requests/s and
// the client-side latency.
func rawHTTP(ctx context.Context, t *target, c, n int) (result, error) {
	tr := &http.Transport{MaxConnsPerHost: c, MaxIdleConnsPerHost: c, MaxIdleConns: c, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	url := t.URL[:len(t.URL)-len("/events")] + "/raw"
	body := t.b.sample
	var next atomic.Int64
	lat := make([]int64, n)
	errs := make(chan error, c)
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() { // awaited below
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", t.b.id(i%t.b.n))
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					errs <- fmt.Errorf("raw http: %w", err)
					return
				}
				lat[i] = int64(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	select {
	case err := <-errs:
		return result{}, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	slices.Sort(lat)
	return result{Kind: "ceiling", Run: fmt.Sprintf("raw HTTP (net/http, C=%d)", c), Events: n, Delivered: n,
		InFlight: c, EventsPerSec: float64(n) / el.Seconds(), WallSec: el.Seconds(),
		P50ms: ms(quantile(lat, 0.5)), P99ms: ms(quantile(lat, 0.99)), P999ms: ms(quantile(lat, 0.999))}, nil
}

// sequential is the baseline fanout must beat: one event at a time, poll one
// record → decode → dedupe claim (Redis) → POST → done (Redis) → commit
// (synchronous), with fanout's own codec and dedupe store.
func (e *env) sequential(ctx context.Context, t *target) (result, error) {
	b := t.b
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumerGroup(e.name("seq")),
		kgo.ConsumeTopics(b.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	store := dedupe.NewRedis(e.rdb, e.name("seqdedupe")+":")
	token := dedupe.NewToken()
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	start := time.Now()
	for done := 0; done < b.n; {
		fs := cl.PollRecords(ctx, 1)
		if err := ctx.Err(); err != nil {
			return result{}, fmt.Errorf("sequential: %d of %d: %w", done, b.n, err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return result{}, fmt.Errorf("sequential: %w", errs[0].Err)
		}
		for _, r := range fs.Records() {
			if err := e.sequentialOne(ctx, client, store, token, t.URL, r); err != nil {
				return result{}, err
			}
			if err := cl.CommitRecords(ctx, r); err != nil {
				return result{}, fmt.Errorf("sequential: commit: %w", err)
			}
			done++
		}
	}
	wall := time.Since(start)
	d := t.delivery(0, b.n)
	res := result{Kind: "ceiling", Run: "sequential baseline (1 at a time)", Events: b.n, Delivered: d.count,
		Duplicates: int(t.dups.Load()), InFlight: 1, LatencyMs: ms(t.latency), EventsPerSec: d.rate, WallSec: wall.Seconds()}
	return res, nil
}

func (e *env) sequentialOne(ctx context.Context, client *http.Client, store *dedupe.Redis, token, url string, r *kgo.Record) error {
	rec, err := e.codec.Decode(ctx, r.Value)
	if err != nil {
		return fmt.Errorf("sequential: decode: %w", err)
	}
	id, ok := rec.Field("id")
	if !ok {
		return errors.New("sequential: event without id")
	}
	key := dedupe.Key("seq", id)
	out, err := store.Claim(ctx, key, token, 30*time.Second)
	if err != nil {
		return fmt.Errorf("sequential: claim: %w", err)
	}
	if out != dedupe.Claimed {
		return nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(rec.JSON))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", id)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("sequential: post: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("sequential: post: status %d", resp.StatusCode)
	}
	if err := store.Done(ctx, key, 7*24*time.Hour); err != nil {
		return fmt.Errorf("sequential: done: %w", err)
	}
	return nil
}
