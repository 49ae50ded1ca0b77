package dedupe

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// CoalescerConfig tunes a Coalescer. Every field's comment states its default.
type CoalescerConfig struct {
	// MaxBatch bounds the calls sent in one round trip; default 256 (any
	// value below 1). 1 turns coalescing off: every call goes straight to
	// the inner store.
	MaxBatch int
	// Timeout bounds the round trip of one batch; default 5s (any value
	// below 1ns). A batch is not cancelled when one of its callers gives up:
	// it runs under its first caller's ctx without that ctx's cancellation
	// or deadline (its values, such as a trace span, are kept), plus
	// Timeout. A batch that runs out of Timeout fails its callers with
	// ErrUnavailable: the store did not answer in time.
	Timeout time.Duration
}

// Coalescer is a Store whose concurrent Claim calls share round trips to an
// inner Batcher, and so do its concurrent Done calls (group commit): callers
// keep their one-record code and the store sees pipelines.
//
// A Claim that finds no claim being sent goes to the inner store at once,
// alone, on the caller's goroutine and under the caller's ctx, so at low load
// a Coalescer adds a mutex and nothing else. Claims that arrive while one is
// being sent queue; when it returns, a flusher goroutine sends everything
// queued, up to MaxBatch, in one ClaimBatch, and repeats until nothing is
// queued, then exits. So a call waits for at most the round trip in flight
// and its own, and batches grow with the load. Done calls work the same way
// in a lane of their own, with DoneBatch, and only calls with the same ttl
// (in whole milliseconds) share a batch.
//
// Each caller gets its own Outcome. An error of a batch is returned to every
// caller in it, except that a reply error that is not ErrUnavailable (such as
// WRONGTYPE for one key of another type) makes the flusher ask again one call
// at a time, so only the callers it concerns get it. Asking again is safe: a
// claim already applied answers Claimed to its own token, and Done is
// idempotent.
//
// A caller whose ctx ends while its call is queued or in a batch returns the
// ctx error at once; its request may or may not be applied afterwards, as
// with a Redis call that times out. A claim retried with the same token
// answers Claimed either way, and an abandoned claim that was applied holds
// its key until the owner releases it or its lease runs out.
//
// Invalid arguments are reported per call, with the inner store's errors,
// before anything is queued. Release, Extend, ClaimBatch and DoneBatch go
// straight to the inner store. If the inner store is not a Batcher, every
// call goes straight to it.
//
// A Coalescer is safe for concurrent use. Its flusher goroutines run only
// while calls are queued; Close waits for them.
type Coalescer struct {
	inner    Store
	batcher  Batcher // inner as a Batcher; nil if it is not one
	coalesce bool    // batcher != nil and MaxBatch > 1
	cfg      CoalescerConfig

	mu     sync.Mutex
	claims lane
	dones  lane
	closed bool
	idle   sync.Cond // on mu: signalled when a lane stops being busy, for Close
}

var (
	_ Store    = (*Coalescer)(nil)
	_ Batcher  = (*Coalescer)(nil)
	_ Extender = (*Coalescer)(nil)
)

// errClosed is returned by Claim and Done after Close, as a closed client's
// calls are: the store is not available to this caller any more.
var errClosed = fmt.Errorf("%w: coalescer closed", ErrUnavailable)

// lane is one kind of call, claims or dones. Coalescer.mu guards it.
// Invariant: a lane with a queue is busy, and exactly one goroutine (a caller
// whose call is being sent, or a flusher) will see the queue and flush it.
type lane struct {
	busy  bool     // a call or batch of this kind is being sent
	queue []*batch // batches waiting to be sent, oldest first
}

// batch is calls that share one round trip. Callers append to it under
// Coalescer.mu while it is queued; once a flusher has taken it off the queue,
// the flusher alone writes it, and closing done hands the results to the
// callers.
type batch struct {
	// ctx is the first caller's: the batch keeps its values, not its
	// cancellation (see CoalescerConfig.Timeout). It is stored rather than
	// passed because the batch outlives that caller's call.
	ctx    context.Context
	claims []ClaimRequest // a claim batch
	keys   []string       // a done batch, all for ttl
	ttl    time.Duration

	// Results, written by the flusher before it closes done.
	outs []Outcome // one per claim, when err is nil
	errs []error   // one per call, when the batch was asked again one by one
	err  error     // the whole batch's error
	done chan struct{}
}

func newBatch(ctx context.Context) *batch {
	return &batch{ctx: ctx, done: make(chan struct{})}
}

