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
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanout-dev/fanout/tracing"
)

// Ordering says which records of a sink may be in flight together.
type Ordering int

const (
	// ByPartition: one record in flight per partition, in offset order.
	ByPartition Ordering = iota
	// ByKey: one record in flight per record key (within a partition), many
	// keys at once. Records without a key are unordered.
	ByKey
	// Unordered: up to MaxInFlight records at once, in any order.
	Unordered
)

func (o Ordering) String() string {
	return [...]string{"partition", "key", "unordered"}[o]
}

// Config is one sink's consumer. Every field's comment states its default.
type Config struct {
	Sink     string   // required: the sink's name, written on parked records
	Topic    string   // required: the topic to consume
	Group    string   // required: the sink's consumer group, e.g. fanout.<sink>
	DLQTopic string   // required: where dead letters are parked
	Ordering Ordering // default ByPartition
	// MaxInFlight bounds the records being handled at once; default 64.
	MaxInFlight int
	// MaxBuffered bounds the records fetched and not yet done (in flight plus
	// waiting behind their ordering lane); default max(4×MaxInFlight, 256).
	// Each partition may hold its share of it (see share) and is paused
	// beyond, so memory stays bounded under any backlog: at most MaxBuffered
	// records (or MaxInFlight per partition, if larger) plus one fetch per
	// partition (FetchMaxPartitionBytes) and the fetch franz-go buffers.
	MaxBuffered int
	// FetchMaxBytes and FetchMaxPartitionBytes bound one fetch (compressed
	// bytes, as Kafka counts them); defaults 4 MiB and 1 MiB.
	FetchMaxBytes, FetchMaxPartitionBytes int32
	// FetchMaxWait is how long the broker may hold a fetch for data; default
	// 200ms. A partition resumed after a pause joins only the next fetch, so
	// this is also how long a resumed partition may wait for it when the
	// other partitions have nothing new.
	FetchMaxWait time.Duration
	// Start is where a partition starts when the group has no committed
	// offset for it (a new group); default the earliest offset. A committed
	// offset that is out of range (retention or DeleteRecords took it)
	// resumes at the earliest retained offset whatever Start is, with a
	// warning and OffsetResets counted.
	Start kgo.Offset
	// CommitInterval is how often the done watermark is committed; default 1s.
	CommitInterval time.Duration
	// RevokeTimeout is how long revoked partitions' in-flight records may run
	// before they are cancelled and left uncommitted; default 20s (below the
	// group's 60s rebalance timeout).
	RevokeTimeout time.Duration
	// DrainTimeout is how long Run waits for in-flight records once its context
	// ends; default 30s.
	DrainTimeout time.Duration
	// Retry is the tier retryable failures are parked in once their in-line
	// retries are spent: the first tier for the main topic, the next one for
	// a tier; nil parks them on the DLQ.
	Retry *Tier
	// Tier is this consumer's own tier number, 0 for the main topic. A tier
	// consumer delivers each record no earlier than its not-before time,
	// waiting with the partition paused; it always orders by partition, since
	// a tier partition holds records in not-before order.
	Tier int

	// Range, if set, makes the consumer read these partitions of Topic, each
	// from its Span's Pos to its End, with no group membership (franz-go's
	// direct consuming: Group, Start and RevokeTimeout do not apply). Run
	// returns by itself once every partition's watermark reaches its End,
	// with the same drain, ordering lanes and parking as a group consumer.
	// Progress goes to Commit, never to a group of the consumer's own. A
	// record left undone (Abandon) holds its partition short of its End:
	// Run then returns when ctx ends, with that record uncommitted.
	Range map[int32]Span
	// Commit receives a range's progress, every CommitInterval when it moved
	// and once when Run ends: every partition of Range with its watermark
	// and the records done past it. Required with Range.
	Commit func(ctx context.Context, progress map[int32]Progress) error
	// Repark, if set, rewrites each parked copy before it is produced; fanout
	// dlq redrive counts a letter parked again with it (one more redrive).
	Repark func(parked *kgo.Record) *kgo.Record
}

func (c *Config) defaults() error {
	switch {
	case c.Sink == "":
		return errors.New("consumer: Sink is required")
	case c.Topic == "":
		return errors.New("consumer: Topic is required")
	case c.Group == "" && c.Range == nil:
		return errors.New("consumer: Group is required")
	case c.Range != nil && c.Commit == nil:
		return errors.New("consumer: Commit is required with Range")
	case c.DLQTopic == "":
		return errors.New("consumer: DLQTopic is required")
	case c.Ordering < ByPartition || c.Ordering > Unordered:
		return fmt.Errorf("consumer: Ordering %d is unknown", c.Ordering)
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 64
	}
	if c.Tier > 0 {
		c.Ordering = ByPartition
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = max(4*c.MaxInFlight, 256)
	}
	if c.MaxBuffered < c.MaxInFlight {
		c.MaxBuffered = c.MaxInFlight
	}
	if c.FetchMaxBytes <= 0 {
		c.FetchMaxBytes = 4 << 20
	}
	if c.FetchMaxPartitionBytes <= 0 {
		c.FetchMaxPartitionBytes = 1 << 20
	}
	if c.FetchMaxWait <= 0 {
		c.FetchMaxWait = 200 * time.Millisecond
	}
	if c.Start == (kgo.Offset{}) {
		c.Start = kgo.NewOffset().AtStart()
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = time.Second
	}
	if c.RevokeTimeout <= 0 {
		c.RevokeTimeout = 20 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	return nil
}

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

// groupOpts are a group consumer's own options: it joins the group and
// follows its assignments.
func (c *Consumer) groupOpts(work context.Context) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(c.cfg.Group),
		kgo.ConsumeTopics(c.cfg.Topic),
		// Start applies only where the group has no commit; a commit out
		// of range resumes at the log start (see checkCommitted), so
		// retention never makes fanout skip a retained record.
		kgo.ConsumeStartOffset(c.cfg.Start),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Records of aborted transactions are never delivered. The
		// control markers are kept so the watermark passes them (see
		// accept), and with them the aborted records' offsets.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.DisableAutoCommit(),
		// No callback runs between a poll returning and AllowRebalance,
		// so poll binds every record to the partition state that was
		// current when it was fetched (see poll).
		kgo.BlockRebalanceOnPoll(),
		kgo.OnOffsetsFetched(c.checkCommitted),
		kgo.WithLogger(resetWatch{c}),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			c.assign(work, m[c.cfg.Topic])
		}),
		kgo.OnPartitionsRevoked(func(rctx context.Context, cl *kgo.Client, m map[string][]int32) {
			c.revoke(rctx, cl, m[c.cfg.Topic], true)
		}),
		kgo.OnPartitionsLost(func(rctx context.Context, cl *kgo.Client, m map[string][]int32) {
			c.revoke(rctx, cl, m[c.cfg.Topic], false)
		}),
	}
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

