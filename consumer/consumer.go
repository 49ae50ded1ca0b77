package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/tracing"
)

// Stats are a consumer's running counts.
type Stats struct {
	Handled   int64 // records the handler returned Done or DeadLetter for
	Parked    int64 // dead letters acknowledged by the broker
	Tiered    int64 // records parked in the next retry tier
	Abandoned int64 // records left uncommitted (cancelled, revoked)
	Commits   int64 // successful offset commits
	InFlight  int   // records being handled now
	Buffered  int   // records fetched and not finished now (in flight or queued)
	Paused    int   // partitions whose fetching is paused now (buffer share full, waiting for a not-before time)

	// OffsetResets counts partitions that resumed at the log start because
	// retention took records never delivered: a committed offset below the
	// log start at assignment, or a fetch position overtaken while
	// consuming (see offsets.go).
	OffsetResets int64
}

// Consumer consumes one topic for one sink. Create it with New, run it with Run.
type Consumer struct {
	cfg  Config
	h    Handler
	log  *slog.Logger
	opts []kgo.Opt

	mu       sync.Mutex
	ready    workQueue // records whose turn has come, waiting for a worker
	running  int       // worker goroutines, at most MaxInFlight: each handles one record at a time
	parts    map[int32]*partition
	buffered int           // records accepted and not finished, all partitions
	holds    map[int32]int // reasons a partition's fetching is paused; paused while > 0
	closed   bool          // Run is past draining: callbacks have nothing to do

	commitMu sync.Mutex // serialises commits with each other and with revokes

	cl *kgo.Client // set by Run before any record is handled

	handled, parked, tiered, abandoned, commits, resets atomic.Int64

	afterPoll func() // test hook: runs after a poll that returned records, before they are accepted

	rangeLeft int                // range mode: partitions whose watermark has not reached their end (c.mu)
	rangeDone context.CancelFunc // range mode: ends the poll once rangeLeft is 0

	resetMu  sync.Mutex      // guards outRange; taken under c.mu or alone, never the other way
	outRange map[int32]int64 // partition → offset franz-go found out of range while consuming, until the next record
}

// partition is the state of one assigned partition; it is replaced, never
// reused, when the partition is assigned again.
type partition struct {
	id      int32
	ctx     context.Context
	cancel  context.CancelFunc
	tr      *tracker
	wg      sync.WaitGroup // records accepted and not finished
	lanes   map[string]*lane
	n       int                  // records accepted and not finished (c.mu)
	full    bool                 // n reached the partition's share and its fetching is paused (c.mu)
	revoked atomic.Bool          // set by stop: start nothing new
	done    bool                 // range mode: the watermark reached the end (c.mu)
	waiting map[*waiter]struct{} // records waiting for their not-before time (c.mu)
}

// waiter is a tier record waiting for its not-before time, off any worker.
type waiter struct {
	w work
	t *time.Timer
}

// work is one record ready to be handled, with the lane it holds (nil:
// unordered).
type work struct {
	p   *partition
	ln  *lane
	key string
	r   *kgo.Record
}

// workQueue is a FIFO of work.
type workQueue struct {
	items []work
	head  int
}

func (q *workQueue) len() int { return len(q.items) - q.head }

func (q *workQueue) push(w work) { q.items = append(q.items, w) }

// remove takes out, in order, the items for which match holds.
func (q *workQueue) remove(match func(work) bool) []work {
	var out []work
	keep := q.items[:q.head]
	for _, w := range q.items[q.head:] {
		if match(w) {
			out = append(out, w)
		} else {
			keep = append(keep, w)
		}
	}
	clear(q.items[len(keep):])
	q.items = keep
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return out
}

func (q *workQueue) pop() work {
	w := q.items[q.head]
	q.items[q.head] = work{}
	q.head++
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head > 1024 && q.head > len(q.items)/2:
		n := copy(q.items, q.items[q.head:])
		q.items, q.head = q.items[:n], 0
	}
	return w
}

// stop marks p revoked and finishes at once, as not done (uncommitted), every
// record of p that no worker is handling: those in the shared ready queue,
// queued behind a lane, and waiting for a not-before time. Records already
// being handled go on until done or cancelled. So a revoke or drain waits only
// for p's own in-flight records, never for workers busy with partitions that
// stay assigned. c.mu is held.
func (c *Consumer) stop(p *partition) {
	if p.revoked.Swap(true) {
		return
	}
	for wt := range p.waiting {
		wt.t.Stop()
		delete(p.waiting, wt)
		c.unhold(p.id)
		c.drop(wt.w)
	}
	for _, w := range c.ready.remove(func(w work) bool { return w.p == p }) {
		c.drop(w)
	}
	// Lanes whose head is being handled: their queue goes now; the worker
	// closes the lane when it finishes the head (see next).
	for _, ln := range p.lanes {
		for _, r := range ln.queue {
			c.finish(p, r, false)
		}
		ln.queue = nil
	}
}

