package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/client"
	"github.com/loghouse/loghouse/pkg/loadgen"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// env is what every system's run needs.
type env struct {
	opts   options
	work   string // this run's scratch directory
	logDir string
	self   string // this program, for its child commands
	bin    string // the loghoused binary
	procs  *procs
	certs  certs
	// seq numbers the data directories, so no run reuses one.
	seqMu sync.Mutex
	seq   int
}

// certs are the files of the run's CA: server certificates by node name
// and the "root" client certificate.
type certs struct {
	dir, ca      string
	servers      map[string][2]string
	client, ckey string
}

// makeCerts creates a CA, server certificates for names and a client
// certificate for "root" (whom Loghouse's default ACL allows everything).
func makeCerts(dir string, names []string) (certs, error) {
	c := certs{dir: dir, servers: map[string][2]string{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return c, err
	}
	ca, err := tlsutil.CreateCA(tlsutil.CAOptions{})
	if err != nil {
		return c, err
	}
	c.ca = filepath.Join(dir, tlsutil.CACertFileName)
	if err := ca.WriteFiles(c.ca, filepath.Join(dir, tlsutil.CAKeyFileName), false); err != nil {
		return c, err
	}
	write := func(kind tlsutil.Kind, name string) (string, string, error) {
		pair, err := tlsutil.CreateCert(ca, tlsutil.CertOptions{Kind: kind, Name: name})
		if err != nil {
			return "", "", err
		}
		cf, kf, err := tlsutil.CertFileNames(kind, name)
		if err != nil {
			return "", "", err
		}
		cf, kf = filepath.Join(dir, cf), filepath.Join(dir, kf)
		return cf, kf, pair.WriteFiles(cf, kf, false)
	}
	for _, n := range names {
		cf, kf, err := write(tlsutil.ServerCert, n)
		if err != nil {
			return c, err
		}
		c.servers[n] = [2]string{cf, kf}
	}
	c.client, c.ckey, err = write(tlsutil.ClientCert, "root")
	return c, err
}

// dataDir returns a new, empty directory for one system's run.
func (e *env) dataDir(name string) (string, error) {
	e.seqMu.Lock()
	e.seq++
	n := e.seq
	e.seqMu.Unlock()
	dir := filepath.Join(e.work, "data", fmt.Sprintf("%03d-%s", n, name))
	return dir, os.MkdirAll(dir, 0o700)
}

// system is one thing measured: it starts, runs the workloads that apply
// to it, and stops, within run.
type system struct {
	name  string
	label string
	// applies reports whether the system runs w.
	applies func(w workload) bool
	run     func(ctx context.Context, e *env, ws []workload) (map[string]loadgen.Result, error)
}

// decodeResults parses a child's JSON map of results.
func decodeResults(out []byte) (map[string]loadgen.Result, error) {
	var m map[string]loadgen.Result
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("decoding %q: %w", out, err)
	}
	return m, nil
}

// loadArgs are the measurement flags of the child commands.
func (e *env) loadArgs() []string {
	return []string{"-duration", e.opts.duration.String(), "-unary-duration", e.opts.unaryDuration.String(),
		"-warmup", e.opts.warmup.String(), "-stream-warmup", e.opts.streamWarmup.String()}
}

// benchLoadArgs are the measurement flags of `loghoused bench` for w.
func (e *env) benchLoadArgs(w workload) []string {
	warmup, duration := e.opts.warmup, e.opts.unaryDuration
	if w.Stream {
		warmup, duration = e.opts.streamWarmup, e.opts.duration
	}
	return []string{"-duration", duration.String(), "-warmup", warmup.String()}
}

// --- Loghouse -------------------------------------------------------------

// readsToo: whether the system also runs the consume workload (reads do
// not depend on the sync setting, so each cluster shape reads once).
func loghouseSystem(name, label string, nodes int, sync string, readsToo bool) system {
	return system{
		name: name, label: label,
		applies: func(w workload) bool { return readsToo || !w.Consume },
		run: func(ctx context.Context, e *env, ws []workload) (map[string]loadgen.Result, error) {
			return runLoghouse(ctx, e, name, nodes, sync, ws)
		},
	}
}

// runLoghouse starts nodes loghoused agents (separate processes, static
// peers, mutual TLS, storage.sync = sync), runs ws with `loghoused bench`,
// and stops them.
func runLoghouse(ctx context.Context, e *env, name string, nodes int, sync string, ws []workload) (map[string]loadgen.Result, error) {
	c, err := startLoghouse(ctx, e, name, nodes, sync, false)
	if err != nil {
		return nil, err
	}
	out := map[string]loadgen.Result{}
	if err := runLoghouseBench(ctx, e, name, c.seeds(), ws, out, true); err != nil {
		_ = e.procs.stopThese(c.procs) // the run's error says what went wrong
		return out, err
	}
	return out, e.procs.stopThese(c.procs)
}

