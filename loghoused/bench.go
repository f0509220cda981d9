package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/client"
	"github.com/loghouse/loghouse/pkg/loadgen"
)

const benchUsage = `usage: loghoused bench produce|consume [flags]

  produce   append records of -size bytes from -producers clients, -batch
            per request, with unary Produce, (-stream) pipelined
            ProduceStream, or (-shared) one batching client.Producer that
            all producers share, as fast as they go or at -rate records/s
  consume   read the log from -offset with -consumers clients, each to the
            end of the log as it was when they started (or -n records),
            with ConsumeStream or (-unary) Consume

Run "loghoused bench produce -h" for the flags. Results go to stdout (-json
for machines), a progress line to stderr.`

// runBench is a load generator for any Loghouse cluster, like "nats
// bench": it measures throughput and latency percentiles (log-linear
// histograms per client, merged). Writes go straight to the leader, reads
// to the followers (or -leader), each client on its own connection unless
// -conns says otherwise; calls are never retried, a client stops at its
// first error, and the command then fails after printing what it measured.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{benchUsage}
	}
	switch args[0] {
	case "produce":
		return benchProduce(ctx, args[1:], stdout, stderr)
	case "consume":
		return benchConsume(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, benchUsage)
		return nil
	}
	return usageError{benchUsage}
}

// parseBenchFlags parses args; help is true after -h (the flags have been
// printed and there is nothing to run).
func parseBenchFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, usageError{err.Error()}
	}
	return false, nil
}

// benchFlags are the flags both bench commands take.
type benchFlags struct {
	clientFlags
	clients  int
	conns    int
	duration time.Duration
	warmup   time.Duration
	progress time.Duration
	asJSON   bool
	cpuProf  string
}

func (b *benchFlags) register(fs *flag.FlagSet, clientsName, clientsUsage string, warmup time.Duration) {
	b.clientFlags.register(fs)
	fs.IntVar(&b.clients, clientsName, 1, clientsUsage)
	fs.IntVar(&b.conns, "conns", 0, "gRPC connections the clients share (0: one per client)")
	fs.DurationVar(&b.duration, "duration", 10*time.Second, "measured period")
	fs.DurationVar(&b.warmup, "warmup", warmup, "unmeasured period before it")
	fs.DurationVar(&b.progress, "progress", time.Second, "interval of the progress line on stderr (0: none)")
	fs.BoolVar(&b.asJSON, "json", false, "print the result as JSON")
	fs.StringVar(&b.cpuProf, "cpuprofile", "", "write a CPU profile of this bench client, warm-up included, to `file` (go tool pprof reads it)")
}

func (b *benchFlags) check(clientsName string) error {
	switch {
	case b.clients < 1:
		return usageError{fmt.Sprintf("-%s must be positive, got %d", clientsName, b.clients)}
	case b.conns < 0:
		return usageError{fmt.Sprintf("-conns must not be negative, got %d", b.conns)}
	case b.duration <= 0:
		return usageError{fmt.Sprintf("-duration must be positive, got %s", b.duration)}
	case b.warmup < 0 || b.progress < 0:
		return usageError{"-warmup and -progress must not be negative"}
	}
	return nil
}

