package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/fanout-dev/fanout/config"
	"github.com/fanout-dev/fanout/redact"
	"github.com/fanout-dev/fanout/schemas"
	"github.com/fanout-dev/fanout/tracing"
)

// BuildCodec returns the schema codec: a Schema Registry when configured, else
// a local directory, else the schemas shipped inside fanout.
func BuildCodec(cfg *config.Config) (*schemas.Codec, error) {
	if cfg.Schemas.RegistryURL != "" {
		reg, err := newRegistry(cfg)
		if err != nil {
			return nil, err
		}
		return schemas.NewCodec(reg).WithEventTypes(eventTypes(cfg)), nil
	}
	fsys := schemas.Builtin()
	if cfg.Schemas.Dir != "" {
		fsys = os.DirFS(cfg.Schemas.Dir)
	}
	reg, err := schemas.NewLocal(fsys, cfg.Schemas.Subjects)
	if err != nil {
		return nil, fmt.Errorf("schemas: %w", err)
	}
	return schemas.NewCodec(reg).WithEventTypes(eventTypes(cfg)), nil
}

// Runtime is what every command that handles events opens first, after the
// config: tracing (spans exported until Close) and the schema codec.
type Runtime struct {
	Codec *schemas.Codec
	close func()
}

// Close flushes the spans still buffered (waiting at most 5s) and stops
// tracing.
func (rt *Runtime) Close() { rt.close() }

// Open starts tracing and builds the codec; the one preamble of run,
// emit, replay and dlq redrive.
func Open(cfg *config.Config, log *slog.Logger) (*Runtime, error) {
	stop, err := startTracing(cfg, log)
	if err != nil {
		return nil, err
	}
	codec, err := BuildCodec(cfg)
	if err != nil {
		stop()
		return nil, err
	}
	return &Runtime{Codec: codec, close: stop}, nil
}

// startTracing installs the propagator and, when cfg (or the OTEL_EXPORTER_OTLP_*
// environment) names an OTLP endpoint, exports spans to it. The returned func
// flushes the spans still buffered, waiting at most 5s; defer it.
func startTracing(cfg *config.Config, log *slog.Logger) (func(), error) {
	shutdown, endpoint, err := tracing.Start(tracing.Config{
		Endpoint: cfg.Tracing.OTLPEndpoint, SampleRatio: cfg.Tracing.SampleRatio, ServiceName: cfg.Tracing.ServiceName,
		Headers: cfg.Tracing.Headers, Redact: Secrets.String,
	})
	if err != nil {
		return nil, usagef("%v", err)
	}
	if endpoint != "" {
		log.Info("exporting spans", "endpoint", endpoint)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("spans not exported", "err", err)
		}
	}, nil
}

// Secrets hides every secret of the loaded config in everything fanout
// writes to stdout and stderr (each line: logs, errors, listings), in the
// error texts and excerpts of parked records and spans (pipeline.Config.Redact)
// and on the admin endpoint. Process-wide because a process loads one config;
// cmd/fanout adds each config's secrets when it loads it (tests that call
// its run several times only add to it) and hands it to the admin endpoint.
var Secrets = redact.New()

// UsageError is a mistake in what the caller asked for (a flag, a setting
// only checked when used): fanout exits with code 2 for it.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// usagef is a UsageError with a formatted message.
func usagef(format string, args ...any) error { return UsageError{fmt.Sprintf(format, args...)} }
