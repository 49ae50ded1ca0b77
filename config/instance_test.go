package config

import (
	"strings"
	"testing"
)

func TestInstanceID(t *testing.T) {
	const base = "kafka: {brokers: [a:1], topic: t, instance_id: %s}\nsinks: [{name: a, url: \"https://x/\"}]\n"
	tests := []struct {
		id, env string
		want    string // "" = valid; else in the error
	}{
		{`"${HOSTNAME}"`, "fanout-7d9f-x2", ""},
		{`""`, "", ""},
		{`pod.a_1-B`, "", ""},
		{`"a b"`, "", `kafka.instance_id: "a b" is not a valid group instance id`},
		{`"x/y"`, "", `kafka.instance_id: "x/y" is not a valid group instance id`},
		{`".."`, "", `kafka.instance_id: ".." is not a valid group instance id`},
		{`"` + strings.Repeat("x", 250) + `"`, "", `is not a valid group instance id`},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cfg, err := Parse("f.yaml", []byte(strings.Replace(base, "%s", tt.id, 1)), env(map[string]string{"HOSTNAME": tt.env}))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Parse: %v", err)
			case tt.want == "" && tt.env != "" && cfg.Kafka.InstanceID != tt.env:
				t.Fatalf("instance_id = %q, want %q", cfg.Kafka.InstanceID, tt.env)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