// drop finishes w, which no worker holds, as not done, and closes its lane
// with whatever is queued behind it. c.mu is held.
func (c *Consumer) drop(w work) {
	c.finish(w.p, w.r, false)
	if w.ln != nil {
		for _, r := range w.ln.queue {
			c.finish(w.p, r, false)
		}
		w.ln.queue = nil
		w.ln.running = false
		delete(w.p.lanes, w.key)
	}
}

// lane is a FIFO of records that must not be in flight together.
type lane struct {
	queue   []*kgo.Record
	running bool
}

// New validates cfg and returns a Consumer. opts are extra franz-go options
// (seed brokers, TLS, SASL, client id); the group, topic, offsets and commit
// options are the consumer's own. New starts nothing.
func New(cfg Config, h Handler, logger *slog.Logger, opts ...kgo.Opt) (*Consumer, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("consumer: Handler is required")
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Consumer{
		cfg:   cfg,
		h:     h,
		log:   logger.With("sink", cfg.Sink),
		opts:  opts,
		parts: map[int32]*partition{},
		holds: map[int32]int{},
	}, nil
}

// Stats returns the running counts.
func (c *Consumer) Stats() Stats {
	c.mu.Lock()
	buffered, paused, running := c.buffered, len(c.holds), c.running
	c.mu.Unlock()
	return Stats{Handled: c.handled.Load(), Parked: c.parked.Load(), Tiered: c.tiered.Load(), Abandoned: c.abandoned.Load(), Commits: c.commits.Load(),
		OffsetResets: c.resets.Load(), InFlight: running, Buffered: buffered, Paused: paused}
}