// benchProduce runs "loghoused bench produce".
func benchProduce(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench produce", stderr)
	var bf benchFlags
	bf.register(fs, "producers", "concurrent producers (clients)", 2*time.Second)
	size := fs.Int("size", 256, "bytes of each record's value")
	batch := fs.Int("batch", 1, "records per request")
	stream := fs.Bool("stream", false, "pipeline requests on one ProduceStream per producer instead of unary Produce calls")
	inflight := fs.Int("inflight", 8, "requests in flight per stream (with -stream)")
	shared := fs.Bool("shared", false, "the producers share one batching client.Producer, whose requests carry the records of concurrent calls (as the goroutines of one service would)")
	rate := fs.Float64("rate", 0, "target records/s over all producers, an open loop with latency measured from each request's intended send time (0: a closed loop, as fast as the cluster answers)")
	if help, err := parseBenchFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("bench produce takes no arguments, got %q", fs.Args())}
	}
	if err := bf.check("producers"); err != nil {
		return err
	}
	switch {
	case *size < 0:
		return usageError{fmt.Sprintf("-size must not be negative, got %d", *size)}
	case *batch < 1:
		return usageError{fmt.Sprintf("-batch must be positive, got %d", *batch)}
	case *inflight < 1:
		return usageError{fmt.Sprintf("-inflight must be positive, got %d", *inflight)}
	case *rate < 0:
		return usageError{fmt.Sprintf("-rate must not be negative, got %v", *rate)}
	case *shared && *stream:
		return usageError{"-shared and -stream exclude each other"}
	}
	if !*stream {
		*inflight = 1
	}
	cl, err := bf.connect(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = cl.Close() }() // only connections to close; errors reported below matter more
	leader, err := benchLeader(ctx, &bf.clientFlags, cl)
	if err != nil {
		return err
	}
	// Shared producers go through the Producer's Client and its one
	// connection to the leader; the others get connections of their own.
	conns, nconns := &benchConns{}, 1
	var producer *client.Producer
	if *shared {
		if producer, err = cl.NewProducer(client.ProducerConfig{}); err != nil {
			return err
		}
		defer producer.Close()
	} else {
		if conns, err = bf.dial(ctx, []string{leader}); err != nil {
			return err
		}
		nconns = conns.n()
	}
	defer conns.close()

	value := make([]byte, *size)
	fillRandom(value)
	// runCtx ends every stream when the command returns.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := make([]loadgen.Worker, bf.clients)
	for i := range workers {
		recs := make([]*loghousev1.Record, *batch)
		for j := range recs {
			recs[j] = &loghousev1.Record{Value: value}
		}
		req := &loghousev1.ProduceRequest{Records: recs}
		if producer != nil {
			workers[i] = loadgen.Call(func(ctx context.Context) (int, error) {
				if _, err := producer.Produce(ctx, recs...); err != nil {
					return 0, rpcError(err)
				}
				return len(recs), nil
			})
			continue
		}
		lc := loghousev1.NewLogClient(conns.get(i))
		if !*stream {
			workers[i] = loadgen.Call(func(ctx context.Context) (int, error) {
				if _, err := lc.Produce(ctx, req); err != nil {
					return 0, rpcError(err)
				}
				return len(recs), nil
			})
			continue
		}
		// Each stream has its own context, which the worker cancels
		// when the run's ends (a blocked Send or Recv then returns).
		sctx, scancel := context.WithCancel(runCtx)
		ps, err := lc.ProduceStream(sctx)
		if err != nil {
			scancel()
			return rpcError(err)
		}
		workers[i] = &produceStreamWorker{stream: ps, req: req, cancel: scancel}
	}
	desc := benchDesc{
		Command: "produce", Target: leader, Clients: bf.clients, Conns: nconns,
		RecordBytes: *size, RecordsPerRequest: *batch, Stream: *stream, Shared: *shared, Inflight: *inflight, Rate: *rate,
		DurationSec: bf.duration.Seconds(), WarmupSec: bf.warmup.Seconds(),
	}
	res, err := bf.run(ctx, stderr, loadgen.Config{
		RecordsPerOp: *batch, RecordBytes: *size, Rate: *rate, Inflight: *inflight,
		Warmup: bf.warmup, Duration: bf.duration,
	}, workers)
	cancel()
	if err != nil {
		return err
	}
	return bf.print(stdout, desc, res)
}

// produceStreamWorker pipelines requests on one ProduceStream.
type produceStreamWorker struct {
	stream loghousev1.Log_ProduceStreamClient
	req    *loghousev1.ProduceRequest
	sent   uint64 // sequence of the next request
	recvd  uint64 // sequence of the next response expected
	cancel context.CancelFunc
}