// lhCluster is a running set of loghoused agents.
type lhCluster struct {
	names []string // n1, n2, ...
	addrs []string // RPC addresses, by node
	http  []string // HTTP addresses, by node
	procs []*proc
}

func (c lhCluster) seeds() string { return strings.Join(c.addrs, ",") }

// startLoghouse starts nodes loghoused agents (separate processes, static
// peers, mutual TLS, storage.sync = sync, enable_debug = debug) and waits
// until the cluster has a leader. On failure it stops what it started.
func startLoghouse(ctx context.Context, e *env, name string, nodes int, sync string, debug bool) (c lhCluster, err error) {
	dir, err := e.dataDir(name)
	if err != nil {
		return c, err
	}
	ports, err := freePorts(3 * nodes)
	if err != nil {
		return c, err
	}
	for i := range nodes {
		c.names = append(c.names, fmt.Sprint("n", i+1))
		c.addrs = append(c.addrs, fmt.Sprintf("127.0.0.1:%d", ports[3*i]))
		c.http = append(c.http, fmt.Sprintf("127.0.0.1:%d", ports[3*i+2]))
	}
	defer func() {
		if err != nil {
			_ = e.procs.stopThese(c.procs) // err says what went wrong
		}
	}()
	for i, node := range c.names {
		var hcl strings.Builder
		fmt.Fprintf(&hcl, "node_name = %q\ndata_dir = %q\nbind_addr = \"127.0.0.1\"\n", node, filepath.Join(dir, node))
		fmt.Fprintf(&hcl, "ports {\n  rpc = %d\n  serf = %d\n  http = %d\n}\n", ports[3*i], ports[3*i+1], ports[3*i+2])
		hcl.WriteString("bootstrap = true\n")
		for j, peer := range c.names {
			if j != i {
				fmt.Fprintf(&hcl, "peer %q {\n  address = %q\n}\n", peer, c.addrs[j])
			}
		}
		if debug {
			hcl.WriteString("enable_debug = true\n")
		}
		sc := e.certs.servers[node]
		fmt.Fprintf(&hcl, "tls {\n  ca_file = %q\n  cert_file = %q\n  key_file = %q\n}\n", e.certs.ca, sc[0], sc[1])
		fmt.Fprintf(&hcl, "log {\n  level = \"warn\"\n}\nstorage {\n  sync = %q\n}\n", sync)
		cfgFile := filepath.Join(dir, node+".hcl")
		if err := os.WriteFile(cfgFile, []byte(hcl.String()), 0o600); err != nil {
			return c, err
		}
		p, err := e.procs.start(name+"-"+node, "ready on", e.bin, "agent", "-config", cfgFile)
		if err != nil {
			return c, err
		}
		c.procs = append(c.procs, p)
	}
	// A node is ready once the cluster has a leader: start all, then wait.
	return c, e.procs.waitReady(ctx, c.procs...)
}

// runLoghouseBench runs ws against a Loghouse API server (Loghouse or the
// gRPC baseline) with `loghoused bench`: the consume workload first, on
// the fresh log (topped up, if topUp, then read twice, the first time to
// warm up), then the produce workloads.
func runLoghouseBench(ctx context.Context, e *env, name, seeds string, ws []workload, out map[string]loadgen.Result, topUp bool) error {
	conn := []string{"-addr", seeds, "-ca-cert", e.certs.ca, "-client-cert", e.certs.client, "-client-key", e.certs.ckey, "-progress", "0", "-json"}
	logPath := filepath.Join(e.logDir, name+"-bench.log")
	bench := func(args ...string) (loadgen.Result, error) {
		o, err := runOutput(ctx, logPath, nil, e.bin, append(append([]string{"bench"}, args...), conn...)...)
		if err != nil {
			return loadgen.Result{}, err
		}
		var got struct {
			Result loadgen.Result `json:"result"`
		}
		if err := json.Unmarshal(o, &got); err != nil {
			return loadgen.Result{}, fmt.Errorf("loghoused bench printed %q: %w", o, err)
		}
		return got.Result, nil
	}
	for _, w := range ws {
		if !w.Consume {
			continue
		}
		if topUp {
			if err := loghouseTopUp(ctx, e, seeds, w.Records, w.Size); err != nil {
				return err
			}
		}
		args := []string{"consume", "-n", strconv.Itoa(w.Records), "-duration", e.opts.timeout.String(), "-warmup", "0s", "-timeout", e.opts.timeout.String()}
		if _, err := bench(args...); err != nil { // warm-up pass
			return err
		}
		res, err := bench(args...)
		if err != nil {
			return err
		}
		out[w.key()] = res
	}
	for _, w := range ws {
		if w.Consume {
			continue
		}
		args := append([]string{"produce", "-producers", strconv.Itoa(w.Producers), "-size", strconv.Itoa(w.Size)}, e.benchLoadArgs(w)...)
		if w.Stream {
			args = append(args, "-stream", "-batch", strconv.Itoa(w.Batch), "-inflight", strconv.Itoa(w.Inflight))
		}
		res, err := bench(args...)
		if err != nil {
			return err
		}
		out[w.key()] = res
	}
	return nil
}