func (c *Consumer) assign(work context.Context, ps []int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ps {
		if old := c.parts[id]; old != nil && !old.revoked.Load() {
			// Still ours and franz-go keeps fetching from where it was:
			// keep the watermark continuous.
			continue
		}
		ctx, cancel := context.WithCancel(work)
		c.parts[id] = &partition{id: id, ctx: ctx, cancel: cancel, tr: newTracker(), lanes: map[string]*lane{}, waiting: map[*waiter]struct{}{}}
	}
	if len(ps) > 0 {
		c.log.Info("partitions assigned", "partitions", ps)
	}
}

// revoke stops the partitions' queued work, waits up to RevokeTimeout for their
// in-flight records, cancels the rest, commits what is done (unless the
// partitions were lost: another member may own them already) and forgets them.
func (c *Consumer) revoke(ctx context.Context, cl *kgo.Client, ps []int32, commit bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	var gone []*partition
	for _, id := range ps {
		if p := c.parts[id]; p != nil {
			// Lost partitions too let their in-flight deliveries finish
			// (bounded by RevokeTimeout): a finished delivery marks its event
			// done in the dedupe store, so the new owner's redelivery is
			// suppressed; cancelling it mid-request would leave the API
			// holding an event nobody recorded, and it would come again.
			c.stop(p)
			gone = append(gone, p)
		}
	}
	c.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	deadline := time.Now().Add(c.cfg.RevokeTimeout)
	for _, p := range gone {
		if !waitTimeout(&p.wg, time.Until(deadline)) {
			c.log.Warn("revoke deadline passed; cancelling in-flight records (left uncommitted)", "partition", p.id)
			p.cancel()
			p.wg.Wait()
		}
	}
	if commit {
		if err := c.commit(ctx, cl, gone); err != nil {
			c.log.Warn("commit on revoke failed; the next owner may redeliver (dedupe suppresses it)", "err", err)
		}
	}
	c.mu.Lock()
	for _, p := range gone {
		p.cancel()
		if c.parts[p.id] == p {
			delete(c.parts, p.id)
		}
	}
	c.mu.Unlock()
	c.log.Info("partitions revoked", "partitions", ps, "committed", commit)
}

func (c *Consumer) commitLoop(ctx context.Context, cl *kgo.Client, stop <-chan struct{}) {
	t := time.NewTicker(c.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := c.commit(ctx, cl, nil); err != nil && ctx.Err() == nil {
				c.log.Warn("commit failed; retrying next interval", "err", err)
			}
		}
	}
}

// commit commits the moved watermarks of ps (all partitions if nil).
func (c *Consumer) commit(ctx context.Context, cl *kgo.Client, ps []*partition) error {
	if c.cfg.Range != nil {
		return c.commitRange(ctx)
	}
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.mu.Lock()
	if ps == nil {
		for _, p := range c.parts {
			ps = append(ps, p)
		}
	}
	offsets := map[int32]kgo.EpochOffset{}
	for _, p := range ps {
		if eo, ok := p.tr.take(); ok {
			offsets[p.id] = eo
		}
	}
	c.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	var cerr error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{c.cfg.Topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, pr := range t.Partitions {
					if pr.ErrorCode != 0 && cerr == nil {
						cerr = fmt.Errorf("partition %d: error code %d", pr.Partition, pr.ErrorCode)
					}
				}
			}
		})
	if cerr != nil {
		// Let the next commit try these offsets again.
		c.mu.Lock()
		for _, p := range ps {
			if _, ok := offsets[p.id]; ok {
				p.tr.dirty = true
			}
		}
		c.mu.Unlock()
		return cerr
	}
	c.commits.Add(1)
	return nil
}

// waitAll waits for every assigned partition's accepted records, up to d.
func (c *Consumer) waitAll(d time.Duration) bool {
	c.mu.Lock()
	var ps []*partition
	for _, p := range c.parts {
		ps = append(ps, p)
	}
	c.mu.Unlock()
	deadline := time.Now().Add(d)
	for _, p := range ps {
		if !waitTimeout(&p.wg, time.Until(deadline)) {
			return false
		}
	}
	return true
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
