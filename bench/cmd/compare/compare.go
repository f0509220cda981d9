package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/loghouse/loghouse/pkg/loadgen"
)

// options are the comparison's settings.
type options struct {
	mode           string
	rounds         int
	duration       time.Duration
	unaryDuration  time.Duration // of the unary produce workloads
	warmup         time.Duration
	streamWarmup   time.Duration
	sizes          []int
	producers      []int
	batch          int
	inflight       int
	consumeRecords int
	systems        []string
	timeout        time.Duration
	attempt        time.Duration
	report         string
	pageCache      string // full or free: the page cache state the systems write in (pagecache.go)
	loghoused      string
	args           []string
}

var allSystems = []string{"fsync", "grpc", "raft3", "lh1", "lh1-none", "lh3", "js1", "js1-always", "js3", "js3-always"}

func systemsByName() map[string]system {
	return map[string]system{
		"fsync": childSystem("fsync", "write+fdatasync loop on a plain file, 1 writer (baseline)", "fsync-bench",
			func(w workload) bool { return !w.Consume && w.Producers == 1 }),
		"grpc": grpcSystem(),
		"raft3": childSystem("raft3", "3 raw hashicorp/raft nodes in one process over TCP, Loghouse's log store with fsync per batch, no TLS (baseline)", "raft-bench",
			func(w workload) bool { return !w.Consume }),
		"lh1":        loghouseSystem("lh1", "Loghouse, 1 node, sync always", 1, "always", true),
		"lh1-none":   loghouseSystem("lh1-none", "Loghouse, 1 node, sync none", 1, "none", false),
		"lh3":        loghouseSystem("lh3", "Loghouse, 3 nodes, sync always", 3, "always", true),
		"js1":        natsSystem("js1", "JetStream R1 file stream, defaults (fsync every 2 min)", 1, false),
		"js1-always": natsSystem("js1-always", "JetStream R1 file stream, sync_interval: always", 1, true),
		"js3":        natsSystem("js3", "JetStream R3 file stream, defaults (fsync every 2 min)", 3, false),
		"js3-always": natsSystem("js3-always", "JetStream R3 file stream, sync_interval: always", 3, true),
	}
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{args: args}
	fs.StringVar(&o.mode, "mode", "short", "short (256 B records, a smaller log: about 12 minutes on a 2-core VM) or full (64 B, 256 B and 4 KiB records, longer runs)")
	rounds := fs.Int("rounds", 0, "rounds (default: 3 short, 5 full)")
	duration := fs.Duration("duration", 0, "measured period of each workload (default: 1s short, 5s full)")
	unaryDuration := fs.Duration("unary-duration", 0, "measured period of each unary workload (default: -duration or 3s, whichever is longer): one producer makes one or two thousand requests a second, and the p99 of one second would rest on its ten slowest")
	warmup := fs.Duration("warmup", 0, "warm-up of each unary workload (default: 500ms short, 1s full)")
	fs.DurationVar(&o.streamWarmup, "stream-warmup", 2*time.Second, "warm-up of each streaming/batched workload, long enough for the servers to reach their steady state (a fresh Loghouse node takes about 2s to grow its heap)")
	consume := fs.Int("consume-records", 0, "records in the log the consumers read (default: 300,000 short, 2,000,000 full)")
	systems := fs.String("systems", strings.Join(allSystems, ","), "systems to run, comma-separated")
	producers := fs.String("producers", "1,8,64", "producer counts, comma-separated")
	fs.IntVar(&o.batch, "batch", 64, "records per request of the streaming/batched workloads")
	fs.IntVar(&o.inflight, "inflight", 4, "requests in flight per producer of the streaming/batched workloads")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "bound on starting or stopping a server and on a consume pass")
	fs.DurationVar(&o.attempt, "attempt-timeout", 5*time.Second, "bound on one attempt of a set-up call that is retried (creating the JetStream stream)")
	fs.StringVar(&o.loghoused, "loghoused", "", "a loghoused binary to use (default: build ./loghoused of the loghouse module)")
	fs.StringVar(&o.pageCache, "page-cache", "full", "full: before each system runs, fill the page cache with a scratch file, so that every system writes into memory reclaimed from the page cache, as a long-running server does; free: leave the memory free, as on a machine that has just booted")
	fs.StringVar(&o.report, "report", "", "Markdown report to write (default: REPORT.md in short mode, REPORT-full.md in full mode; \"-\" for none)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	full := o.mode == "full"
	if !full && o.mode != "short" {
		return o, fmt.Errorf("-mode %q: want short or full", o.mode)
	}
	pick := func(v, short, long int) int {
		if v != 0 {
			return v
		}
		if full {
			return long
		}
		return short
	}
	pickD := func(v, short, long time.Duration) time.Duration {
		if v != 0 {
			return v
		}
		if full {
			return long
		}
		return short
	}
	o.rounds = pick(*rounds, 3, 5)
	o.duration = pickD(*duration, time.Second, 5*time.Second)
	o.unaryDuration = *unaryDuration
	if o.unaryDuration == 0 {
		o.unaryDuration = max(o.duration, 3*time.Second)
	}
	o.warmup = pickD(*warmup, 500*time.Millisecond, time.Second)
	o.consumeRecords = pick(*consume, 300_000, 2_000_000)
	o.sizes = []int{256}
	if full {
		o.sizes = []int{64, 256, 4096}
	}
	if o.report == "" {
		o.report = "REPORT.md"
		if full {
			o.report = "REPORT-full.md"
		}
	}
	known := systemsByName()
	for _, s := range strings.Split(*systems, ",") {
		if _, ok := known[s]; !ok {
			return o, fmt.Errorf("-systems: unknown %q (known: %s)", s, strings.Join(allSystems, ","))
		}
		o.systems = append(o.systems, s)
	}
	for _, p := range strings.Split(*producers, ",") {
		var n int
		if _, err := fmt.Sscan(p, &n); err != nil || n < 1 {
			return o, fmt.Errorf("-producers: bad count %q", p)
		}
		o.producers = append(o.producers, n)
	}
	if o.rounds < 1 || o.batch < 1 || o.inflight < 1 || o.duration <= 0 || o.unaryDuration <= 0 || o.warmup < 0 || o.streamWarmup < 0 {
		return o, errors.New("rounds, batch, inflight and the durations must be positive, and the warm-ups must not be negative")
	}
	if err := checkPageCacheMode(o.pageCache); err != nil {
		return o, err
	}
	return o, nil
}

