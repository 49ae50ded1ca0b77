package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fanout-dev/fanout/sinktest"
)

// target is a real HTTP API on 127.0.0.1 that answers 200 after a fixed
// latency: a sinktest.API that keeps no per-key records of its own. For
// requests of its batch (by Idempotency-Key) it records the receipt time,
// the moment the request arrived, before the latency. A CloudEvents batch
// request (a batched sink's) records the same receipt time for each element,
// by the element's id; its Idempotency-Key is the batch's, not an event's.
// Requests to /raw are the raw HTTP ceiling's: answered the same, not recorded.
type target struct {
	URL     string
	latency time.Duration
	b       *batch
	api     *sinktest.API
	srv     *sinktest.Server

	arrivals []atomic.Int64 // receipt time of event i's first request, unix ns
	unique   atomic.Int64
	dups     atomic.Int64 // requests for an event that had arrived before
	foreign  atomic.Int64 // requests (batch elements) whose key (id) is not an id of the batch
	all      chan struct{}

	// The API's counters: recorded requests, one event or a batch each; of
	// which CloudEvents batches; elements in those batches.
	requests, batches, batched *atomic.Int64
}

// startTarget serves on a fresh loopback port until stop is called.
func startTarget(b *batch, latency time.Duration) (*target, error) {
	t := &target{latency: latency, b: b, arrivals: make([]atomic.Int64, b.n), all: make(chan struct{})}
	t.api = sinktest.New(sinktest.Options{Latency: latency, NoRecord: true, UnreadableStatus: http.StatusOK,
		Observe: func(c sinktest.Call, _ sinktest.Answer) { t.arrive(c.Key, c.Received.UnixNano()) }})
	t.requests, t.batches, t.batched = &t.api.Requests, &t.api.Batches, &t.api.Batched
	srv, err := sinktest.Listen("127.0.0.1:0", "/events", t)
	if err != nil {
		return nil, err
	}
	t.srv, t.URL = srv, srv.URL
	return t, nil
}

func (t *target) stop() { t.srv.Shutdown(5 * time.Second) }

func (t *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/raw" {
		t.api.ServeHTTP(w, r)
		return
	}
	io.Copy(io.Discard, r.Body)
	if t.latency > 0 {
		time.Sleep(t.latency)
	}
	w.WriteHeader(http.StatusOK)
}

// foreignCount is the requests (batch elements) whose key (id) is not an id
// of the batch, and the unreadable batch requests.
func (t *target) foreignCount() int64 { return t.foreign.Load() + t.api.Unreadable.Load() }

func (t *target) arrive(id string, now int64) {
	i, ok := t.b.index(id)
	if !ok {
		t.foreign.Add(1)
		return
	}
	if !t.arrivals[i].CompareAndSwap(0, now) {
		t.dups.Add(1)
		return
	}
	if t.unique.Add(1) == int64(t.b.n) {
		close(t.all)
	}
}

// waitAll waits until every event of the batch arrived, ctx ends, or check
// (polled every 200ms) reports an error.
func (t *target) waitAll(ctx context.Context, check func() error) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-t.all:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("%d of %d events arrived: %w", t.unique.Load(), t.b.n, ctx.Err())
		case <-tick.C:
			if check != nil {
				if err := check(); err != nil {
					return err
				}
			}
		}
	}
}

// delivery summarises the arrivals of events [from, to) of the batch.
type delivery struct {
	count        int           // events of [from, to) that arrived
	first, last  time.Time     // first and last receipt
	lat          []int64       // receipt − record timestamp, ns, sorted
	rate         float64       // count / (last − first)
	orderErrors  int           // events that arrived before an earlier event of their key
	p50, p99, p9 time.Duration // p999 is p9
}

func (t *target) delivery(from, to int) delivery {
	var d delivery
	var lo, hi int64
	for i := from; i < to; i++ {
		a := t.arrivals[i].Load()
		if a == 0 {
			continue
		}
		d.count++
		if lo == 0 || a < lo {
			lo = a
		}
		if a > hi {
			hi = a
		}
		d.lat = append(d.lat, a-t.b.ts[i].Load())
		// Key order: event i and i−keys have the same key; in one partition
		// the earlier one was produced first.
		if j := i - t.b.keys; j >= from {
			if aj := t.arrivals[j].Load(); aj != 0 && aj > a {
				d.orderErrors++
			}
		}
	}
	if d.count == 0 {
		return d
	}
	slices.Sort(d.lat)
	d.first, d.last = time.Unix(0, lo), time.Unix(0, hi)
	if span := d.last.Sub(d.first).Seconds(); span > 0 && d.count > 1 {
		d.rate = float64(d.count-1) / span
	}
	d.p50, d.p99, d.p9 = quantile(d.lat, 0.50), quantile(d.lat, 0.99), quantile(d.lat, 0.999)
	return d
}

// quantile of sorted values, nearest rank.
func quantile(sorted []int64, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return time.Duration(sorted[max(0, min(i, len(sorted)-1))])
}
