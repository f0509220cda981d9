package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/loadgen"
	"github.com/loghouse/loghouse/pkg/record"
	"github.com/loghouse/loghouse/pkg/replication"
)

// loadFlags are the measurement flags of the in-process benches.
type loadFlags struct {
	workloads         string
	size, batch, infl int
	duration, warmup  time.Duration
	unaryDuration     time.Duration
	streamWarmup      time.Duration
	dir               string
	parsed            []workload
}

func (l *loadFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.workloads, "workloads", "unary-1", "comma-separated workloads: unary-N, stream-N")
	fs.IntVar(&l.size, "size", 256, "record bytes")
	fs.IntVar(&l.batch, "batch", 64, "records per request of a stream-N workload")
	fs.IntVar(&l.infl, "inflight", 4, "requests in flight per producer of a stream-N workload")
	fs.DurationVar(&l.duration, "duration", time.Second, "measured period of a stream-N workload")
	fs.DurationVar(&l.unaryDuration, "unary-duration", 3*time.Second, "measured period of a unary-N workload")
	fs.DurationVar(&l.warmup, "warmup", 500*time.Millisecond, "warm-up of a unary-N workload")
	fs.DurationVar(&l.streamWarmup, "stream-warmup", 2*time.Second, "warm-up of a stream-N workload")
	fs.StringVar(&l.dir, "dir", "", "data directory")
}

func (l *loadFlags) parse() error {
	if l.dir == "" {
		return errors.New("-dir is required")
	}
	for _, name := range strings.Split(l.workloads, ",") {
		w, err := produceWorkload(name, l.size, l.batch, l.infl)
		if err != nil {
			return err
		}
		l.parsed = append(l.parsed, w)
	}
	return nil
}

func (l *loadFlags) config(w workload) loadgen.Config {
	warmup, duration := l.warmup, l.unaryDuration
	if w.Stream {
		warmup, duration = l.streamWarmup, l.duration
	}
	return loadgen.Config{RecordsPerOp: w.Batch, RecordBytes: w.Size, Inflight: w.Inflight, Warmup: warmup, Duration: duration}
}

// printResults writes results by workload name as JSON.
func printResults(stdout io.Writer, res map[string]loadgen.Result) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(b))
	return nil
}

// fsyncBench is the raw durable-write baseline: one writer appends the
// bytes of a request (batch records of size bytes; 1 for unary-1) to a
// plain file with pwrite and fdatasyncs, in a loop. Only 1-producer
// workloads apply.
func fsyncBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fsync-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf loadFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := lf.parse(); err != nil {
		return err
	}
	out := map[string]loadgen.Result{}
	for _, w := range lf.parsed {
		if w.Producers != 1 {
			return fmt.Errorf("fsync-bench: %s: one writer only", w.Name)
		}
		f, err := os.OpenFile(filepath.Join(lf.dir, "fsync-"+w.Name), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		buf := make([]byte, w.Batch*w.Size)
		for i := range buf {
			buf[i] = byte(i * 13)
		}
		var pos int64
		fd := int(f.Fd())
		worker := loadgen.Call(func(context.Context) (int, error) {
			if _, err := f.WriteAt(buf, pos); err != nil {
				return 0, err
			}
			if err := syscall.Fdatasync(fd); err != nil {
				return 0, err
			}
			pos += int64(len(buf))
			return w.Batch, nil
		})
		cfg := lf.config(w)
		cfg.Inflight = 1
		res, err := loadgen.Run(ctx, cfg, []loadgen.Worker{worker})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		out[w.Name] = res
	}
	return printResults(stdout, out)
}

// raftBench is the raw replication baseline: three hashicorp/raft nodes in
// this process, over TCP on 127.0.0.1, each on Loghouse's own durable log
// store (commitlog with SyncAlways, so every StoreLogs is fdatasynced
// before raft counts it, on every node), with Loghouse's default raft
// timing and a trivial FSM. Each request is one raft.Apply of a record
// batch (the bytes Loghouse would store for it) on the leader: unary-N has
// N callers applying one record at a time; stream-N has N producers each
// with inflight applies of batch records outstanding. No TLS, no gRPC, no
// group commit of our own (raft still groups queued applies into one
// StoreLogs).
func raftBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("raft-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf loadFlags
	lf.register(fs)
	readyTimeout := fs.Duration("ready-timeout", 30*time.Second, "how long to wait for a leader")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := lf.parse(); err != nil {
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "raft", Output: stderr, Level: hclog.Warn})
	c, err := newRaftCluster(lf.dir, 3, logger)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := c.close(); cerr != nil {
			fmt.Fprintln(stderr, "raft-bench: close:", cerr)
		}
	}()
	leader, err := c.waitLeader(ctx, *readyTimeout)
	if err != nil {
		return err
	}
	out := map[string]loadgen.Result{}
	for _, w := range lf.parsed {
		payload, err := recordBatch(w.Batch, w.Size)
		if err != nil {
			return err
		}
		workers := make([]loadgen.Worker, w.Producers)
		for i := range workers {
			if w.Stream {
				workers[i] = &applyPipe{r: leader, payload: payload, records: w.Batch, futures: make(chan raft.ApplyFuture, w.Inflight)}
			} else {
				workers[i] = loadgen.Call(func(context.Context) (int, error) {
					return w.Batch, leader.Apply(payload, 0).Error()
				})
			}
		}
		res, err := loadgen.Run(ctx, lf.config(w), workers)
		if err != nil {
			return err
		}
		out[w.Name] = res
	}
	return printResults(stdout, out)
}