// workloads lists what each system runs: the consume workload, then
// unary and streaming produce for each producer count and record size.
func (o options) workloads() []workload {
	ws := []workload{{Name: "consume", Consume: true, Size: 256, Records: o.consumeRecords, Batch: 1000}}
	for _, size := range o.sizes {
		for _, mode := range []string{"unary", "stream"} {
			for _, p := range o.producers {
				w, err := produceWorkload(fmt.Sprintf("%s-%d", mode, p), size, o.batch, o.inflight)
				if err != nil {
					panic(err) // built from valid parts above
				}
				ws = append(ws, w)
			}
		}
	}
	return ws
}

// compare runs the comparison.
func compare(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	started := time.Now()
	e, err := setUp(ctx, o, stderr)
	if err != nil {
		return err
	}
	keepWork := false
	defer func() { err = errors.Join(err, e.tearDown(keepWork)) }()
	pc, err := fillPageCache(o.pageCache, filepath.Join(e.work, "page-cache"), stderr)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, pc.close()) }()
	known := systemsByName()
	ws := o.workloads()
	all := map[string]map[string][]loadgen.Result{}
	failures := map[string][]string{}
	for round := range o.rounds {
		order := slices.Clone(o.systems)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, name := range order {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			sys := known[name]
			var mine []workload
			for _, w := range ws {
				if sys.applies(w) {
					mine = append(mine, w)
				}
			}
			if err := pc.topUp(); err != nil {
				return err
			}
			t0 := time.Now()
			res, err := sys.run(ctx, e, mine)
			if all[name] == nil {
				all[name] = map[string][]loadgen.Result{}
			}
			for k, r := range res {
				all[name][k] = append(all[name][k], r)
				fmt.Fprintf(stderr, "round %d/%d %-10s %-18s %12s records/s  p50 %s  p99 %s\n", round+1, o.rounds, name, k, thousands(r.RecordsPerSec), fmtMs(r.Latency.P50Ms), fmtMs(r.Latency.P99Ms))
				if r.Errors > 0 {
					// Not counted in the tables; listed as a failure.
					failures[name] = append(failures[name], fmt.Sprintf("round %d, %s: %d of %d clients failed, the first: %s", round+1, k, r.Errors, r.Workers, r.FirstError))
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				keepWork = true
				msg := fmt.Sprintf("round %d: %v", round+1, err)
				failures[name] = append(failures[name], msg)
				fmt.Fprintf(stderr, "round %d/%d %s FAILED: %v\n", round+1, o.rounds, name, err)
			}
			fmt.Fprintf(stderr, "round %d/%d %s done in %s\n", round+1, o.rounds, name, time.Since(t0).Round(100*time.Millisecond))
			if !keepWork {
				// A failed run's data is kept to look at; the next
				// topUp takes up the memory this frees.
				if err := os.RemoveAll(filepath.Join(e.work, "data")); err != nil {
					return err
				}
			}
		}
	}
	rep := report{opts: o, systems: known, workloads: ws, results: all, failures: failures, started: started, elapsed: time.Since(started)}
	md := rep.markdown()
	fmt.Fprint(stdout, md)
	if o.report != "-" {
		if err := os.WriteFile(o.report, []byte(md), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "compare: wrote %s\n", o.report)
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d systems failed at least once; logs kept in %s", len(failures), e.logDir)
	}
	return nil
}