// Run joins the group (or, with Config.Range, reads the range until every
// partition of it is done) and handles records until ctx ends, then stops fetching,
// waits up to DrainTimeout for in-flight records, cancels the rest (left
// uncommitted), commits the done watermark and leaves the group. It returns
// after every goroutine it started has exited.
func (c *Consumer) Run(ctx context.Context) error {
	// Deliveries outlive ctx by the drain deadline: they get their own root.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	// Fetch sizing first, so the caller's options may tune it; the group,
	// topic, offset and commit options last: they are the consumer's own.
	opts := []kgo.Opt{
		kgo.FetchMaxBytes(c.cfg.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(c.cfg.FetchMaxPartitionBytes),
		kgo.FetchMaxWait(c.cfg.FetchMaxWait),
	}
	opts = append(opts, c.opts...)
	if c.cfg.Range != nil {
		opts = append(opts, c.rangeOpts()...)
	} else {
		opts = append(opts, c.groupOpts(work)...)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", c.cfg.Sink, err)
	}
	c.cl = cl
	pollCtx := ctx
	if c.cfg.Range != nil {
		var cancel context.CancelFunc
		pollCtx, cancel = context.WithCancel(ctx)
		defer cancel()
		c.startRange(work, cancel)
		c.log.Info("consumer started", "range", len(c.cfg.Range), "topic", c.cfg.Topic,
			"ordering", c.cfg.Ordering.String(), "max_in_flight", c.cfg.MaxInFlight)
	} else {
		c.log.Info("consumer started", "group", c.cfg.Group, "topic", c.cfg.Topic,
			"ordering", c.cfg.Ordering.String(), "max_in_flight", c.cfg.MaxInFlight)
	}

	var loops sync.WaitGroup
	stopCommits := make(chan struct{})
	loops.Add(1)
	go func() {
		defer loops.Done()
		c.commitLoop(work, cl, stopCommits)
	}()

	denied := c.poll(pollCtx, cl)
	stopStart := time.Now()

	// Stage 1: fetching has stopped; start nothing new (queued records stay
	// uncommitted) and let in-flight records finish in time.
	c.mu.Lock()
	for _, p := range c.parts {
		c.stop(p)
	}
	c.mu.Unlock()
	if !c.waitAll(c.cfg.DrainTimeout) {
		c.log.Warn("drain deadline passed; cancelling in-flight deliveries (left uncommitted)")
	}
	// Stage 2: cancel what is left and wait for it to unwind.
	c.mu.Lock()
	for _, p := range c.parts {
		p.cancel()
	}
	c.mu.Unlock()
	c.waitAll(time.Minute)
	close(stopCommits)
	loops.Wait()
	c.log.Debug("drained", "took", time.Since(stopStart))

	// Stage 3: commit what is done, then leave the group.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	err = c.commit(cctx, cl, nil)
	cancel()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.log.Debug("final commit", "took", time.Since(stopStart), "err", err)
	cl.Close() // leaves the group; the revoke callback finds nothing to do
	c.log.Info("consumer stopped", "handled", c.handled.Load(), "parked", c.parked.Load(), "abandoned", c.abandoned.Load())
	if denied != nil {
		return fmt.Errorf("consumer %s: %w", c.cfg.Sink, denied)
	}
	if err != nil {
		return fmt.Errorf("consumer %s: final commit: %w", c.cfg.Sink, err)
	}
	return nil
}

// poll fetches and dispatches until ctx ends. Each poll takes everything
// franz-go has buffered, so it never holds fetched records back and a
// partition never waits behind another's records; backpressure is per
// partition: one at its share of the buffer is paused (see accept), which
// then drops nothing buffered, since nothing is left there.
//
// A fetch error that is Kafka refusing fanout (Denied: a missing ACL, a
// failed login) ends the poll and is returned, after the records of that
// poll are accepted: retrying cannot help, and an operator sees it at once.
func (c *Consumer) poll(ctx context.Context, cl *kgo.Client) (denied error) {
	for ctx.Err() == nil && denied == nil {
		fs := cl.PollFetches(ctx)
		if fs.IsClientClosed() {
			cl.AllowRebalance()
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if Denied(err) && denied == nil {
				denied = fmt.Errorf("Kafka refused (group %s, topic %s): %w", cmp.Or(c.cfg.Group, "none: a range"), cmp.Or(t, c.cfg.Topic), err)
			}
			if !errors.Is(err, context.Canceled) {
				c.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		if c.afterPoll != nil && fs.NumRecords() > 0 {
			c.afterPoll()
		}
		// Bind each record to the partition state current at fetch time, so a
		// record fetched before a revoke is never run under a later
		// assignment: with BlockRebalanceOnPoll, no OnPartitions callback
		// runs from PollFetches returning until AllowRebalance, so
		// c.parts is still the assignment the records were fetched under.
		c.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			c.accept(c.parts[r.Partition], r)
		})
		c.mu.Unlock()
		cl.AllowRebalance()
	}
	return denied
}

// share is how many records one partition may have buffered before its
// fetching is paused: an even split of MaxBuffered over the assigned
// partitions, so one backed-up partition (a slow key, a partition-ordered
// lane) cannot take the whole buffer and leave the others idle. Unordered and
// key-ordered partitions may keep at least MaxInFlight, so a single busy
// partition can still fill every in-flight slot. c.mu is held.
func (c *Consumer) share() int {
	n := c.cfg.MaxBuffered / max(len(c.parts), 1)
	if c.cfg.Ordering != ByPartition {
		n = max(n, c.cfg.MaxInFlight)
	}
	return max(n, 1)
}

// hold pauses fetching partition id for one more reason; unhold drops one.
// franz-go drops what it buffered for a paused partition and fetches it again
// from the same offset once resumed. c.mu is held (franz-go's pause lock is
// its own, never held while calling back into fanout).
func (c *Consumer) hold(id int32) {
	c.holds[id]++
	if c.holds[id] == 1 {
		c.cl.PauseFetchPartitions(map[string][]int32{c.cfg.Topic: {id}})
	}
}

func (c *Consumer) unhold(id int32) {
	c.holds[id]--
	if c.holds[id] <= 0 {
		delete(c.holds, id)
		c.cl.ResumeFetchPartitions(map[string][]int32{c.cfg.Topic: {id}})
	}
}

// accept starts r or queues it behind its ordering lane; c.mu is held.
func (c *Consumer) accept(p *partition, r *kgo.Record) {
	if p == nil || p.revoked.Load() || c.parts[p.id] != p {
		return
	}
	if p.tr.bounded && r.Offset >= p.tr.end {
		// Past a range's end: the offsets between the last record and
		// the end do not exist.
		p.tr.close()
		c.settled(p)
		return
	}
	if !p.tr.add(r.Offset, r.LeaderEpoch) {
		return
	}
	if p.tr.bounded && r.Offset+1 >= p.tr.end {
		p.tr.close()
	}
	c.noteResumed(r)
	if r.Attrs.IsControl() || p.tr.priorDone(r.Offset) {
		// A transaction's commit or abort marker: nothing to deliver, but
		// done, so the watermark reaches the end offset. Or a range's
		// record an earlier run finished: never handled again.
		p.tr.finish(r.Offset)
		c.settled(p)
		return
	}
	c.buffered++
	p.n++
	if !p.full && p.n >= c.share() {
		p.full = true
		c.hold(p.id)
	}
	p.wg.Add(1)
	key, ordered := c.laneKey(r)
	if !ordered {
		c.enqueue(work{p: p, r: r})
		c.dispatch()
		return
	}
	ln := p.lanes[key]
	if ln == nil {
		ln = &lane{}
		p.lanes[key] = ln
	}
	if ln.running {
		ln.queue = append(ln.queue, r)
		return
	}
	ln.running = true
	c.enqueue(work{p: p, ln: ln, key: key, r: r})
	c.dispatch()
}

// enqueue makes w ready, or for a tier consumer whose record is not due yet,
// arms a timer that makes it ready then, with the partition's fetching paused
// meanwhile (a tier partition holds records in not-before order, so nothing
// behind it is due earlier). A waiting record holds no worker. c.mu is held.
func (c *Consumer) enqueue(w work) {
	if c.cfg.Tier > 0 && !w.p.revoked.Load() {
		if nb, ok := notBefore(w.r); ok {
			if d := time.Until(nb); d > 0 {
				c.hold(w.p.id)
				wt := &waiter{w: w}
				w.p.waiting[wt] = struct{}{}
				wt.t = time.AfterFunc(d, func() {
					c.mu.Lock()
					defer c.mu.Unlock()
					c.wake(wt)
					c.dispatch()
				})
				return
			}
		}
	}
	c.ready.push(w)
}

// wake makes a waiting record ready (its time came, or its partition
// stopped), once. c.mu is held.
func (c *Consumer) wake(wt *waiter) {
	p := wt.w.p
	if _, ok := p.waiting[wt]; !ok {
		return
	}
	delete(p.waiting, wt)
	c.unhold(p.id)
	c.ready.push(wt.w)
}

// dispatch starts workers for ready records, up to MaxInFlight. c.mu is held.
func (c *Consumer) dispatch() {
	for c.running < c.cfg.MaxInFlight && c.ready.len() > 0 {
		c.running++
		go c.worker(c.ready.pop())
	}
}

// worker handles w, then whatever else is ready, and exits when nothing is.
// A lane's next record goes to the back of the ready queue, so a long lane
// shares the workers with the others.
func (c *Consumer) worker(w work) {
	for {
		c.handle(w.p, w.r)
		c.mu.Lock()
		if w.ln != nil {
			c.next(w)
		}
		if c.ready.len() == 0 {
			c.running--
			c.mu.Unlock()
			return
		}
		w = c.ready.pop()
		c.mu.Unlock()
	}
}

// next enqueues the record queued behind w in its lane, or closes the lane.
// Once the partition is revoked, the queue is left uncommitted for the next
// owner. c.mu is held.
func (c *Consumer) next(w work) {
	ln, p := w.ln, w.p
	if len(ln.queue) == 0 || p.revoked.Load() {
		for _, q := range ln.queue {
			c.finish(p, q, false)
		}
		ln.queue = nil
		ln.running = false
		delete(p.lanes, w.key)
		return
	}
	r := ln.queue[0]
	ln.queue[0] = nil
	ln.queue = ln.queue[1:]
	c.enqueue(work{p: p, ln: ln, key: w.key, r: r})
}

func (c *Consumer) laneKey(r *kgo.Record) (string, bool) {
	switch c.cfg.Ordering {
	case ByPartition:
		return "", true
	case ByKey:
		if r.Key == nil {
			return "", false
		}
		return string(r.Key), true
	}
	return "", false
}

// handle runs the handler for r on a worker and finishes r.
func (c *Consumer) handle(p *partition, r *kgo.Record) {
	if p.revoked.Load() || p.ctx.Err() != nil {
		c.lockedFinish(p, r, false)
		return
	}
	ctx := tracing.ExtractRecord(p.ctx, r)
	out := c.h.Handle(ctx, r)
	switch out.Verdict {
	case Done:
	case DeadLetter:
		topic, tier, count := c.cfg.DLQTopic, (*Tier)(nil), &c.parked
		if out.Retryable && c.cfg.Retry != nil {
			topic, tier, count = c.cfg.Retry.Topic, c.cfg.Retry, &c.tiered
		}
		if err := c.park(ctx, c.cl, topic, tier, r, out); err != nil {
			out.Verdict = Abandon
		} else {
			count.Add(1)
			if out.OnParked != nil {
				out.OnParked()
			}
		}
	default:
		out.Verdict = Abandon
	}
	if out.Verdict != Abandon {
		c.handled.Add(1)
	}
	c.lockedFinish(p, r, out.Verdict != Abandon)
}

func (c *Consumer) lockedFinish(p *partition, r *kgo.Record, done bool) {
	c.mu.Lock()
	c.finish(p, r, done)
	c.mu.Unlock()
}

// finish records r's end; c.mu is held. done=false leaves r uncommitted, and so
// everything after it in its partition until the partition is reassigned.
func (c *Consumer) finish(p *partition, r *kgo.Record, done bool) {
	if done {
		p.tr.finish(r.Offset)
		c.settled(p)
	} else {
		c.abandoned.Add(1)
	}
	p.wg.Done()
	c.buffered--
	p.n--
	if p.full && p.n <= c.share()/2 {
		p.full = false
		c.unhold(p.id)
	}
}