// applyPipe pipelines raft applies: Send applies, Recv waits for the
// oldest future.
type applyPipe struct {
	r       *raft.Raft
	payload []byte
	records int
	futures chan raft.ApplyFuture
}

func (p *applyPipe) Send(context.Context) error {
	p.futures <- p.r.Apply(p.payload, 0) // the window bounds the futures outstanding
	return nil
}

func (p *applyPipe) Recv(ctx context.Context) (int, error) {
	select {
	case f := <-p.futures:
		return p.records, f.Error()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// recordBatch encodes n records of size bytes as Loghouse's committer
// would for one raft entry.
func recordBatch(n, size int) ([]byte, error) {
	value := make([]byte, size)
	for i := range value {
		value[i] = byte(i * 7)
	}
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{Value: value}
	}
	return record.AppendBatch(nil, recs)
}

// raftCluster is n raft nodes in one process.
type raftCluster struct {
	nodes []*raftNode
}

type raftNode struct {
	r     *raft.Raft
	trans *raft.NetworkTransport
	log   *commitlog.Log
}

type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnapshot{}, nil }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type nopSnapshot struct{}

func (nopSnapshot) Persist(s raft.SnapshotSink) error { return s.Close() }
func (nopSnapshot) Release()                          {}

func newRaftCluster(dir string, n int, logger hclog.Logger) (c *raftCluster, err error) {
	c = &raftCluster{}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.close())
		}
	}()
	var servers []raft.Server
	for i := range n {
		id := fmt.Sprint("r", i+1)
		ndir := filepath.Join(dir, id)
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			return c, err
		}
		l, err := commitlog.Open(filepath.Join(ndir, "log"), commitlog.Options{Sync: commitlog.SyncAlways, Logger: logger.Named("commitlog")})
		if err != nil {
			return c, err
		}
		node := &raftNode{log: l}
		c.nodes = append(c.nodes, node)
		if node.trans, err = raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, 10*time.Second, logger.Named("transport")); err != nil {
			return c, err
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: node.trans.LocalAddr()})
	}
	for i, node := range c.nodes {
		stable, err := replication.OpenStableStore(nil, filepath.Join(dir, fmt.Sprint("r", i+1), "stable"))
		if err != nil {
			return c, err
		}
		logs := replication.NewLogStore(node.log)
		snaps := raft.NewInmemSnapshotStore()
		cfg := raft.DefaultConfig()
		cfg.LocalID = servers[i].ID
		cfg.Logger = logger.Named(string(servers[i].ID))
		// Loghouse's defaults (config.hcl.example), snapshots off.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
		cfg.CommitTimeout = 50 * time.Millisecond
		cfg.MaxAppendEntries = 64
		cfg.SnapshotThreshold, cfg.SnapshotInterval, cfg.TrailingLogs = 1<<62, time.Hour, 10240
		if err := raft.BootstrapCluster(cfg, logs, stable, snaps, node.trans, raft.Configuration{Servers: servers}); err != nil {
			return c, err
		}
		if node.r, err = raft.NewRaft(cfg, nopFSM{}, logs, stable, snaps, node.trans); err != nil {
			return c, err
		}
	}
	return c, nil
}

// waitLeader waits until a node leads and has committed an entry of its
// term, checking every 10ms.
func (c *raftCluster) waitLeader(ctx context.Context, timeout time.Duration) (*raft.Raft, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		for _, node := range c.nodes {
			if node.r.State() == raft.Leader {
				if err := node.r.Barrier(timeout).Error(); err == nil {
					return node.r, nil
				}
			}
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("raft-bench: no leader within %s", timeout)
		case <-t.C:
		}
	}
}

func (c *raftCluster) close() error {
	var errs []error
	for _, node := range c.nodes {
		if node.r != nil {
			errs = append(errs, node.r.Shutdown().Error())
		}
		if node.trans != nil {
			errs = append(errs, node.trans.Close())
		}
		errs = append(errs, node.log.Close())
	}
	return errors.Join(errs...)
}
