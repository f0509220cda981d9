package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// profileOptions are the flags of `compare profile`.
type profileOptions struct {
	out       string
	nodes     int
	sync      string
	producers int
	size      int
	stream    bool
	batch     int
	inflight  int
	warmup    time.Duration
	seconds   int
	trace     time.Duration
	pageCache string
	loghoused string
	timeout   time.Duration
}

func parseProfileOptions(args []string, stderr io.Writer) (profileOptions, error) {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o profileOptions
	fs.StringVar(&o.out, "out", "", "directory to write the profiles into (created; required)")
	fs.IntVar(&o.nodes, "nodes", 3, "loghoused nodes")
	fs.StringVar(&o.sync, "sync", "always", "storage.sync of the nodes: always or none")
	fs.IntVar(&o.producers, "producers", 1, "concurrent producers")
	fs.IntVar(&o.size, "size", 256, "bytes of each record's value")
	fs.BoolVar(&o.stream, "stream", false, "streaming requests of -batch records, -inflight in flight per producer, instead of unary requests of one record")
	fs.IntVar(&o.batch, "batch", 64, "records per request with -stream")
	fs.IntVar(&o.inflight, "inflight", 4, "requests in flight per producer with -stream")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before the profiles start")
	fs.IntVar(&o.seconds, "seconds", 5, "length of each profile, in seconds")
	fs.DurationVar(&o.trace, "trace", 2*time.Second, "length of the leader's execution trace, taken with the profiles (0: none)")
	fs.StringVar(&o.pageCache, "page-cache", "full", "full: fill the page cache with a scratch file first, as compare does, so that the nodes write into memory reclaimed from the page cache; free: leave the memory free")
	fs.StringVar(&o.loghoused, "loghoused", "", "a loghoused binary to use (default: build ./loghoused of the loghouse module)")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "bound on starting or stopping a server")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var problems []string
	if o.out == "" {
		problems = append(problems, "-out is required")
	}
	if o.nodes < 1 || o.nodes > 3 {
		problems = append(problems, fmt.Sprintf("-nodes %d: want 1 to 3", o.nodes))
	}
	if o.sync != "always" && o.sync != "none" {
		problems = append(problems, fmt.Sprintf("-sync %q: want always or none", o.sync))
	}
	if o.producers < 1 || o.size < 1 || o.batch < 1 || o.inflight < 1 || o.seconds < 1 {
		problems = append(problems, "-producers, -size, -batch, -inflight and -seconds must be positive")
	}
	if err := checkPageCacheMode(o.pageCache); err != nil {
		problems = append(problems, err.Error())
	}
	if o.warmup < 0 {
		problems = append(problems, fmt.Sprintf("-warmup %s must not be negative", o.warmup))
	}
	if o.trace < 0 || o.trace > time.Duration(o.seconds)*time.Second {
		problems = append(problems, fmt.Sprintf("-trace %s must be between 0 and -seconds (%ds)", o.trace, o.seconds))
	}
	if len(problems) > 0 {
		return o, errors.New(strings.Join(problems, "; "))
	}
	return o, nil
}

// benchArgs are the arguments of `loghoused bench produce`, without the
// connection flags: the load runs through the warm-up, the profiles and
// one more second.
func (o profileOptions) benchArgs(cpuProfile string) []string {
	args := []string{"produce", "-producers", strconv.Itoa(o.producers), "-size", strconv.Itoa(o.size),
		"-warmup", o.warmup.String(), "-duration", (time.Duration(o.seconds+1) * time.Second).String(),
		"-cpuprofile", cpuProfile}
	if o.stream {
		args = append(args, "-stream", "-batch", strconv.Itoa(o.batch), "-inflight", strconv.Itoa(o.inflight))
	}
	return args
}