// NewCoalescer returns a Coalescer on inner. It starts no goroutine. Closing
// it does not close inner.
func NewCoalescer(inner Store, cfg CoalescerConfig) *Coalescer {
	if cfg.MaxBatch < 1 {
		cfg.MaxBatch = 256
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	c := &Coalescer{inner: inner, cfg: cfg}
	c.batcher, _ = inner.(Batcher)
	c.coalesce = c.batcher != nil && cfg.MaxBatch > 1
	c.idle.L = &c.mu
	return c
}

// Claim implements Store.
func (c *Coalescer) Claim(ctx context.Context, key, token string, lease time.Duration) (Outcome, error) {
	if !c.coalesce {
		return c.inner.Claim(ctx, key, token, lease)
	}
	if _, err := checkClaim(ctx, token, lease); err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, errClosed
	}
	if !c.claims.busy {
		c.claims.busy = true
		c.mu.Unlock()
		o, err := c.inner.Claim(ctx, key, token, lease)
		c.sent(&c.claims)
		return o, err
	}
	b := c.claims.join(ctx, c.cfg.MaxBatch, func(b *batch) bool { return true })
	i := len(b.claims)
	b.claims = append(b.claims, ClaimRequest{Key: key, Token: token, Lease: lease})
	c.mu.Unlock()
	if err := c.wait(ctx, b); err != nil {
		return 0, fmt.Errorf("dedupe: claim %s: %w", key, err)
	}
	if err := b.result(i); err != nil {
		return 0, callerError(ctx, "claim "+key, err)
	}
	return b.outs[i], nil
}

// Done implements Store.
func (c *Coalescer) Done(ctx context.Context, key string, ttl time.Duration) error {
	if !c.coalesce {
		return c.inner.Done(ctx, key, ttl)
	}
	ttl, err := checkDuration(ctx, "done ttl", ttl)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	if !c.dones.busy {
		c.dones.busy = true
		c.mu.Unlock()
		err := c.inner.Done(ctx, key, ttl)
		c.sent(&c.dones)
		return err
	}
	b := c.dones.join(ctx, c.cfg.MaxBatch, func(b *batch) bool { return b.ttl == ttl })
	b.ttl = ttl
	i := len(b.keys)
	b.keys = append(b.keys, key)
	c.mu.Unlock()
	if err := c.wait(ctx, b); err != nil {
		return fmt.Errorf("dedupe: done %s: %w", key, err)
	}
	if err := b.result(i); err != nil {
		return callerError(ctx, "done "+key, err)
	}
	return nil
}

// Release implements Store: straight to the inner store.
func (c *Coalescer) Release(ctx context.Context, key, token string) error {
	return c.inner.Release(ctx, key, token)
}

// Extend implements Extender: straight to the inner store, which must be an
// Extender (Redis and Memory are); otherwise Extend fails.
func (c *Coalescer) Extend(ctx context.Context, key, token string, lease time.Duration) (bool, error) {
	x, ok := c.inner.(Extender)
	if !ok {
		return false, fmt.Errorf("dedupe: %T cannot extend a lease", c.inner)
	}
	return x.Extend(ctx, key, token, lease)
}

// ClaimBatch implements Batcher: straight to the inner store, or as
// consecutive Claim calls if it is not a Batcher.
func (c *Coalescer) ClaimBatch(ctx context.Context, reqs []ClaimRequest) ([]Outcome, error) {
	if c.batcher != nil {
		return c.batcher.ClaimBatch(ctx, reqs)
	}
	for i, r := range reqs { // a batch with one bad request claims none
		if _, err := validClaim(r.Token, r.Lease); err != nil {
			return nil, fmt.Errorf("claim batch request %d (%s): %w", i, r.Key, err)
		}
	}
	outs := make([]Outcome, len(reqs))
	for i, r := range reqs {
		o, err := c.inner.Claim(ctx, r.Key, r.Token, r.Lease)
		if err != nil {
			return nil, err
		}
		outs[i] = o
	}
	return outs, nil
}

// DoneBatch implements Batcher: straight to the inner store, or as
// consecutive Done calls if it is not a Batcher.
func (c *Coalescer) DoneBatch(ctx context.Context, keys []string, ttl time.Duration) error {
	if c.batcher != nil {
		return c.batcher.DoneBatch(ctx, keys, ttl)
	}
	if _, err := validDuration("done ttl", ttl); err != nil {
		return err
	}
	for _, k := range keys {
		if err := c.inner.Done(ctx, k, ttl); err != nil {
			return err
		}
	}
	return nil
}

// Close makes later Claim and Done calls fail with ErrUnavailable, and waits
// until the calls and batches being sent, and those already queued, are done:
// then no flusher goroutine is left. It does not close the inner store. Call
// it once the callers have stopped, before closing the inner store's client.
func (c *Coalescer) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for c.claims.busy || c.dones.busy {
		c.idle.Wait()
	}
}

