package main

import (
	"context"
	"flag"
	"fmt"
	"net"

	"github.com/fanout-dev/fanout/demo"
	"github.com/fanout-dev/fanout/sinktest"
)

// demoAPICommand is the "fanout demo-api" command.
func demoAPICommand() *command {
	return &command{
		name: "demo-api", args: "--name profile|email|analytics [--addr :8081]", short: "serve one of the worked example's APIs (for the Compose stack)",
		long: `Serves one of the three downstream APIs of the worked example over HTTP, as fanout
demo runs them in-process: profile (422 for an address without @), email (503 one
time in five), analytics (slow). Used by compose/docker-compose.yml; handy to point
a real fanout run at.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			name := fs.String("name", "", "which API: profile, email or analytics (required)")
			addr := fs.String("addr", "127.0.0.1:8081", "listen address")
			return func(ctx context.Context, e *env, args []string) error {
				behave, ok := demo.Behaviours()[*name]
				if !ok || len(args) > 0 {
					return usagef("--name must be profile, email or analytics")
				}
				ln, err := net.Listen("tcp", *addr)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "demo API %s listening on http://%s/\n", *name, ln.Addr())
				return sinktest.Serve(ctx, ln, demo.NewHandler(behave, false))
			}
		},
	}
}
