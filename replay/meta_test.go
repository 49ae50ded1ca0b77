package replay

import (
	"slices"
	"strings"
	"testing"
)

func TestReplayMetaRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		pos  int64
		m    Meta
		want string
	}{
		{"nothing ahead", 100, Meta{From: 100, End: 300, Mode: ModeBypass}, "fanout-replay/1 from=100 end=300 dedupe=bypass"},
		{"runs and singles", 110, Meta{From: 100, End: 300, Mode: ModeRespect, Done: []int64{112, 113, 114, 117, 120, 121}},
			"fanout-replay/1 from=100 end=300 dedupe=respect done=+2-4,+7,+10-11"},
		{"at the end", 300, Meta{From: 100, End: 300, Mode: ModeRespect}, "fanout-replay/1 from=100 end=300 dedupe=respect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, cut := tc.m.Encode(tc.pos)
			if s != tc.want || cut != 0 {
				t.Fatalf("encode = %q (cut %d), want %q", s, cut, tc.want)
			}
			back, err := ParseMeta(s, tc.pos)
			if err != nil {
				t.Fatal(err)
			}
			if back.From != tc.m.From || back.End != tc.m.End || back.Mode != tc.m.Mode || !slices.Equal(back.Done, tc.m.Done) {
				t.Fatalf("parsed %+v, want %+v", back, tc.m)
			}
		})
	}
}

// Metadata past the budget is cut: what is cut is only sent again, never
// marked done by mistake.
func TestReplayMetaCut(t *testing.T) {
	m := Meta{From: 0, End: 1 << 20, Mode: ModeBypass}
	for o := int64(2); o < 4000; o += 2 { // every other offset: no runs
		m.Done = append(m.Done, o)
	}
	s, cut := m.Encode(1)
	if cut == 0 || len(s) > maxDoneBytes+100 {
		t.Fatalf("%d bytes, cut %d", len(s), cut)
	}
	back, err := ParseMeta(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Done)+cut != len(m.Done) || !slices.Equal(back.Done, m.Done[:len(back.Done)]) {
		t.Fatalf("kept %d + cut %d of %d, or not a prefix", len(back.Done), cut, len(m.Done))
	}
}

func TestReplayMetaRejects(t *testing.T) {
	for _, tc := range []struct{ meta, want string }{
		{"", "not a fanout replay"},
		{"something else", "not a fanout replay"},
		{"fanout-replay/1 from=1 end=0 dedupe=bypass", "incomplete"},
		{"fanout-replay/1 from=0 end=10", "incomplete"},
		{"fanout-replay/1 from=0 end=10 dedupe=maybe", "bad dedupe"},
		{"fanout-replay/1 from=0 end=4 dedupe=bypass", "outside the stored range"}, // committed at 5
		{"fanout-replay/1 from=0 end=10 dedupe=bypass done=+3,+2", "out of order"},
		{"fanout-replay/1 from=0 end=10 dedupe=bypass done=+0", "out of order"},
		{"fanout-replay/1 from=0 end=10 dedupe=bypass done=+2-9", "past the stored end"},
		{"fanout-replay/1 from=0 end=10 dedupe=bypass done=3", "not +N"},
	} {
		_, err := ParseMeta(tc.meta, 5)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.meta, err, tc.want)
		}
	}
}
