// Command fanout delivers Avro events from a Kafka topic to many HTTP APIs,
// each through its own sink: its own consumer group, pace, retries and dead
// letters. See the README for the commands and the configuration reference.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/config"
)

// command is one subcommand.
type command struct {
	name, args, short string
	long              string
	flags             func(fs *flag.FlagSet) func(ctx context.Context, env *env, args []string) error
}

// env is what commands share: output streams and the logger.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

// usageError is a mistake in the command line or config: exit code 2 (as
// is an app.UsageError: what app checks for a command, --sinks or the
// tracing settings).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// configFlag declares -c FILE; the func it returns loads that file
// (loadConfig): the preamble of every command that reads a config.
func configFlag(fs *flag.FlagSet) func() (*config.Config, error) {
	file := fs.String("c", "", "config `FILE` (required)")
	return func() (*config.Config, error) { return loadConfig(*file) }
}

// adminClient opens a Kafka client on cfg's brokers for admin requests;
// Close it when done.
func adminClient(cfg *config.Config) (*kadm.Client, error) {
	cl, err := kgo.NewClient(app.KafkaOpts(cfg)...)
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// noArgs is the usage error of a command given arguments it does not take.
func noArgs(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	return nil
}

// commands is the command table, in the order help lists them: each
// command's flags, printing and body are in its cmd_<name>.go (redrive in
// dlq_redrive.go).
var commands = []*command{
	runCommand(),
	validateCommand(),
	topicsEnsureCommand(),
	emitCommand(),
	statusCommand(),
	dlqListCommand(),
	dlqShowCommand(),
	dlqRedriveCommand(),
	replayCommand(),
	demoCommand(),
	demoAPICommand(),
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	level := slog.LevelInfo
	if os.Getenv("FANOUT_LOG_LEVEL") == "debug" {
		level = slog.LevelDebug
	}
	stdout, stderr = secrets.Writer(stdout), secrets.Writer(stderr)
	e := &env{stdout: stdout, stderr: stderr, log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		topUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	name := args[0]
	// Two-word commands: "topics ensure".
	for _, c := range commands {
		if words := strings.Fields(c.name); len(words) == 2 && words[0] == name && len(args) > 1 && args[1] == words[1] {
			return exec(ctx, e, c, args[2:])
		}
	}
	for _, c := range commands {
		if c.name == name {
			return exec(ctx, e, c, args[1:])
		}
	}
	var subs []string
	for _, c := range commands {
		if words := strings.Fields(c.name); len(words) == 2 && words[0] == name {
			subs = append(subs, c.name)
		}
	}
	if len(subs) > 0 {
		fmt.Fprintf(stderr, "fanout %s: want a subcommand: %s\n", name, strings.Join(subs, ", "))
	} else {
		fmt.Fprintf(stderr, "fanout: unknown command %q (see fanout --help)\n", name)
	}
	return 2
}

func exec(ctx context.Context, e *env, c *command, args []string) int {
	fs := flag.NewFlagSet("fanout "+c.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	body := c.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fanout %s %s\n\n%s\n", c.name, c.args, strings.TrimSpace(c.long))
		var has bool
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprintln(fs.Output(), "\nFlags:")
			fs.PrintDefaults()
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return 0
		}
		return 2
	}
	err := body(ctx, e, fs.Args())
	var ue usageError
	var aue app.UsageError
	var ce *config.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue), errors.As(err, &aue):
		fmt.Fprintf(e.stderr, "fanout %s: %v\n", c.name, err)
		return 2
	case errors.As(err, &ce):
		fmt.Fprintln(e.stderr, err)
		return 2
	default:
		fmt.Fprintf(e.stderr, "fanout %s: %v\n", c.name, app.ExplainKafka(lastConfig.Load(), err))
		return 1
	}
}

func topUsage(w io.Writer) {
	fmt.Fprintln(w, "fanout delivers Avro events from a Kafka topic to many HTTP APIs, one sink per API.")
	fmt.Fprintln(w, "\nUsage: fanout <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-15s %s\n", c.name, c.short)
	}
	fmt.Fprintln(w, "\nRun 'fanout <command> --help' for a command's flags. Exit codes: 0 ok, 1 failure, 2 usage or config error.")
}

// loadConfig reads -c; a missing flag is a usage error.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, usagef("-c FILE is required")
	}
	cfg, err := config.Load(path)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, usagef("%v", err)
	}
	secrets.Add(cfg.Secrets()...)
	lastConfig.Store(cfg) // for app.ExplainKafka
	return cfg, nil
}

// secrets is app.Secrets, the process's one Redactor: it hides every secret
// of the loaded config in everything fanout writes to stdout and stderr
// (each line: logs, errors, listings), in the error texts and excerpts of
// parked records and spans (pipeline.Config.Redact) and on the admin
// endpoint (passed to admin.Server). Package-wide because a process loads
// one config; tests that call run several times only add to it.
var secrets = app.Secrets

// lastConfig is the config a command loaded, so that exec can have
// app.ExplainKafka name the brokers and the mechanism of an error no caller
// explained. Package-wide for the reason secrets is: a command's body loads
// its config (loadConfig) below exec, which prints its final error.
var lastConfig atomic.Pointer[config.Config]