// setUp makes a run's scratch directory (logs in logs/), builds
// loghoused unless o names a binary, checks it has a bench command, and
// makes the certificates. The caller calls tearDown at the end.
func setUp(ctx context.Context, o options, stderr io.Writer) (e *env, err error) {
	e = &env{opts: o}
	if e.self, err = os.Executable(); err != nil {
		return nil, err
	}
	if e.work, err = os.MkdirTemp("", "loghouse-compare-"); err != nil {
		return nil, err
	}
	e.procs = &procs{logDir: filepath.Join(e.work, "logs"), startTimeout: o.timeout, stopTimeout: o.timeout}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(e.work) // scratch space; err says what went wrong
			e = nil
		}
	}()
	e.logDir = e.procs.logDir
	if err := os.MkdirAll(e.logDir, 0o700); err != nil {
		return e, err
	}
	fmt.Fprintf(stderr, "compare: scratch directory %s (logs in logs/)\n", e.work)
	if e.bin = o.loghoused; e.bin == "" {
		if e.bin, err = buildLoghoused(ctx, e.work); err != nil {
			return e, err
		}
	}
	if out, err := exec.CommandContext(ctx, e.bin, "bench", "help").CombinedOutput(); err != nil {
		return e, fmt.Errorf("%s has no working bench command (%w): %s", e.bin, err, firstLine(string(out)))
	}
	e.certs, err = makeCerts(filepath.Join(e.work, "tls"), []string{"n1", "n2", "n3", "baseline"})
	return e, err
}

// tearDown stops every child still running and deletes the scratch
// directory unless keepWork.
func (e *env) tearDown(keepWork bool) error {
	err := e.procs.stopAll()
	if !keepWork {
		err = errors.Join(err, os.RemoveAll(e.work))
	}
	return err
}

// buildLoghoused builds the loghoused binary of the module this one
// replaces into dir.
func buildLoghoused(ctx context.Context, dir string) (string, error) {
	src, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/loghouse/loghouse").Output()
	if err != nil {
		return "", fmt.Errorf("finding the loghouse module (run compare from bench/): %w", err)
	}
	bin := filepath.Join(dir, "loghoused")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./loghoused")
	cmd.Dir = strings.TrimSpace(string(src))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building loghoused: %w\n%s", err, out)
	}
	return bin, nil
}
