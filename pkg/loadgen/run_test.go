package loadgen

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer serves one operation at a time per fakeServer, taking
// service each: a queue in front of a single server.
type fakeServer struct {
	mu      sync.Mutex
	service time.Duration
}

func (s *fakeServer) serve(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := time.NewTimer(s.service)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pipe is a pipelined Worker over a fakeServer: Send queues, a goroutine
// serves in order, Recv takes results in order.
type pipe struct {
	srv     *fakeServer
	records int
	results chan error
	// outstanding is sent and not yet received; most is its maximum.
	outstanding, most atomic.Int64

	mu    sync.Mutex
	sends []time.Time // when each Send was called
}

func (p *pipe) Send(ctx context.Context) error {
	p.mu.Lock()
	p.sends = append(p.sends, time.Now())
	p.mu.Unlock()
	n := p.outstanding.Add(1)
	for m := p.most.Load(); n > m && !p.most.CompareAndSwap(m, n); m = p.most.Load() {
	}
	go func() {
		// Completion order equals send order only because the server
		// is serial and the goroutines queue on its mutex in order
		// most of the time; Recv does not care which finished.
		p.results <- p.srv.serve(ctx)
	}()
	return nil
}

func (p *pipe) Recv(ctx context.Context) (int, error) {
	select {
	case err := <-p.results:
		p.outstanding.Add(-1)
		return p.records, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func TestConfigValidation(t *testing.T) {
	ok := Config{Duration: time.Millisecond}
	tests := []struct {
		name    string
		cfg     Config
		workers int
	}{
		{"no workers", ok, 0},
		{"no duration", Config{}, 1},
		{"negative rate", Config{Duration: time.Second, Rate: -1}, 1},
		{"negative warm-up", Config{Duration: time.Second, Warmup: -1}, 1},
		{"progress without interval", Config{Duration: time.Second, Progress: func(Progress) {}}, 1},
		{"negative inflight", Config{Duration: time.Second, Inflight: -2}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := make([]Worker, tt.workers)
			for i := range ws {
				ws[i] = Call(func(context.Context) (int, error) { return 1, nil })
			}
			if _, err := Run(context.Background(), tt.cfg, ws); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Run = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestClosedLoop: throughput and counts add up, records per op included,
// and warm-up operations are not measured.
func TestClosedLoop(t *testing.T) {
	var calls atomic.Int64
	ws := make([]Worker, 3)
	for i := range ws {
		ws[i] = Call(func(context.Context) (int, error) {
			calls.Add(1)
			time.Sleep(time.Millisecond) // the operation's cost, not a wait for a condition
			return 4, nil
		})
	}
	var progress []Progress
	res, err := Run(context.Background(), Config{
		RecordsPerOp: 4, RecordBytes: 100, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond,
		Progress: func(p Progress) { progress = append(progress, p) }, ProgressInterval: 20 * time.Millisecond,
	}, ws)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Ops == 0 || res.Records != 4*res.Ops || res.Errors != 0 || res.Backlog != 0 {
		t.Fatalf("ops %d records %d errors %d backlog %d", res.Ops, res.Records, res.Errors, res.Backlog)
	}
	if res.Ops >= calls.Load() {
		t.Fatalf("measured %d of %d calls: the warm-up was measured", res.Ops, calls.Load())
	}
	if res.ElapsedSec < 0.199 || res.ElapsedSec > 0.201 {
		t.Fatalf("elapsed %vs, want the duration", res.ElapsedSec)
	}
	if d := res.MBPerSec - res.RecordsPerSec*100/1e6; d > 1e-9 || d < -1e-9 {
		t.Fatalf("MB/s %v for %v records/s of 100 bytes", res.MBPerSec, res.RecordsPerSec)
	}
	if res.Latency.Count != uint64(res.Ops) || res.Latency.P50Ms < 1 || res.Latency.MaxMs < res.Latency.P99Ms {
		t.Fatalf("latency %+v", res.Latency)
	}
	if len(progress) < 2 || !progress[0].Warmup || progress[len(progress)-1].Warmup {
		t.Fatalf("progress %+v", progress)
	}
}

// TestOpenLoopCountsQueueing: a server that takes 4ms per operation, asked
// for one every 2ms, falls behind; latency from the intended send time
// shows the growing queue (a closed loop would report 4ms throughout),
// the achieved rate is the server's, not the target, and the backlog
// shows.
func TestOpenLoopCountsQueueing(t *testing.T) {
	srv := &fakeServer{service: 4 * time.Millisecond}
	w := Call(func(ctx context.Context) (int, error) { return 1, srv.serve(ctx) })
	res, err := Run(context.Background(), Config{Rate: 500, Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond}, []Worker{w})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	// 200 due in 400ms; at most 100 served, 75 in the measured 300ms,
	// which waited from ~50ms (100ms in, 25 behind) to ~200ms. Only
	// bounds a slower machine cannot break are checked: no more served
	// than the server can, no less backlog than it must leave.
	if res.Ops < 1 || res.Ops > 80 || res.Backlog < 95 {
		t.Fatalf("ops %d backlog %d, want at most 80 and at least 95 (about 75 and 125)", res.Ops, res.Backlog)
	}
	if res.Latency.MaxMs < 100 || res.Latency.P50Ms < 30 {
		t.Fatalf("latency %+v: queueing is hidden", res.Latency)
	}
	if res.RecordsPerSec > 270 {
		t.Fatalf("%v records/s from a server that does 250/s", res.RecordsPerSec)
	}
}

// TestSlowerThanThePeriod: operations slower than the whole measured
// period still count when they complete in it.
func TestSlowerThanThePeriod(t *testing.T) {
	p := &pipe{srv: &fakeServer{service: 30 * time.Millisecond}, records: 1, results: make(chan error, 16)}
	// 16 queued at once at the start take 480ms; the period is
	// 100-300ms: about 7 complete in it, each having waited about 100ms
	// or more.
	start := time.Now()
	res, err := Run(context.Background(), Config{Inflight: 16, Warmup: 100 * time.Millisecond, Duration: 200 * time.Millisecond}, []Worker{p})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	p.mu.Lock()
	sends := p.sends
	p.mu.Unlock()
	if len(sends) < 16 {
		t.Fatalf("%d sends, want the 16 in flight at once", len(sends))
	}
	burst := sends[15].Sub(start) // all 16 were sent by then
	// An operation counted completed after the period began, no earlier
	// than start+100ms, and was sent by start+burst: its latency, measured
	// from its send, is at least 100ms-burst. (A loaded machine may start
	// the sends late, so the bound is not simply 100ms.) Latency measured
	// from the period's start instead would be near 0 for the first.
	want := float64(100*time.Millisecond-burst) / float64(time.Millisecond)
	if res.Ops < 1 || res.Ops > 8 || res.Latency.MinMs < want {
		t.Fatalf("ops %d latency %+v, want 1-8 ops each waiting at least %.1fms", res.Ops, res.Latency, want)
	}
}

// TestOpenLoopOnTime: at a modest rate the open loop keeps its schedule:
// never ahead of it, and every operation due is completed or counted as
// backlog.
func TestOpenLoopOnTime(t *testing.T) {
	ws := make([]Worker, 2)
	for i := range ws {
		ws[i] = Call(func(context.Context) (int, error) { return 2, nil })
	}
	res, err := Run(context.Background(), Config{Rate: 2000, RecordsPerOp: 2, Warmup: 50 * time.Millisecond, Duration: 500 * time.Millisecond}, ws)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	// 2000 records/s of 2 per op over 500ms: 500 ops are due in the
	// period. The open loop never sends ahead of its schedule, whatever
	// the machine; what a slow machine does not complete in time is
	// counted as backlog, not lost. (No lower bound on the rate: this is
	// a test, not a benchmark.)
	if res.Ops > 510 || res.Records != 2*res.Ops || res.RecordsPerSec > 2100 {
		t.Fatalf("ops %d, records %d, %v records/s: faster than the target of 2000", res.Ops, res.Records, res.RecordsPerSec)
	}
	if res.Ops+res.Backlog < 490 {
		t.Fatalf("ops %d + backlog %d: fewer than the 500 due", res.Ops, res.Backlog)
	}
}

// TestPipelined: with a window of 8 over a 2ms serial server, exactly 8
// operations are in flight at the most, the window fills, and latency is
// measured from each send, so it includes the wait behind the others (at
// least ~8 service times at the median; no upper bound is checked: the
// machine may be slower, never faster, than the fake server's timer).
func TestPipelined(t *testing.T) {
	p := &pipe{srv: &fakeServer{service: 2 * time.Millisecond}, records: 10, results: make(chan error, 64)}
	res, err := Run(context.Background(), Config{RecordsPerOp: 10, Inflight: 8, Duration: 300 * time.Millisecond}, []Worker{p})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Ops == 0 || res.Records != 10*res.Ops || res.OpsPerSec > 520 {
		t.Fatalf("%v ops/s, %d records for %d ops (a 2ms serial server serves at most 500/s)", res.OpsPerSec, res.Records, res.Ops)
	}
	if got := p.most.Load(); got != 8 {
		t.Fatalf("at most %d operations in flight, want the window of 8", got)
	}
	if res.Latency.P50Ms < 8 {
		t.Fatalf("latency %+v: the median waited behind fewer than 4 others", res.Latency)
	}
}

// TestWorkerErrorsAndDone: a failing worker stops and is counted; workers
// that run out of work end the run early.
func TestWorkerErrorsAndDone(t *testing.T) {
	boom := errors.New("boom")
	var n atomic.Int64
	failing := Call(func(context.Context) (int, error) {
		if n.Add(1) > 3 {
			return 0, boom
		}
		return 1, nil
	})
	left := atomic.Int64{}
	left.Store(100)
	finite := Call(func(context.Context) (int, error) {
		if left.Add(-1) < 0 {
			return 0, ErrDone
		}
		return 1, nil
	})
	start := time.Now()
	res, err := Run(context.Background(), Config{Duration: 10 * time.Second}, []Worker{failing, finite})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if time.Since(start) > 5*time.Second {
		t.Fatal("the run did not end when its workers had")
	}
	if res.Errors != 1 || res.FirstError != "boom" || res.Records != 103 {
		t.Fatalf("errors %d %q records %d", res.Errors, res.FirstError, res.Records)
	}
	if res.ElapsedSec > 5 {
		t.Fatalf("elapsed %vs: should end with the last worker", res.ElapsedSec)
	}
}

// TestPipelinedSendError: a Send that fails stops the worker without
// hanging its receiver.
func TestPipelinedSendError(t *testing.T) {
	w := &failingSend{}
	res, err := Run(context.Background(), Config{Inflight: 4, Duration: 5 * time.Second}, []Worker{w})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 1 || res.FirstError != "send failed" {
		t.Fatalf("%+v", res)
	}
}

type failingSend struct{ n int }

func (w *failingSend) Send(context.Context) error {
	w.n++
	if w.n > 2 {
		return errors.New("send failed")
	}
	return nil
}

func (w *failingSend) Recv(ctx context.Context) (int, error) {
	<-ctx.Done() // never completes: only cancellation ends it
	return 0, ctx.Err()
}

// TestCancel: the caller's context ends the run.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	w := Call(func(ctx context.Context) (int, error) {
		cancel()
		<-ctx.Done()
		return 0, ctx.Err()
	})
	res, err := Run(ctx, Config{Duration: time.Hour}, []Worker{w})
	if err != nil || res.Errors != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

// TestEndIsNotAnError: the end of the run reaches workers as a
// cancellation without a deadline (an RPC would carry a deadline to its
// server, whose timer could fail the call a moment before the run's
// context says it has ended); what a worker returns once it ends, whatever
// the error, is not counted.
func TestEndIsNotAnError(t *testing.T) {
	call := func(ctx context.Context) (int, error) {
		if _, ok := ctx.Deadline(); ok {
			return 0, errors.New("the worker got a deadline")
		}
		<-ctx.Done()
		return 0, errors.New("rpc error: code = Canceled") // not ctx.Err() itself
	}
	res, err := Run(context.Background(), Config{Duration: 50 * time.Millisecond}, []Worker{Call(call), Call(call)})
	if err != nil || res.Errors != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}