// Send sends the next request. gRPC has marshalled it when Send returns,
// so the request is reused.
func (w *produceStreamWorker) Send(ctx context.Context) error {
	stop := context.AfterFunc(ctx, w.cancel)
	defer stop()
	w.req.Sequence = w.sent
	w.sent++
	if err := w.stream.Send(w.req); err != nil {
		if errors.Is(err, io.EOF) {
			// The stream has ended (the server ended it, or its
			// context was cancelled). Only Recv may learn why: gRPC
			// forbids a second, concurrent Recv here, and the
			// receiving goroutine's next Recv returns the status.
			return nil
		}
		return rpcError(err)
	}
	return nil
}

func (w *produceStreamWorker) Recv(ctx context.Context) (int, error) {
	stop := context.AfterFunc(ctx, w.cancel)
	defer stop()
	resp, err := w.stream.Recv()
	if err != nil {
		return 0, rpcError(err)
	}
	if e := resp.GetError(); e != nil {
		return 0, rpcError(status.Error(codes.Code(e.GetCode()), e.GetMessage()))
	}
	if resp.GetSequence() != w.recvd {
		return 0, fmt.Errorf("ProduceStream answered sequence %d, want %d", resp.GetSequence(), w.recvd)
	}
	w.recvd++
	return int(resp.GetCount()), nil
}

// benchConsume runs "loghoused bench consume".
func benchConsume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench consume", stderr)
	var bf benchFlags
	bf.register(fs, "consumers", "concurrent consumers (clients), each reading the whole range", 0)
	offset := fs.Uint64("offset", 0, "first offset to read")
	n := fs.Uint64("n", 0, "records per consumer (0: up to the end of the log when the consumer starts)")
	maxRecords := fs.Uint("max-records", 0, "records per response (0: the server's limit)")
	unary := fs.Bool("unary", false, "read with unary Consume calls instead of ConsumeStream")
	leaderOnly := fs.Bool("leader", false, "read from the leader (default: the followers in turn, or the only server)")
	if help, err := parseBenchFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("bench consume takes no arguments, got %q", fs.Args())}
	}
	if err := bf.check("consumers"); err != nil {
		return err
	}
	if *maxRecords > 1<<31 {
		return usageError{fmt.Sprintf("-max-records %d is too large", *maxRecords)}
	}
	cl, err := bf.connect(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = cl.Close() }() // only connections to close; errors reported below matter more
	targets, err := benchReaders(ctx, &bf.clientFlags, cl, *leaderOnly)
	if err != nil {
		return err
	}
	conns, err := bf.dial(ctx, targets)
	if err != nil {
		return err
	}
	defer conns.close()

	// runCtx ends every stream when the command returns.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := make([]loadgen.Worker, bf.clients)
	var size, recordSize int
	for i := range workers {
		lc := loghousev1.NewLogClient(conns.get(i))
		// Where this consumer stops: -n records, or the end of the log
		// on its server now.
		cctx, ccancel := bf.ctx(ctx)
		first, err := lc.Consume(cctx, &loghousev1.ConsumeRequest{Start: &loghousev1.ConsumeRequest_Offset{Offset: *offset}, MaxRecords: 1})
		ccancel()
		if err != nil {
			return rpcError(err)
		}
		if recs := first.GetRecords(); len(recs) > 0 && recordSize == 0 {
			recordSize = len(recs[0].GetValue()) + len(recs[0].GetKey())
		}
		end := first.GetCommittedOffset()
		if *n > 0 {
			end = *offset + *n
		}
		if end <= *offset {
			return fmt.Errorf("nothing to read: the log on %s ends at offset %d (first %d); produce some records first", conns.target(i), first.GetCommittedOffset(), first.GetFirstOffset())
		}
		size = max(size, int(end-*offset))
		req := &loghousev1.ConsumeRequest{Start: &loghousev1.ConsumeRequest_Offset{Offset: *offset}, MaxRecords: uint32(*maxRecords)}
		cw := &consumeWorker{next: *offset, end: end}
		if *unary {
			workers[i] = loadgen.Call(func(ctx context.Context) (int, error) {
				if cw.next >= cw.end {
					return 0, loadgen.ErrDone
				}
				req.Start = &loghousev1.ConsumeRequest_Offset{Offset: cw.next}
				resp, err := lc.Consume(ctx, req)
				if err != nil {
					return 0, rpcError(err)
				}
				return cw.take(resp), nil
			})
			continue
		}
		sctx, scancel := context.WithCancel(runCtx)
		st, err := lc.ConsumeStream(sctx, req)
		if err != nil {
			scancel()
			return rpcError(err)
		}
		cw.stream, cw.cancel = st, scancel
		workers[i] = cw
	}
	desc := benchDesc{
		Command: "consume", Target: strings.Join(targets, ","), Clients: bf.clients, Conns: conns.n(),
		RecordBytes: recordSize, Stream: !*unary, Offset: *offset, RecordsPerClient: uint64(size),
		MaxRecords: uint32(*maxRecords), DurationSec: bf.duration.Seconds(), WarmupSec: bf.warmup.Seconds(),
	}
	res, err := bf.run(ctx, stderr, loadgen.Config{
		RecordBytes: recordSize, Warmup: bf.warmup, Duration: bf.duration,
	}, workers)
	cancel()
	if err != nil {
		return err
	}
	return bf.print(stdout, desc, res)
}

