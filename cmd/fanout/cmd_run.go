package main

import (
	"cmp"
	"context"
	"flag"
	"time"

	"github.com/fanout-dev/fanout/admin"
	"github.com/fanout-dev/fanout/app"
	"github.com/fanout-dev/fanout/config"
)

// runCommand is the "fanout run" command.
func runCommand() *command {
	return &command{
		name: "run", args: "-c FILE [--sinks a,b]", short: "run the sinks of a config file",
		long: `Runs every sink of the config (or only those named by --sinks), each in its own
consumer group. Several instances started with the same file share the partitions.
SIGTERM or SIGINT stops fetching, drains in-flight deliveries within
run.drain_timeout, commits what is done and leaves the groups.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			file := fs.String("c", "", "config `FILE` (required)")
			sinks := fs.String("sinks", "", "comma-separated sink names to run (default all)")
			statsEvery := fs.Duration("stats-interval", 30*time.Second, "how often to log each sink's counts (0: never)")
			adminAddr := fs.String("admin", "", "serve /healthz, /readyz, /metrics, /api/sinks (and /debug/pprof with run.admin_pprof) on `ADDR` (default run.admin_addr; none if both are empty; not loopback only with run.admin_token)")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				cfg, err := loadConfig(*file)
				if err != nil {
					return err
				}
				// An unsafe admin address fails before anything connects.
				if err := config.AdminExposed(cmp.Or(*adminAddr, cfg.Run.AdminAddr), cfg.Run.AdminToken); err != nil {
					return usagef("admin listener: %v", err)
				}
				names, err := app.SelectSinks(cfg, *sinks)
				if err != nil {
					return err
				}
				svc, err := app.Prepare(ctx, cfg, *file, names, e.log)
				if err != nil {
					return err
				}
				defer svc.Close()
				runners := svc.Runners
				adm := &admin.Server{Runners: runners, Started: time.Now(), Token: cfg.Run.AdminToken, Pprof: cfg.Run.AdminPprof, Redact: secrets, RuntimeMetrics: true}
				if addr := cmp.Or(*adminAddr, cfg.Run.AdminAddr); addr != "" {
					stop, err := admin.Serve(addr, adm, e.log)
					if err != nil {
						return err
					}
					defer stop()
				}
				defer context.AfterFunc(ctx, func() { adm.Draining.Store(true) })()
				return app.RunAll(ctx, runners, *statsEvery, e.log)
			}
		},
	}
}
