package replay

import "testing"

func TestReplayETA(t *testing.T) {
	for _, tc := range []struct {
		p    Progress
		rate float64
		want string
	}{
		{Progress{Total: 100, Done: 40}, 20, "3s"},
		{Progress{Total: 100, Done: 40}, 0, "?"},
		{Progress{Total: 100, Done: 100}, 0, "0s"},
		{Progress{Total: 100000, Done: 0}, 10, "2h46m40s"},
	} {
		if got := tc.p.ETA(tc.rate); got != tc.want {
			t.Errorf("eta(%+v, %v) = %s, want %s", tc.p, tc.rate, got, tc.want)
		}
	}
}
