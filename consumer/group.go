package consumer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Group membership: the client options of group mode, partitions assigned
// and revoked, and offset commits.

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
