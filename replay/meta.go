package replay

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fanout-dev/fanout/dlq"
)

// Commit metadata. Each partition of a replay's group carries, next to its
// committed offset (pos), the range and the done records past pos:
//
//	fanout-replay/1 from=100 end=300 dedupe=bypass done=+2-9,+12
//
// done lists offsets relative to pos, as single offsets or inclusive runs.
// Kafka keeps at most offset.metadata.max.bytes (default 4096) per partition,
// so done is cut at maxDoneBytes; the offsets cut are sent again on resume.
const (
	replayMetaVersion = "fanout-replay/1"
	maxDoneBytes      = 3000
)

// Meta is what a replay stores per partition besides the offset.
type Meta struct {
	From, End int64
	Mode      string  // ModeRespect or ModeBypass
	Done      []int64 // absolute offsets past pos, ascending
}

// Encode renders m for a commit at pos. cut reports how many done offsets did
// not fit.
func (m Meta) Encode(pos int64) (s string, cut int) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s from=%d end=%d dedupe=%s", replayMetaVersion, m.From, m.End, m.Mode)
	if len(m.Done) == 0 {
		return b.String(), 0
	}
	b.WriteString(" done=")
	start := b.Len()
	for i := 0; i < len(m.Done); {
		j := i
		for j+1 < len(m.Done) && m.Done[j+1] == m.Done[j]+1 {
			j++
		}
		tok := "+" + strconv.FormatInt(m.Done[i]-pos, 10)
		if j > i {
			tok += "-" + strconv.FormatInt(m.Done[j]-pos, 10)
		}
		if b.Len()-start+len(tok)+1 > maxDoneBytes {
			return b.String(), len(m.Done) - i
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(tok)
		i = j + 1
	}
	return b.String(), 0
}

// ParseMeta reads metadata committed at pos.
func ParseMeta(s string, pos int64) (Meta, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 || fields[0] != replayMetaVersion {
		return Meta{}, fmt.Errorf("not a fanout replay's progress (metadata %q)", dlq.Shorten(s, 40))
	}
	m := Meta{From: -1, End: -1}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "from":
			m.From, err = strconv.ParseInt(v, 10, 64)
		case "end":
			m.End, err = strconv.ParseInt(v, 10, 64)
		case "dedupe":
			if v != ModeRespect && v != ModeBypass {
				err = fmt.Errorf("unknown mode")
			}
			m.Mode = v
		case "done":
			m.Done, err = parseDone(v, pos)
		}
		if err != nil {
			return Meta{}, fmt.Errorf("bad %s in replay metadata %q: %v", k, dlq.Shorten(s, 60), err)
		}
	}
	switch {
	case m.From < 0 || m.End < m.From || m.Mode == "":
		return Meta{}, fmt.Errorf("incomplete replay metadata %q", dlq.Shorten(s, 60))
	case pos < m.From || pos > m.End:
		return Meta{}, fmt.Errorf("committed offset %d outside the stored range [%d, %d)", pos, m.From, m.End)
	}
	for _, o := range m.Done {
		if o >= m.End {
			return Meta{}, fmt.Errorf("done offset %d past the stored end %d", o, m.End)
		}
	}
	return m, nil
}

func parseDone(v string, pos int64) ([]int64, error) {
	var out []int64
	for _, tok := range strings.Split(v, ",") {
		a, b, isRun := strings.Cut(strings.TrimPrefix(tok, "+"), "-")
		lo, err := strconv.ParseInt(a, 10, 64)
		if err != nil || !strings.HasPrefix(tok, "+") {
			return nil, fmt.Errorf("%q is not +N or +N-M", tok)
		}
		hi := lo
		if isRun {
			if hi, err = strconv.ParseInt(b, 10, 64); err != nil || hi < lo {
				return nil, fmt.Errorf("%q is not +N-M with N <= M", tok)
			}
		}
		if lo < 1 || hi-lo > 1<<20 || (len(out) > 0 && pos+lo <= out[len(out)-1]) {
			return nil, fmt.Errorf("%q is out of order", tok)
		}
		for o := lo; o <= hi; o++ {
			out = append(out, pos+o)
		}
	}
	return out, nil
}
