package replay

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/naming"
)

// Request is what a replay is asked to do.
type Request struct {
	Spec    Spec   // the range; unused with Resume
	Mode    string // ModeRespect, ModeBypass, or "" (not given: respect, or the stored mode on resume)
	Resume  string // the ID of a replay to continue over its stored range
	Restart bool   // start over a replay whose ID has progress
	DryRun  bool   // a replay that ran before is noted (Plan.RanBefore), not refused

	// Note, if not nil, gets the notes on how the range was resolved
	// (clamped to retention or to the end), with the replay's ID.
	Note func(id, note string)
}

// Plan is a replay resolved: its range, ID and progress group.
type Plan struct {
	Range *Range
	ID    string
	Group string // naming.ReplayGroup
	Sink  string
	// RanBefore says, on a dry run, that the replay ran before (a real run
	// is refused instead).
	RanBefore string

	dryRun, resumed bool
}

// Resolve finds what the replay of sink s covers and its ID: the stored
// range of Request.Resume, or the range Request.Spec resolves to. A new
// replay whose ID already has progress is refused (unless Restart or DryRun):
// the same command twice must not send the range twice.
func Resolve(ctx context.Context, adm *kadm.Client, cfg *config.Config, s config.Sink, req Request) (*Plan, error) {
	pl := &Plan{Sink: s.Name, dryRun: req.DryRun, resumed: req.Resume != ""}
	if req.Resume != "" {
		id := req.Resume
		group := naming.ReplayGroup(cfg.Kafka.GroupPrefix, s.Name, id)
		r, found, err := loadProgress(ctx, adm, group, cfg.Kafka.Topic)
		switch {
		case err != nil && found:
			return nil, invalidf("--resume %s: %v", id, err)
		case err != nil:
			return nil, err
		case !found:
			return nil, invalidf("--resume %s: no replay %s of sink %s (group %s holds no progress in %s; progress expires offsets.retention.minutes after the last commit)",
				id, id, s.Name, group, cfg.Kafka.Topic)
		case req.Mode != "" && req.Mode != r.Mode:
			return nil, invalidf("--resume %s: that replay runs with --%s-dedupe; leave the dedupe flag out or give the same one", id, r.Mode)
		}
		pl.Range, pl.ID, pl.Group = r, id, group
		return pl, CheckDedupeMode(cfg, s, r.Mode)
	}

	mode := req.Mode
	if mode == "" {
		mode = ModeRespect
	}
	if err := CheckDedupeMode(cfg, s, mode); err != nil {
		return nil, err
	}
	r, notes, err := resolveRange(ctx, adm, cfg.Kafka.Topic, mode, req.Spec)
	if err != nil {
		return nil, err
	}
	id := r.id(s.Name)
	for _, n := range notes {
		if req.Note != nil {
			req.Note(id, n)
		}
	}
	group := naming.ReplayGroup(cfg.Kafka.GroupPrefix, s.Name, id)
	prev, found, err := loadProgress(ctx, adm, group, r.Topic)
	if err != nil && !found {
		return nil, err
	}
	if found && !req.Restart {
		state := "was interrupted"
		if err == nil && prev.doneBefore() == prev.size() {
			state = "has finished"
		}
		msg := fmt.Sprintf("replay %s (this sink, range and dedupe mode) ran before and %s: --resume %s continues it, --restart sends the range again", id, state, id)
		if !req.DryRun {
			return nil, invalidError{msg}
		}
		pl.RanBefore = msg
	}
	pl.Range, pl.ID, pl.Group = r, id, group
	return pl, nil
}

// CheckDedupeMode refuses ModeRespect where the dedupe store cannot know
// what the sink delivered: everything would be sent again without anyone
// having asked for it.
func CheckDedupeMode(cfg *config.Config, s config.Sink, mode string) error {
	if mode != ModeRespect {
		return nil
	}
	switch {
	case !*s.Dedupe.Enabled:
		return invalidf("sink %s has dedupe.enabled false, so --respect-dedupe cannot skip anything: pass --bypass-dedupe to send every event in range again", s.Name)
	case !cfg.Redis.Enabled():
		return invalidf("--respect-dedupe needs the Redis dedupe store (redis.addr): the in-memory one does not know what was delivered; pass --bypass-dedupe to send every event in range again")
	}
	return nil
}

// Summary is a replay's report: as planned (Plan.Summary), then filled by
// Replayer.Run.
type Summary struct {
	ID               string           `json:"id"`
	Sink             string           `json:"sink"`
	Topic            string           `json:"topic"`
	Group            string           `json:"group"`
	Dedupe           string           `json:"dedupe"`
	DryRun           bool             `json:"dry_run,omitempty"`
	Resumed          bool             `json:"resumed,omitempty"`
	Interrupted      bool             `json:"interrupted,omitempty"`
	InRange          int64            `json:"in_range"`              // offsets in the range
	DoneBefore       int64            `json:"done_before,omitempty"` // offsets earlier runs of this replay finished
	Sent             int64            `json:"sent"`                  // records handed to the sink's delivery path by this run
	Delivered        int64            `json:"delivered"`
	AlreadyDelivered int64            `json:"already_delivered"`
	FailedToDLQ      int64            `json:"failed_to_dlq"`
	FailedByClass    map[string]int64 `json:"failed_by_class,omitempty"`
	SkippedByType    int64            `json:"skipped_by_type"`
	Abandoned        int64            `json:"abandoned,omitempty"` // stopped before an outcome (interrupt past the drain timeout)
	Remaining        int64            `json:"remaining"`           // offsets of the range not done
	Partitions       []Part           `json:"partitions"`
}

// Summary is the plan's summary before the run: the range, what earlier
// runs did and what remains.
func (pl *Plan) Summary() Summary {
	r := pl.Range
	sum := Summary{ID: pl.ID, Sink: pl.Sink, Topic: r.Topic, Group: pl.Group, Dedupe: r.Mode, DryRun: pl.dryRun,
		Resumed: pl.resumed, InRange: r.size(), DoneBefore: r.doneBefore(), Partitions: r.Parts}
	sum.Remaining = sum.InRange - sum.DoneBefore
	return sum
}