// profile runs one produce workload against a fresh Loghouse cluster
// with enable_debug and keeps, in the -out directory:
//
//	NODE-ROLE.cpu.pb.gz     CPU profile of each node over -seconds
//	NODE-ROLE.allocs.pb.gz  allocations of each node over the same period
//	NODE-ROLE.metrics.txt   each node's /metrics after the load
//	leader.trace            the leader's execution trace (with -trace)
//	leader.sched.pb.gz      its scheduler-latency profile (go tool trace -pprof=sched)
//	leader.syscall.pb.gz    where its goroutines blocked in system calls (-pprof=syscall)
//	client.cpu.pb.gz        CPU profile of the load generator, warm-up included
//	run.json                the command, the time, the machine and the load's result
//
// `go tool pprof -top FILE` reads the profiles. The leader is found from
// /v1/status before the profiles start.
func profile(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	po, err := parseProfileOptions(args, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(po.out, 0o755); err != nil {
		return err
	}
	e, err := setUp(ctx, options{loghoused: po.loghoused, timeout: po.timeout}, stderr)
	if err != nil {
		return err
	}
	// The servers' logs are kept when something failed.
	defer func() { err = errors.Join(err, e.tearDown(err != nil)) }()
	pc, err := fillPageCache(po.pageCache, filepath.Join(e.work, "page-cache"), stderr)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, pc.close()) }()
	c, err := startLoghouse(ctx, e, "profile", po.nodes, po.sync, true)
	if err != nil {
		return err
	}
	leader, err := findLeader(ctx, c)
	if err != nil {
		return err
	}
	label := func(i int) string {
		if c.names[i] == leader {
			return c.names[i] + "-leader"
		}
		return c.names[i] + "-follower"
	}

	cpuClient, err := filepath.Abs(filepath.Join(po.out, "client.cpu.pb.gz"))
	if err != nil {
		return err
	}
	benchArgs := append(po.benchArgs(cpuClient), "-addr", c.seeds(), "-ca-cert", e.certs.ca, "-client-cert", e.certs.client, "-client-key", e.certs.ckey, "-progress", "0", "-json")
	type benchOut struct {
		out []byte
		err error
	}
	benchDone := make(chan benchOut, 1)
	go func() {
		o, err := runOutput(ctx, filepath.Join(e.logDir, "profile-bench.log"), nil, e.bin, append([]string{"bench"}, benchArgs...)...)
		benchDone <- benchOut{o, err}
	}()
	fmt.Fprintf(stderr, "profile: load running; profiles start in %s and take %ds (leader %s)\n", po.warmup, po.seconds, leader)
	select {
	case <-time.After(po.warmup):
	case b := <-benchDone:
		if b.err == nil {
			return errors.New("the load ended before the profiles started")
		}
		return fmt.Errorf("the load ended before the profiles started: %w", b.err)
	case <-ctx.Done():
		return ctx.Err()
	}

	secs := strconv.Itoa(po.seconds)
	type fetch struct{ url, file string }
	var fetches []fetch
	for i, h := range c.http {
		fetches = append(fetches,
			fetch{"http://" + h + "/debug/pprof/profile?seconds=" + secs, label(i) + ".cpu.pb.gz"},
			fetch{"http://" + h + "/debug/pprof/allocs?seconds=" + secs, label(i) + ".allocs.pb.gz"})
		if c.names[i] == leader && po.trace > 0 {
			fetches = append(fetches, fetch{"http://" + h + "/debug/pprof/trace?seconds=" + strconv.FormatFloat(po.trace.Seconds(), 'f', -1, 64), "leader.trace"})
		}
	}
	errs := make([]error, len(fetches))
	var wg sync.WaitGroup
	for i, f := range fetches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = download(ctx, f.url, filepath.Join(po.out, f.file), time.Duration(po.seconds+30)*time.Second)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b := <-benchDone
	if b.err != nil {
		return b.err
	}
	for i, h := range c.http {
		if err := download(ctx, "http://"+h+"/metrics", filepath.Join(po.out, label(i)+".metrics.txt"), 10*time.Second); err != nil {
			return err
		}
	}
	if po.trace > 0 {
		for _, kind := range []string{"sched", "syscall"} {
			out := filepath.Join(po.out, "leader."+kind+".pb.gz")
			if msg, err := traceProfile(ctx, filepath.Join(po.out, "leader.trace"), kind, out); err != nil {
				fmt.Fprintf(stderr, "profile: no %s profile from the trace (%v): %s\n", kind, err, msg)
			}
		}
	}
	var res json.RawMessage
	if err := json.Unmarshal(b.out, &res); err != nil {
		return fmt.Errorf("loghoused bench printed %q: %w", b.out, err)
	}
	run, err := json.MarshalIndent(map[string]any{
		"command": "compare profile " + argString(args),
		"time":    time.Now().UTC().Format(time.RFC3339),
		"machine": machine(),
		"leader":  leader,
		"bench":   res,
	}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(po.out, "run.json"), append(run, '\n'), 0o644); err != nil {
		return err
	}
	if err := e.procs.stopThese(c.procs); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "profile: wrote %s (go tool pprof -top %s)\n", po.out, filepath.Join(po.out, leader+"-leader.cpu.pb.gz"))
	return nil
}

// findLeader asks each node's /v1/status for the leader, until one names
// it.
func findLeader(ctx context.Context, c lhCluster) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, h := range c.http {
			var st struct {
				Leader string `json:"leader_id"`
			}
			if err := getJSON(ctx, "http://"+h+"/v1/status", &st); err == nil && st.Leader != "" {
				return st.Leader, nil
			}
		}
		if time.Now().After(deadline) {
			return "", errors.New("no node named a leader within 30s")
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func getJSON(ctx context.Context, url string, v any) error {
	body, err := get(ctx, url)
	if err != nil {
		return err
	}
	defer func() { _ = body.Close() }() // read to the end below
	return json.NewDecoder(body).Decode(v)
}

// download writes the body of GET url to path.
func download(ctx context.Context, url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := get(ctx, url)
	if err != nil {
		return err
	}
	defer func() { _ = body.Close() }() // read to the end below
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, body); err != nil {
		_ = f.Close() // the copy's error says what went wrong
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return f.Close()
}

// get returns the body of GET url, or an error with the server's reason
// if it does not answer 200.
func get(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512)) // best effort, for the error
		_ = resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp.Body, nil
}

// traceProfile turns an execution trace into a profile with `go tool
// trace -pprof=KIND`: sched, where goroutines waited to run once woken;
// syscall, where they were blocked in system calls.
func traceProfile(ctx context.Context, trace, kind, out string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "tool", "trace", "-pprof="+kind, trace)
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = f, &stderr
	err = cmd.Run()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(out) // incomplete
	}
	return strings.TrimSpace(stderr.String()), err
}
