package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	kafka       string
	quick       bool
	scenarios   []string
	jsonOut     string
	mdOut       string
	fanoutBin   string
	keep        bool
	runTimeout  time.Duration
	backlogN    int
	repeat      int
	compression string
	admin       string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var names string
	fs.StringVar(&o.kafka, "kafka", "kfake", "kfake (in-process, default) or real (Apache Kafka 4.x as a child process; jars from e2e/install.sh)")
	fs.BoolVar(&o.quick, "quick", false, "smaller sizes: ~2 minutes instead of ~10")
	fs.StringVar(&names, "scenario", "", "comma-separated scenarios to run (default all): "+scenarioNames())
	fs.StringVar(&o.jsonOut, "json", "", "write the report as JSON to `FILE`")
	fs.StringVar(&o.mdOut, "md", "", "write the markdown tables to `FILE` (- for stdout)")
	fs.StringVar(&o.fanoutBin, "fanout", "", "use this fanout `BINARY` instead of building ./cmd/fanout")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir (configs, fanout logs, redis log)")
	fs.DurationVar(&o.runTimeout, "run-timeout", 5*time.Minute, "give up on a fanout run that has not delivered every event by then")
	fs.IntVar(&o.backlogN, "backlog", 0, "events in the backlog scenario (default 1,000,000; -quick 200,000)")
	fs.IntVar(&o.repeat, "repeat", 0, "runs of each side of the key-order and two-sinks comparisons, best taken (default 2; -quick 1)")
	fs.StringVar(&o.admin, "admin", "", "pass --admin `ADDR` to each fanout run (one at a time), e.g. 127.0.0.1:9100 for go tool pprof http://ADDR/debug/pprof/profile")
	fs.StringVar(&o.compression, "compression", "snappy", "the producer's batch compression: none, snappy (franz-go's default), lz4, zstd, gzip")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if names != "" {
		o.scenarios = strings.Split(names, ",")
		for _, n := range o.scenarios {
			if findScenario(n) == nil {
				fmt.Fprintf(stderr, "bench: unknown scenario %q (have %s)\n", n, scenarioNames())
				return 2
			}
		}
	}
	sz := defaultSizes
	if o.quick {
		sz = quickSizes
	}
	if o.backlogN > 0 {
		sz.backlogN = o.backlogN
	}
	if o.repeat > 0 {
		sz.repeat = o.repeat
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench(ctx, o, sz, stderr)
	if rep != nil {
		rep.writeText(stdout)
		if werr := writeOutputs(rep, o, stdout); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// bench runs the chosen scenarios and returns the report, also the partial
// one when a scenario fails.
func bench(ctx context.Context, o options, sz sizes, log io.Writer) (*report, error) {
	cpu0 := takeCPU()
	e, err := newEnv(ctx, o, log)
	if err != nil {
		return nil, err
	}
	defer e.close()
	rep := newReport(e)
	defer func() { rep.finish(e, cpu0, takeCPU()) }() // before e.close: redis-server is still a live child
	for _, s := range scenarios {
		if len(o.scenarios) > 0 && !slices.Contains(o.scenarios, s.name) {
			continue
		}
		fmt.Fprintf(log, "== %s: %s\n", s.name, s.about)
		st := time.Now()
		if err := s.run(ctx, e, sz, rep); err != nil {
			return rep, fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(log, "   %s took %s\n", s.name, time.Since(st).Round(time.Second))
	}
	return rep, nil
}

func writeOutputs(rep *report, o options, stdout io.Writer) error {
	if o.jsonOut != "" {
		if err := rep.writeJSON(o.jsonOut); err != nil {
			return err
		}
	}
	switch o.mdOut {
	case "":
	case "-":
		fmt.Fprintln(stdout)
		rep.writeMarkdown(stdout)
	default:
		f, err := os.Create(o.mdOut)
		if err != nil {
			return err
		}
		rep.writeMarkdown(f)
		return f.Close()
	}
	return nil
}

func findScenario(name string) *scenario {
	for i := range scenarios {
		if scenarios[i].name == name {
			return &scenarios[i]
		}
	}
	return nil
}

func scenarioNames() string {
	var n []string
	for _, s := range scenarios {
		n = append(n, s.name)
	}
	return strings.Join(n, ", ")
}