// loghouseTopUp produces records records of size bytes (requests of 1000,
// 8 at a time) so that a consumer has a log to read.
func loghouseTopUp(ctx context.Context, e *env, seeds string, records, size int) error {
	tlsCfg, err := client.TLSConfigFromFiles(e.certs.ca, e.certs.client, e.certs.ckey)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.timeout)
	defer cancel()
	cl, err := client.New(ctx, client.Config{Seeds: strings.Split(seeds, ","), TLS: tlsCfg})
	if err != nil {
		return err
	}
	defer func() { _ = cl.Close() }() // nothing to do about it
	value := make([]byte, size)
	const per, par = 1000, 8
	var wg sync.WaitGroup
	errs := make(chan error, par)
	next := make(chan int)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range next {
				recs := make([]*loghousev1.Record, n)
				for i := range recs {
					recs[i] = &loghousev1.Record{Value: value}
				}
				if _, err := cl.Produce(ctx, recs...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	func() {
		defer close(next)
		for left := records; left > 0; left -= per {
			select {
			case next <- min(per, left):
			case err = <-errs:
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	return errors.Join(err, <-errs)
}

// --- raw baselines --------------------------------------------------------

func grpcSystem() system {
	return system{
		name: "grpc", label: "raw gRPC over mTLS: Loghouse's API answered at once, no log (baseline)",
		applies: func(workload) bool { return true },
		run: func(ctx context.Context, e *env, ws []workload) (map[string]loadgen.Result, error) {
			records := 1_000_000
			size := 256
			for _, w := range ws {
				if w.Consume {
					records, size = w.Records, w.Size
				}
			}
			sc := e.certs.servers["baseline"]
			p, err := e.procs.start("grpc", "ready on", e.self, "serve-grpc", "-addr", "127.0.0.1:0",
				"-ca-cert", e.certs.ca, "-cert", sc[0], "-key", sc[1], "-records", strconv.Itoa(records), "-size", strconv.Itoa(size))
			if err != nil {
				return nil, err
			}
			defer func() { _ = e.procs.stopThese([]*proc{p}) }() // also on failure; the error is reported below
			if err := e.procs.waitReady(ctx, p); err != nil {
				return nil, err
			}
			addr, err := readyAddr(p)
			if err != nil {
				return nil, err
			}
			out := map[string]loadgen.Result{}
			if err := runLoghouseBench(ctx, e, "grpc", addr, ws, out, false); err != nil {
				return out, err
			}
			return out, e.procs.stopThese([]*proc{p})
		},
	}
}

// readyAddr reads the address a child printed in its ready line ("... ready
// on ADDR") from its log.
func readyAddr(p *proc) (string, error) {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "", err
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if _, after, ok := strings.Cut(lines[i], " ready on "); ok {
			return strings.TrimSpace(strings.TrimPrefix(after, "nats://")), nil
		}
	}
	return "", fmt.Errorf("%s printed no address", p.name)
}

// childSystem runs the produce workloads in one child command per record
// size (raft-bench, fsync-bench).
func childSystem(name, label, cmd string, applies func(workload) bool) system {
	return system{
		name: name, label: label, applies: applies,
		run: func(ctx context.Context, e *env, ws []workload) (map[string]loadgen.Result, error) {
			bySize := map[int][]workload{}
			var sizes []int
			for _, w := range ws {
				if _, ok := bySize[w.Size]; !ok {
					sizes = append(sizes, w.Size)
				}
				bySize[w.Size] = append(bySize[w.Size], w)
			}
			out := map[string]loadgen.Result{}
			for _, size := range sizes {
				dir, err := e.dataDir(name)
				if err != nil {
					return out, err
				}
				var names []string
				for _, w := range bySize[size] {
					names = append(names, w.Name)
				}
				args := append([]string{cmd, "-dir", dir, "-workloads", strings.Join(names, ","), "-size", strconv.Itoa(size),
					"-batch", strconv.Itoa(e.opts.batch), "-inflight", strconv.Itoa(e.opts.inflight)}, e.loadArgs()...)
				o, err := runOutput(ctx, filepath.Join(e.logDir, name+".log"), nil, e.self, args...)
				if err != nil {
					return out, err
				}
				m, err := decodeResults(o)
				if err != nil {
					return out, err
				}
				for _, w := range bySize[size] {
					if r, ok := m[w.Name]; ok {
						out[w.key()] = r
					}
				}
			}
			return out, nil
		},
	}
}

// --- NATS JetStream -------------------------------------------------------

// Reads do not depend on the sync setting: only the default
// configuration runs the consume workload (topping up a sync-always R1
// stream, one fsync per message, would take minutes).
func natsSystem(name, label string, replicas int, syncAlways bool) system {
	return system{
		name: name, label: label,
		applies: func(w workload) bool { return !syncAlways || !w.Consume },
		run: func(ctx context.Context, e *env, ws []workload) (map[string]loadgen.Result, error) {
			return runNATS(ctx, e, name, replicas, syncAlways, ws)
		},
	}
}

// runNATS starts replicas embedded nats-servers (separate processes,
// clustered on loopback when more than one), creates a file stream with
// that many replicas, runs ws with `compare nats-bench` against the
// stream leader's server, and stops them.
func runNATS(ctx context.Context, e *env, name string, replicas int, syncAlways bool, ws []workload) (map[string]loadgen.Result, error) {
	dir, err := e.dataDir(name)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2 * replicas)
	if err != nil {
		return nil, err
	}
	urls := map[string]string{}
	var started []*proc
	defer func() { _ = e.procs.stopThese(started) }() // for failures; stopped below otherwise
	for i := range replicas {
		node := fmt.Sprint("n", i+1)
		args := []string{"serve-nats", "-name", node, "-port", strconv.Itoa(ports[2*i]), "-dir", filepath.Join(dir, node), "-ready-timeout", e.opts.timeout.String()}
		if syncAlways {
			args = append(args, "-sync-always")
		}
		if replicas > 1 {
			var routes []string
			for j := range replicas {
				if j != i {
					routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[2*j+1]))
				}
			}
			args = append(args, "-cluster-port", strconv.Itoa(ports[2*i+1]), "-routes", strings.Join(routes, ","))
		}
		p, err := e.procs.start(name+"-"+node, "ready on", e.self, args...)
		if err != nil {
			return nil, err
		}
		started = append(started, p)
		urls[node] = fmt.Sprintf("nats://127.0.0.1:%d", ports[2*i])
	}
	if err := e.procs.waitReady(ctx, started...); err != nil {
		return nil, err
	}
	leaderURL, err := createStream(ctx, urls["n1"], replicas, urls, e.opts.timeout, e.opts.attempt)
	if err != nil {
		return nil, err
	}
	out := map[string]loadgen.Result{}
	logPath := filepath.Join(e.logDir, name+"-bench.log")
	for _, w := range ws {
		var args []string
		if w.Consume {
			args = []string{"nats-bench", "consume", "-url", leaderURL, "-records", strconv.Itoa(w.Records), "-size", strconv.Itoa(w.Size),
				"-duration", e.opts.timeout.String(), "-timeout", e.opts.timeout.String()}
		} else {
			args = append([]string{"nats-bench", "produce", "-url", leaderURL, "-workloads", w.Name, "-size", strconv.Itoa(w.Size),
				"-batch", strconv.Itoa(w.Batch), "-inflight", strconv.Itoa(w.Inflight)}, e.loadArgs()...)
		}
		o, err := runOutput(ctx, logPath, nil, e.self, args...)
		if err != nil {
			return out, err
		}
		m, err := decodeResults(o)
		if err != nil {
			return out, err
		}
		key := w.Name
		if w.Consume {
			key = "consume"
		}
		out[w.key()] = m[key]
	}
	err = e.procs.stopThese(started)
	started = nil
	return out, err
}

// createStream creates the bench stream (file storage, replicas, the
// rest default), retrying while the JetStream cluster forms, and returns
// the URL of the server that leads it.
func createStream(ctx context.Context, url string, replicas int, urls map[string]string, timeout, attempt time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := nats.Connect(url)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	cfg := jetstream.StreamConfig{Name: natsStream, Subjects: []string{natsSubject}, Storage: jetstream.FileStorage, Replicas: replicas}
	for {
		// Until the cluster has a meta leader, a request may get no
		// answer at all: bound each attempt.
		leader, err := func() (string, error) {
			actx, acancel := context.WithTimeout(ctx, attempt)
			defer acancel()
			s, err := js.CreateOrUpdateStream(actx, cfg)
			if err != nil {
				return "", err
			}
			info, err := s.Info(actx)
			if err != nil {
				return "", err
			}
			if replicas == 1 || info.Cluster == nil {
				return url, nil
			}
			return urls[info.Cluster.Leader], nil // "" while there is none
		}()
		if leader != "" {
			return leader, nil
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			if err == nil {
				return "", fmt.Errorf("creating the stream: %w (no leader yet)", ctx.Err())
			}
			return "", fmt.Errorf("creating the stream: %w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}