// consumeWorker reads [next, end) from a ConsumeStream (or, through
// loadgen.Call, with Consume).
type consumeWorker struct {
	stream    loghousev1.Log_ConsumeStreamClient
	cancel    context.CancelFunc
	next, end uint64
}

// Send does nothing: the server streams on its own.
func (*consumeWorker) Send(context.Context) error { return nil }

func (w *consumeWorker) Recv(ctx context.Context) (int, error) {
	if w.next >= w.end {
		return 0, loadgen.ErrDone
	}
	stop := context.AfterFunc(ctx, w.cancel)
	defer stop()
	resp, err := w.stream.Recv()
	if err != nil {
		return 0, rpcError(err)
	}
	return w.take(resp), nil
}

// take advances past resp's records and returns how many of them are
// before end.
func (w *consumeWorker) take(resp *loghousev1.ConsumeResponse) int {
	n := len(resp.GetRecords())
	next := resp.GetNextOffset()
	if next > w.end {
		n -= int(min(next-w.end, uint64(n)))
	}
	if n == 0 && next <= w.next {
		// Nothing new (a unary read at the end): stop rather than
		// spin.
		w.next = w.end
		return 0
	}
	w.next = next
	return n
}

// benchLeader returns the leader's address, resolving the cluster until
// one is known (within -timeout).
func benchLeader(ctx context.Context, cf *clientFlags, cl *client.Client) (string, error) {
	cctx, cancel := cf.ctx(ctx)
	defer cancel()
	// Status on the leader makes the client find it, with retries.
	if _, err := cl.Status(cctx, ""); err != nil {
		return "", rpcError(err)
	}
	if l := cl.Leader(); l != "" {
		return l, nil
	}
	return "", errors.New("no leader known")
}

// benchReaders returns the addresses consumers read from: the followers,
// or the leader alone when there are none or leaderOnly.
func benchReaders(ctx context.Context, cf *clientFlags, cl *client.Client, leaderOnly bool) ([]string, error) {
	cctx, cancel := cf.ctx(ctx)
	defer cancel()
	servers, err := cl.Servers(cctx)
	if err != nil {
		return nil, rpcError(err)
	}
	var leader string
	var followers []string
	for _, s := range servers {
		if s.GetIsLeader() {
			leader = s.GetRpcAddr()
		} else {
			followers = append(followers, s.GetRpcAddr())
		}
	}
	if leaderOnly || len(followers) == 0 {
		if leader == "" {
			return nil, errors.New("no leader known")
		}
		return []string{leader}, nil
	}
	return followers, nil
}

// benchConns are the connections the clients share, round-robin.
type benchConns struct {
	ccs     []*grpc.ClientConn
	targets []string
}

func (c *benchConns) get(i int) *grpc.ClientConn { return c.ccs[i%len(c.ccs)] }
func (c *benchConns) target(i int) string        { return c.targets[i%len(c.targets)] }
func (c *benchConns) n() int                     { return len(c.ccs) }

