package replay

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var specNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func TestReplayFlagParsing(t *testing.T) {
	for _, tc := range []struct {
		name                                       string
		fromOffset, fromTime, toOffset, toTime, ps string
		want                                       string // "" = ok
	}{
		{name: "offsets", fromOffset: "0:100,2:5", toOffset: "0:300"},
		{name: "times", fromTime: "2h", toTime: "2026-11-27T11:00:00Z"},
		{name: "no start", want: "give where the replay starts"},
		{name: "two starts", fromOffset: "0:1", fromTime: "1h", want: "not both"},
		{name: "two ends", fromOffset: "0:1", toOffset: "0:5", toTime: "1h", want: "not both"},
		{name: "bad pair", fromOffset: "0-100", want: `"0-100" is not partition:offset`},
		{name: "negative", fromOffset: "0:-1", want: "not partition:offset"},
		{name: "twice", fromOffset: "0:1,0:2", want: "partition 0 given twice"},
		{name: "end before start", fromOffset: "0:300", toOffset: "0:100", want: "--to-offset 100 is before --from-offset 300"},
		{name: "bad time", fromTime: "yesterday", want: "--from-time"},
		{name: "times reversed", fromTime: "1h", toTime: "2h", want: "is not before --to-time"},
		{name: "partition without start", fromOffset: "0:1", ps: "0,1", want: "--partition 1 has no start"},
		{name: "start outside partitions", fromOffset: "0:1,1:1", ps: "0", want: "--partition leaves out"},
		{name: "bad partition", fromTime: "1h", ps: "x", want: "not a partition number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSpec(tc.fromOffset, tc.fromTime, tc.toOffset, tc.toTime, tc.ps, specNow)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			case err != nil:
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("%T is not a usage error", err)
				}
			}
		})
	}
}
