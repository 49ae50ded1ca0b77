package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one measured run: a sink of a fanout process, or a ceiling.
type result struct {
	Scenario   string  `json:"scenario"`
	Kind       string  `json:"kind"` // fanout | ceiling
	Run        string  `json:"run"`
	Sink       string  `json:"sink,omitempty"`
	Partitions int     `json:"partitions,omitempty"`
	Ordering   string  `json:"ordering,omitempty"`
	InFlight   int     `json:"in_flight,omitempty"`
	LatencyMs  float64 `json:"target_latency_ms"`
	Events     int     `json:"events"`    // in the topic (or produced during the run)
	Delivered  int     `json:"delivered"` // distinct events the target received
	Duplicates int     `json:"duplicates"`
	// EventsPerSec is (delivered − 1) / (last receipt − first receipt) for
	// fanout and the sequential baseline, so the group join is not counted
	// (delivered / (end of run − first receipt) for a sink the run did not
	// wait for); requests / elapsed for raw HTTP; records / time from the
	// first poll for raw consume.
	EventsPerSec float64 `json:"events_per_sec"`
	WallSec      float64 `json:"wall_sec"` // fanout: start of the process → last receipt
	// Latency: record timestamp → target receipt (fanout, sequential);
	// request → response at the client (raw HTTP). Drained backlogs include
	// the time events waited in the backlog.
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	P999ms      float64 `json:"p999_ms"`
	CPUSec      float64 `json:"cpu_sec,omitempty"`        // fanout process: user + system, whole life
	CPUSecPer1k float64 `json:"cpu_sec_per_1k,omitempty"` // CPUSec per 1,000 events delivered by the process (all sinks)
	PeakRSSMiB  float64 `json:"peak_rss_mib,omitempty"`   // fanout process: ru_maxrss
	OrderErrors int     `json:"order_errors,omitempty"`   // events received before an earlier event of their key
	Note        string  `json:"note,omitempty"`
	// A batched sink (batch.max_events > 0): the HTTP requests its target got,
	// all CloudEvents batches, and their mean number of events.
	BatchMaxEvents   int     `json:"batch_max_events,omitempty"`
	Requests         int     `json:"requests,omitempty"`
	EventsPerRequest float64 `json:"events_per_request,omitempty"`
}

// check is one target of issue 5, compared in the same run.
type check struct {
	Scenario  string  `json:"scenario"`
	Target    string  `json:"target"`
	Measured  float64 `json:"measured"`
	Unit      string  `json:"unit"`
	Reference float64 `json:"reference"`
	RefName   string  `json:"reference_name"`
	Ratio     float64 `json:"ratio"` // Measured / Reference
	Op        string  `json:"op"`    // ">=", "<=" (Ratio against Bar), or "info"
	Bar       float64 `json:"bar"`
	Pass      bool    `json:"pass"`
}

func newCheck(scenario, target string, measured float64, unit string, ref float64, refName, op string, bar float64) check {
	c := check{Scenario: scenario, Target: target, Measured: measured, Unit: unit, Reference: ref, RefName: refName, Op: op, Bar: bar}
	if ref > 0 {
		c.Ratio = measured / ref
	}
	switch op {
	case ">=":
		c.Pass = ref > 0 && c.Ratio >= bar
	case "<=":
		c.Pass = ref > 0 && c.Ratio <= bar
	}
	return c
}

func (c check) verdict() string {
	switch {
	case c.Op == "info":
		return "info"
	case c.Pass:
		return "PASS"
	default:
		return "MISS"
	}
}

// report is one bench run.
type report struct {
	Date     string `json:"date"`
	Command  string `json:"command"`
	Machine  string `json:"machine"`
	Go       string `json:"go"`
	Kafka    string `json:"kafka"`
	Redis    string `json:"redis"`
	Commit   string `json:"commit"`
	LoadAvg  string `json:"loadavg_at_start"`
	Duration string `json:"duration"`
	// OtherCPUSec is what the rest of the machine (not the bench, fanout,
	// redis-server or a Kafka child) spent while the bench ran: the numbers
	// are only comparable between runs where it is small.
	OtherCPUSec   float64    `json:"other_cpu_sec"`
	OtherCPUShare float64    `json:"other_cpu_share"` // of all cores over the run
	Events        eventSizes `json:"events"`
	Results       []result   `json:"results"`
	Checks        []check    `json:"checks"`
}

func newReport(e *env) *report {
	r := &report{
		Date:    time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		Command: "go run ./bench " + strings.Join(os.Args[1:], " "),
		Machine: machine(),
		Go:      runtime.Version(),
		Kafka:   e.kafkaDesc,
		LoadAvg: loadAvg(),
	}
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		// "Redis server v=7.0.15 sha=… malloc=… bits=64 build=…"
		r.Redis = strings.TrimSpace(string(out))
		for _, f := range strings.Fields(r.Redis) {
			if v, ok := strings.CutPrefix(f, "v="); ok {
				r.Redis = "redis-server " + v
			}
		}
	}
	if root, err := moduleRoot(); err == nil {
		if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
			r.Commit = strings.TrimSpace(string(out))
			if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
				r.Commit += " + uncommitted changes"
			}
		}
	}
	return r
}

// finish records the duration and what other processes used meanwhile.
func (r *report) finish(e *env, start, end cpuSnapshot) {
	r.Events = e.sizes
	wall := end.at.Sub(start.at)
	r.Duration = wall.Round(time.Second).String()
	other := (end.machine - start.machine) - (end.ours - start.ours)
	r.OtherCPUSec = max(other.Seconds(), 0)
	r.OtherCPUShare = r.OtherCPUSec / (wall.Seconds() * float64(runtime.NumCPU()))
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	kernel := firstLine("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d × %s%s, Linux %s %s", runtime.NumCPU(), model, mem, kernel, runtime.GOARCH)
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	f := strings.Fields(firstLine("/proc/loadavg"))
	return strings.Join(f[:min(3, len(f))], " ")
}

