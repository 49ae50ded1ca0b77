package app

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/consumer"
)

// max_event_bytes is lowered to what every park topic of its sink holds with
// fanout's headers, and logged; a park topic too small for any letter
// refuses the start, naming the sink, the topic and its limit.
func TestFitEventBytes(t *testing.T) {
	over := consumer.ParkOverhead("events", "a")
	for _, tc := range []struct {
		name    string
		max     int
		limits  map[string]int32
		want    int
		log     string
		wantErr string
	}{
		{"default on a default broker", 1 << 20, map[string]int32{"events": 1048588, "a.dlq": 1048588, "a.r1": 1048588},
			1048588 - over, `level=INFO msg="max_event_bytes lowered`, ""},
		{"explicit, smallest park topic wins", 2_000_000, map[string]int32{"events": 4 << 20, "a.dlq": 3 << 20, "a.r1": 1_500_000},
			1_500_000 - over, `level=WARN msg="max_event_bytes lowered to what the park topic can hold with fanout's headers" sink=a setting=max_event_bytes configured=2000000 topic=a.r1 max_message_bytes=1500000`, ""},
		{"fits", 500_000, map[string]int32{"events": 1048588, "a.dlq": 1048588, "a.r1": 1048588}, 500_000, "", ""},
		{"limits unknown", 1 << 20, map[string]int32{}, 1 << 20, "", ""},
		{"park topic too small", 1 << 20, map[string]int32{"a.dlq": 2000}, 0, "",
			"sink a: topic a.dlq has max.message.bytes 2000, too small for a parked record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{Kafka: config.Kafka{Topic: "events"}, Sinks: []config.Sink{
				{Name: "a", DLQTopic: "a.dlq", MaxEventBytes: tc.max, Retry: config.Retry{TierTopics: []string{"a.r1"}}},
				{Name: "b", DLQTopic: "a.dlq", MaxEventBytes: tc.max}, // not selected: untouched
			}}
			var logs bytes.Buffer
			err := FitEventBytes(cfg, []string{"a"}, tc.limits, slog.New(slog.NewTextHandler(&logs, nil)))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Sinks[0].MaxEventBytes; got != tc.want {
				t.Errorf("max_event_bytes %d, want %d", got, tc.want)
			}
			if cfg.Sinks[1].MaxEventBytes != tc.max {
				t.Errorf("an unselected sink was changed")
			}
			if tc.log != "" && !strings.Contains(logs.String(), tc.log) || tc.log == "" && strings.Contains(logs.String(), "lowered") {
				t.Errorf("log %q, want %q", logs.String(), tc.log)
			}
		})
	}
}
