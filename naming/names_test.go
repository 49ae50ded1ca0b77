package naming

import "testing"

func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Group("fanout.", "email"), "fanout.email"},
		{TierGroup("fanout.", "email", 2), "fanout.email.retry.2"},
		{RedriveGroup("fanout.", "email"), "fanout.email.redrive"},
		{ReplayGroup("fanout.", "email", "r1"), "fanout.email.replay.r1"},
		{TierTopic("events", "email", 1), "events.email.retry.1"},
		{DLQTopic("events", "email"), "events.email.dlq"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