func (c *benchConns) close() {
	for _, cc := range c.ccs {
		_ = cc.Close() // the benchmark is over; nothing to do about it
	}
}

// dial opens -conns connections (one per client by default) over the
// targets in turn, each with the command's mutual TLS, and waits until
// each is ready, so that connecting is not measured.
func (b *benchFlags) dial(ctx context.Context, targets []string) (*benchConns, error) {
	tlsCfg, err := client.TLSConfigFromFiles(b.caCert, b.cert, b.key)
	if err != nil {
		return nil, err
	}
	n := b.conns
	if n == 0 || n > b.clients {
		n = b.clients
	}
	cs := &benchConns{}
	cctx, cancel := b.ctx(ctx)
	defer cancel()
	for i := range n {
		target := targets[i%len(targets)]
		cc, err := dialReady(cctx, target, tlsCfg)
		if err != nil {
			cs.close()
			return nil, err
		}
		cs.ccs = append(cs.ccs, cc)
		cs.targets = append(cs.targets, target)
	}
	return cs, nil
}

func dialReady(ctx context.Context, addr string, tlsCfg *tls.Config) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		// A consume response may be up to the server's limit; the
		// product's client decodes it (client.Codec).
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30), grpc.ForceCodecV2(client.Codec{})))
	if err != nil {
		return nil, fmt.Errorf("connection to %s: %w", addr, err)
	}
	cc.Connect()
	for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
		if !cc.WaitForStateChange(ctx, s) {
			_ = cc.Close() // failing anyway
			return nil, fmt.Errorf("connection to %s: %s after %w", addr, s, ctx.Err())
		}
	}
	return cc, nil
}

