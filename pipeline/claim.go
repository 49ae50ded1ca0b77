package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/fanout-dev/fanout/dedupe"
	"github.com/fanout-dev/fanout/sink"
)

type claim struct{ key, token string }

func (h *Handler) newToken() string {
	return string(strconv.AppendUint([]byte(h.tokenPrefix), h.tokenSeq.Add(1), 36))
}

// admitClaim waits for the breaker, then claims c.key. It returns the
// breaker's ticket and Claimed, Duplicate, or 0 for "deliver unprotected"
// (fail-open with the store down). Busy claims (another owner's live lease)
// and fail-closed store outages are waited out until ctx ends; while waiting
// the record gives its ticket back and asks the breaker again afterwards, so
// a half-open breaker's probe slots go to records that can send, never to one
// parked on a claim. On error no ticket is held.
func (h *Handler) admitClaim(ctx context.Context, c *claim, fromTier bool) (ticket, dedupe.Outcome, error) {
	var t ticket
	var out dedupe.Outcome
	var last error // the last store failure, to name it when ctx ends
	busy := false
	err := retry(ctx, func() (bool, error) {
		var err error
		if t, err = h.admit(ctx); err != nil {
			return true, err
		}
		t.fromTier = fromTier
		out, err = h.store.Claim(ctx, c.key, c.token, h.cfg.Lease)
		switch {
		case err == nil && out == dedupe.Busy:
			h.settle(t, sink.Canceled, 0)
			if !busy {
				busy = true
				h.busyWaits.Add(1)
				h.log.Info("event claimed by another owner; waiting for it to finish or its lease to end", "key", c.key)
			}
			return false, nil
		case err == nil:
			return true, nil
		case ctx.Err() != nil:
			h.settle(t, sink.Canceled, 0)
			if last != nil {
				return true, fmt.Errorf("%w (last store error: %v)", ctx.Err(), last)
			}
			return true, ctx.Err()
		}
		last = err
		h.storeErrs.Add(1)
		if !errors.Is(err, dedupe.ErrUnavailable) {
			// Not an outage (a wrong password, a key of another type):
			// no policy delivers through it; hold and say so loudly.
			h.settle(t, sink.Canceled, 0)
			h.log.Error("dedupe store refused the claim; holding the sink", "err", err)
			return false, err
		}
		if h.cfg.FailOpen {
			h.log.Warn("dedupe store unavailable; delivering unprotected (fail-open)", "err", err)
			out = 0
			return true, nil
		}
		h.settle(t, sink.Canceled, 0)
		h.log.Warn("dedupe store unavailable; holding the sink (fail-closed)", "err", err)
		return false, err
	})
	return t, out, err
}

// keepClaim renews c's lease every Lease/3 while a delivery runs, so a slow
// delivery keeps its key and a crashed owner's keys free up within one short
// lease. It arms a timer, not a goroutine; the returned func stops it.
func (h *Handler) keepClaim(c *claim) (stop func()) {
	x, ok := h.store.(dedupe.Extender)
	if c == nil || !ok {
		return func() {}
	}
	every := h.cfg.Lease / 3
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock() // t is read by the callback under mu
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		ctx, cancel := context.WithTimeout(context.Background(), every)
		held, err := x.Extend(ctx, c.key, c.token, h.cfg.Lease)
		cancel()
		switch {
		case err != nil:
			h.storeErrs.Add(1)
			h.log.Warn("could not renew a claim; it may expire while the delivery runs", "key", c.key, "err", err)
		case !held:
			h.log.Warn("claim lost while delivering; another owner may deliver too", "key", c.key)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(every)
		}
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}

// markDone records the delivery. The offset is committed whatever happens here
// (the API has the event); a failure only weakens protection against a later
// replay, so it is retried briefly, then logged.
func (h *Handler) markDone(ctx context.Context, c *claim) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := retry(ctx, func() (bool, error) {
		err := h.store.Done(ctx, c.key, h.cfg.DoneTTL)
		if err != nil {
			h.storeErrs.Add(1)
		}
		return err == nil, err
	})
	if err != nil {
		h.log.Error("could not mark a delivered event done; a replay could deliver it again", "key", c.key, "err", err)
	}
}

// release gives up c so a later attempt (retry tier, redrive, next owner) can
// claim it. Best effort: an unreleased claim expires with its lease.
func (h *Handler) release(c *claim) {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := h.store.Release(ctx, c.key, c.token); err != nil {
		h.storeErrs.Add(1)
		h.log.Warn("could not release a claim; it expires with its lease", "key", c.key, "err", err)
	}
}