// join returns the queued batch a call should join: the newest one that fits
// (same kind of ttl, room left), else a new one at the end of the queue.
// c.mu must be held.
func (l *lane) join(ctx context.Context, maxBatch int, fits func(*batch) bool) *batch {
	for _, b := range slices.Backward(l.queue) {
		if len(b.claims)+len(b.keys) < maxBatch && fits(b) {
			return b
		}
	}
	b := newBatch(ctx)
	l.queue = append(l.queue, b)
	return b
}

// sent is called by a caller whose own call went straight to the inner store,
// once it has returned: the lane is idle again, unless calls queued meanwhile,
// which a flusher then sends.
func (c *Coalescer) sent(l *lane) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(l.queue) == 0 {
		l.busy = false
		c.idle.Broadcast()
		return
	}
	go c.flush(l)
}

// flush sends l's batches, oldest first, until its queue is empty.
func (c *Coalescer) flush(l *lane) {
	for {
		c.mu.Lock()
		if len(l.queue) == 0 {
			l.busy = false
			c.idle.Broadcast()
			c.mu.Unlock()
			return
		}
		b := l.queue[0]
		l.queue = slices.Delete(l.queue, 0, 1)
		c.mu.Unlock()
		c.send(b)
		close(b.done)
	}
}

// send makes b's round trip and stores its results in b.
func (c *Coalescer) send(b *batch) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), c.cfg.Timeout)
	defer cancel()
	if len(b.keys) > 0 {
		c.sendDones(ctx, b)
	} else {
		c.sendClaims(ctx, b)
	}
}

func (c *Coalescer) sendClaims(ctx context.Context, b *batch) {
	if len(b.claims) == 1 {
		r := b.claims[0]
		o, err := c.inner.Claim(ctx, r.Key, r.Token, r.Lease)
		b.outs, b.err = []Outcome{o}, c.batchError(ctx, err)
		return
	}
	outs, err := c.batcher.ClaimBatch(ctx, b.claims)
	switch {
	case err == nil:
		b.outs = outs
	case refused(ctx, err):
		b.outs, b.errs = make([]Outcome, len(b.claims)), make([]error, len(b.claims))
		for i, r := range b.claims {
			o, err := c.inner.Claim(ctx, r.Key, r.Token, r.Lease)
			b.outs[i], b.errs[i] = o, c.batchError(ctx, err)
		}
	default:
		b.err = c.batchError(ctx, err)
	}
}

func (c *Coalescer) sendDones(ctx context.Context, b *batch) {
	if len(b.keys) == 1 {
		b.err = c.batchError(ctx, c.inner.Done(ctx, b.keys[0], b.ttl))
		return
	}
	err := c.batcher.DoneBatch(ctx, b.keys, b.ttl)
	switch {
	case err == nil:
	case refused(ctx, err):
		b.errs = make([]error, len(b.keys))
		for i, k := range b.keys {
			b.errs[i] = c.batchError(ctx, c.inner.Done(ctx, k, b.ttl))
		}
	default:
		b.err = c.batchError(ctx, err)
	}
}

// refused reports whether err, of a whole batch sent under ctx, is a reply
// that may concern some of its calls only: neither an outage nor the batch's
// timeout.
func refused(ctx context.Context, err error) bool {
	return !errors.Is(err, ErrUnavailable) && ctxEnded(ctx) == nil
}

// batchError is err of a round trip made under a batch's ctx: a batch that
// ran out of its Timeout is ErrUnavailable to its callers, whose own ctx has
// not ended (the store did not answer in time), not a ctx error of theirs.
func (c *Coalescer) batchError(ctx context.Context, err error) error {
	if err != nil && ctxEnded(ctx) != nil {
		return fmt.Errorf("%w: no reply within the batch timeout of %v: %v", ErrUnavailable, c.cfg.Timeout, err)
	}
	return err
}

// wait waits until b's results are in or ctx ends, and returns ctx's error
// in the second case.
func (c *Coalescer) wait(ctx context.Context, b *batch) error {
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		select {
		case <-b.done: // both at once: the results are worth more
			return nil
		default:
			return ctx.Err()
		}
	}
}

// result is the error of call i of b, once done is closed.
func (b *batch) result(i int) error {
	if b.errs != nil {
		return b.errs[i]
	}
	return b.err
}

// callerError is the error of a failed batch for one caller: the caller's
// ctx error if that ended meanwhile, as the inner stores report it, else the
// batch's error.
func callerError(ctx context.Context, op string, err error) error {
	if ctxErr := ctxEnded(ctx); ctxErr != nil {
		return fmt.Errorf("dedupe: %s: %w", op, ctxErr)
	}
	return err
}
