// Package pipeline wires schemas, dedupe, sink and consumer into runnable sinks.
package pipeline

// Temporary: keeps module requirements in go.mod while the packages that use
// them are being written in parallel. Removed once they import these for real.
import (
	_ "github.com/hamba/avro/v2"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/twmb/franz-go/pkg/kadm"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/sync/errgroup"
)