// run runs the load with a progress line on stderr.
func (b *benchFlags) run(ctx context.Context, stderr io.Writer, cfg loadgen.Config, workers []loadgen.Worker) (loadgen.Result, error) {
	tty := isTerminal(stderr)
	if b.progress > 0 {
		cfg.ProgressInterval = b.progress
		cfg.Progress = func(p loadgen.Progress) {
			phase := "measuring"
			if p.Warmup {
				phase = "warming up"
			}
			line := fmt.Sprintf("bench: %6.1fs %-10s %12s records/s  mean %s  records %s  errors %d",
				p.Elapsed.Seconds(), phase, thousands(p.RecordsPerSec), fmtMs(float64(p.MeanLatency)/1e6), thousands(float64(p.Records)), p.Errors)
			if tty {
				fmt.Fprintf(stderr, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(stderr, line)
			}
		}
	}
	var prof *os.File
	if b.cpuProf != "" {
		var err error
		if prof, err = os.Create(b.cpuProf); err != nil {
			return loadgen.Result{}, usageError{fmt.Sprintf("-cpuprofile: %v", err)}
		}
		if err := pprof.StartCPUProfile(prof); err != nil {
			_ = prof.Close() // failing anyway
			return loadgen.Result{}, fmt.Errorf("-cpuprofile: %w", err)
		}
	}
	res, err := loadgen.Run(ctx, cfg, workers)
	if prof != nil {
		pprof.StopCPUProfile()
		if cerr := prof.Close(); cerr != nil && err == nil {
			return res, fmt.Errorf("-cpuprofile: %w", cerr)
		}
	}
	if tty && b.progress > 0 {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return res, usageError{err.Error()}
	}
	return res, nil
}

// benchDesc says what was run, for the report.
type benchDesc struct {
	Command           string  `json:"command"`
	Target            string  `json:"target"`
	Clients           int     `json:"clients"`
	Conns             int     `json:"conns"`
	RecordBytes       int     `json:"record_bytes"`
	RecordsPerRequest int     `json:"records_per_request,omitempty"`
	Stream            bool    `json:"stream"`
	Shared            bool    `json:"shared,omitempty"`
	Inflight          int     `json:"inflight,omitempty"`
	Rate              float64 `json:"target_rate,omitempty"`
	Offset            uint64  `json:"offset,omitempty"`
	RecordsPerClient  uint64  `json:"records_per_client,omitempty"`
	MaxRecords        uint32  `json:"max_records,omitempty"`
	DurationSec       float64 `json:"duration_s"`
	WarmupSec         float64 `json:"warmup_s"`
}

// print writes the result for people or, with -json, machines, and fails
// if a client failed.
func (b *benchFlags) print(stdout io.Writer, d benchDesc, res loadgen.Result) error {
	if b.asJSON {
		out, err := json.MarshalIndent(struct {
			benchDesc
			Result loadgen.Result `json:"result"`
		}{d, res}, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(out))
	} else {
		printBench(stdout, d, res)
	}
	if res.Errors > 0 {
		return fmt.Errorf("%d of %d clients failed; the first: %s", res.Errors, d.Clients, res.FirstError)
	}
	return nil
}

func printBench(w io.Writer, d benchDesc, res loadgen.Result) {
	plural := func(n int, s string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, s)
		}
		return fmt.Sprintf("%d %ss", n, s)
	}
	loop := "closed loop"
	if d.Rate > 0 {
		loop = fmt.Sprintf("open loop at %s records/s", thousands(d.Rate))
	}
	per := "request"
	switch d.Command {
	case "produce":
		how := "unary Produce"
		switch {
		case d.Stream:
			how = fmt.Sprintf("ProduceStream, %d in flight", d.Inflight)
		case d.Shared:
			how = "calls of one shared batching Producer"
			per = "call"
		}
		fmt.Fprintf(w, "produce: %s, %s of %d B per %s, %s, %s\n", plural(d.Clients, "producer"), plural(d.RecordsPerRequest, "record"), d.RecordBytes, per, how, loop)
	case "consume":
		how := "unary Consume"
		if d.Stream {
			how = "ConsumeStream"
			per = "response"
		}
		fmt.Fprintf(w, "consume: %s, each up to %s records from offset %d, %s\n", plural(d.Clients, "consumer"), thousands(float64(d.RecordsPerClient)), d.Offset, how)
	}
	fmt.Fprintf(w, "         %s on %s, %s measured after %s warm-up\n",
		plural(d.Conns, "connection"), d.Target, time.Duration(d.DurationSec*float64(time.Second)), time.Duration(d.WarmupSec*float64(time.Second)))
	fmt.Fprintf(w, "records: %s in %.2fs: %s records/s, %.2f MB/s, %s %ss/s\n",
		thousands(float64(res.Records)), res.ElapsedSec, thousands(res.RecordsPerSec), res.MBPerSec, thousands(res.OpsPerSec), per)
	l := res.Latency
	from := "send"
	if d.Rate > 0 {
		from = "intended send time"
	}
	fmt.Fprintf(w, "latency: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (per %s, from %s, %s %ss)\n",
		fmtMs(l.P50Ms), fmtMs(l.P90Ms), fmtMs(l.P99Ms), fmtMs(l.P999Ms), fmtMs(l.MaxMs), per, from, thousands(float64(l.Count)), per)
	fmt.Fprintf(w, "errors:  %d", res.Errors)
	if res.FirstError != "" {
		fmt.Fprintf(w, " (first: %s)", res.FirstError)
	}
	if res.Backlog > 0 {
		fmt.Fprintf(w, "; behind the -rate schedule by %s %ss at the end", thousands(float64(res.Backlog)), per)
	}
	fmt.Fprintln(w)
}

// fmtMs prints milliseconds with three significant digits.
func fmtMs(ms float64) string {
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	case ms >= 1:
		return fmt.Sprintf("%.2fms", ms)
	}
	return fmt.Sprintf("%.3fms", ms)
}

// thousands prints a non-negative number rounded, with thousands
// separators.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	if len(s) <= 3 || strings.HasPrefix(s, "-") {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	b.WriteString(s[:pre])
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// fillRandom fills b with pseudo-random bytes (not compressible, not
// secret).
func fillRandom(b []byte) {
	r := rand.New(rand.NewPCG(uint64(len(b)), 0x10c4))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}