func firstLine(path string) string {
	b, _ := os.ReadFile(path)
	l, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(l)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fmtNum prints n with thousands separators and no decimals above 100.
func fmtNum(f float64) string {
	switch {
	case f == 0:
		return "0"
	case f < 10:
		return fmt.Sprintf("%.2f", f)
	case f < 100:
		return fmt.Sprintf("%.1f", f)
	}
	s := fmt.Sprintf("%.0f", f)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtOpt(f float64) string {
	if f == 0 {
		return "–"
	}
	return fmtNum(f)
}

func fmtMs(f float64) string {
	if f == 0 {
		return "–"
	}
	if f < 10 {
		return fmt.Sprintf("%.2f", f)
	}
	return fmt.Sprintf("%.1f", f)
}

func (r result) cells() []string {
	sink := r.Sink
	if sink == "" {
		sink = "–"
	}
	part, c := "–", "–"
	if r.Partitions > 0 {
		part = fmt.Sprint(r.Partitions)
	}
	if r.InFlight > 0 {
		c = fmt.Sprint(r.InFlight)
	}
	delivered := fmtNum(float64(r.Delivered))
	if r.Delivered != r.Events {
		delivered += " of " + fmtNum(float64(r.Events))
	}
	dup := fmt.Sprint(r.Duplicates)
	if r.OrderErrors > 0 {
		dup += fmt.Sprintf(" (%d out of key order)", r.OrderErrors)
	}
	return []string{r.Scenario, r.Run, sink, part, c, fmtMs(r.LatencyMs), delivered, dup,
		fmtNum(r.EventsPerSec), fmtMs(r.P50ms), fmtMs(r.P99ms), fmtMs(r.P999ms), fmtOpt(r.CPUSecPer1k), fmtOpt(r.PeakRSSMiB)}
}

var resultHeader = []string{"scenario", "run", "sink", "P", "C", "API ms", "delivered", "dup", "events/s",
	"p50 ms", "p99 ms", "p999 ms", "CPU s/1k", "RSS MiB"}

func (c check) cells() []string {
	ratio := fmt.Sprintf("%.2f", c.Ratio)
	bar := c.Op + " " + fmt.Sprintf("%.2f", c.Bar)
	if c.Op == "info" {
		bar = "–"
	}
	return []string{c.Scenario, c.Target, fmtNum(c.Measured) + " " + c.Unit, fmtNum(c.Reference) + " " + c.RefName, ratio, bar, c.verdict()}
}

var checkHeader = []string{"scenario", "target", "measured", "reference", "ratio", "bar", "result"}

// writeText prints the report as aligned columns.
func (r *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "\n%s — %s — %s — kafka: %s — commit %s\n", r.Date, r.Machine, r.Go, r.Kafka, r.Commit)
	fmt.Fprintf(w, "events: %d B Avro, %d B JSON; %s batches: %.0f B per record, %.0f B compressed\n\n",
		r.Events.Avro, r.Events.JSON, r.Events.Compression, r.Events.BatchBytes, r.Events.CompressedBytes)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(resultHeader, "\t")+"\t")
	for _, res := range r.Results {
		fmt.Fprintln(tw, strings.Join(res.cells(), "\t")+"\t")
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(checkHeader, "\t")+"\t")
	for _, c := range r.Checks {
		fmt.Fprintln(tw, strings.Join(c.cells(), "\t")+"\t")
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d of %d targets met; took %s; other processes used %.0f CPU-s (%.0f%% of the machine) meanwhile\n",
		r.passed(), r.targets(), r.Duration, r.OtherCPUSec, 100*r.OtherCPUShare)
}

func (r *report) passed() (n int) {
	for _, c := range r.Checks {
		if c.Op != "info" && c.Pass {
			n++
		}
	}
	return n
}

func (r *report) targets() (n int) {
	for _, c := range r.Checks {
		if c.Op != "info" {
			n++
		}
	}
	return n
}

// writeMarkdown writes the tables docs/performance.md embeds.
func (r *report) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "Run %s on %s; %s; Kafka: %s; %s; commit %s; load average at start %s; took %s; "+
		"other processes used %.0f CPU-s (%.0f%% of the machine) meanwhile.\n\n",
		r.Date, r.Machine, r.Go, r.Kafka, r.Redis, r.Commit, r.LoadAvg, r.Duration, r.OtherCPUSec, 100*r.OtherCPUShare)
	fmt.Fprintf(w, "Command: `%s`\n\n", r.Command)
	fmt.Fprintf(w, "Events: user.registered, %d bytes of Avro and %d bytes of JSON on average; batches compressed with %s", r.Events.Avro, r.Events.JSON, r.Events.Compression)
	if r.Events.BatchBytes > 0 {
		fmt.Fprintf(w, ": %.0f bytes per record in a batch, %.0f compressed", r.Events.BatchBytes, r.Events.CompressedBytes)
	}
	fmt.Fprintf(w, ".\n\n")
	fmt.Fprintf(w, "**Targets (%d of %d met)**\n\n", r.passed(), r.targets())
	mdTable(w, checkHeader, len(r.Checks), func(i int) []string { return r.Checks[i].cells() })
	fmt.Fprintf(w, "\n**Runs**\n\n")
	mdTable(w, resultHeader, len(r.Results), func(i int) []string { return r.Results[i].cells() })
}

func mdTable(w io.Writer, header []string, n int, row func(int) []string) {
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	for i := range n {
		cells := row(i)
		for j := range cells {
			cells[j] = strings.ReplaceAll(cells[j], "|", `\|`)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
