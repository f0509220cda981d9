package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrDone is what a Worker's Recv returns when it has no more work (a
// consumer that reached the end of the log): the worker stops, and the run
// ends early once every worker has.
var ErrDone = errors.New("loadgen: worker done")

// ErrInvalidConfig means a Config failed validation.
var ErrInvalidConfig = errors.New("loadgen: invalid config")

// Worker is one client of the system under test: one connection or stream.
// Send starts one operation; Recv waits for the oldest operation not yet
// received to complete and returns how many records it carried. With
// Config.Inflight 1, Run calls Send and Recv alternately from one
// goroutine; with more, it calls Send from one goroutine and Recv from
// another, with at most Inflight operations sent and not yet received.
// When ctx ends, both should return promptly.
type Worker interface {
	Send(ctx context.Context) error
	Recv(ctx context.Context) (records int, err error)
}

// Call makes a Worker of a function that performs one whole operation and
// returns how many records it carried (a unary RPC); use it with
// Config.Inflight 1.
func Call(fn func(ctx context.Context) (int, error)) Worker { return &callWorker{fn: fn} }

type callWorker struct {
	fn  func(ctx context.Context) (int, error)
	n   int
	err error
}

func (w *callWorker) Send(ctx context.Context) error {
	w.n, w.err = w.fn(ctx)
	return nil
}

func (w *callWorker) Recv(context.Context) (int, error) { return w.n, w.err }

// Config describes a run. Durations must be set by the caller.
type Config struct {
	// RecordsPerOp is how many records one operation carries when the
	// schedule is computed (the open loop's rate is in records).
	// Default 1.
	RecordsPerOp int
	// RecordBytes is the size of a record, for MB/s.
	RecordBytes int
	// Rate is the target in records per second over all workers; 0 runs
	// a closed loop, each worker as fast as it goes.
	Rate float64
	// Inflight bounds the operations each worker has sent and not yet
	// received. Default 1.
	Inflight int
	// Warmup is run, unmeasured, before Duration.
	Warmup time.Duration
	// Duration is the measured period: operations that complete in it
	// are measured. When it ends, the run ends; operations still
	// outstanding are abandoned (their contexts end).
	Duration time.Duration
	// Progress, if set, is called every ProgressInterval from a goroutine
	// of Run's, and once more at the end.
	Progress         func(Progress)
	ProgressInterval time.Duration
}

// Progress is a snapshot of a running load.
type Progress struct {
	// Elapsed is the time since the start, warm-up included.
	Elapsed time.Duration
	// Warmup is true during the warm-up.
	Warmup bool
	// Records and Ops completed (all phases), and errors.
	Records, Ops, Errors int64
	// RecordsPerSec and MeanLatency are over the last interval.
	RecordsPerSec float64
	MeanLatency   time.Duration
}

// Result is what a run measured.
type Result struct {
	Workers      int     `json:"workers"`
	RecordsPerOp int     `json:"records_per_op"`
	RecordBytes  int     `json:"record_bytes"`
	Inflight     int     `json:"inflight"`
	TargetRate   float64 `json:"target_rate,omitempty"`
	WarmupSec    float64 `json:"warmup_s"`
	// ElapsedSec is the measured period: Duration, or less if every
	// worker ran out of work (ErrDone) sooner.
	ElapsedSec    float64 `json:"elapsed_s"`
	Ops           int64   `json:"ops"`
	Records       int64   `json:"records"`
	RecordsPerSec float64 `json:"records_per_s"`
	MBPerSec      float64 `json:"mb_per_s"`
	OpsPerSec     float64 `json:"ops_per_s"`
	// Latency is per measured operation, from its intended send time
	// (open loop) or its send (closed loop) to its completion.
	Latency Summary `json:"latency"`
	// Errors counts failed operations (each worker stops at its first);
	// FirstError is the first of them.
	Errors     int64  `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
	// Backlog counts, in the open loop, the operations due before the
	// end that had not completed when it came (sent or not): more than
	// the workers' Inflight means the system did not keep up with Rate.
	Backlog int64 `json:"backlog,omitempty"`

	hist *Histogram
}

// Histogram returns the merged latency histogram (nanoseconds).
func (r *Result) Histogram() *Histogram { return r.hist }

func (c Config) validate(workers int) (Config, error) {
	if c.RecordsPerOp == 0 {
		c.RecordsPerOp = 1
	}
	if c.Inflight == 0 {
		c.Inflight = 1
	}
	var problems []error
	if workers < 1 {
		problems = append(problems, errors.New("no workers"))
	}
	if c.RecordsPerOp < 0 || c.Inflight < 0 || c.RecordBytes < 0 {
		problems = append(problems, fmt.Errorf("negative records per op (%d), inflight (%d) or record bytes (%d)", c.RecordsPerOp, c.Inflight, c.RecordBytes))
	}
	if c.Rate < 0 {
		problems = append(problems, fmt.Errorf("negative rate %v", c.Rate))
	}
	if c.Duration <= 0 || c.Warmup < 0 {
		problems = append(problems, fmt.Errorf("duration %s must be positive, warm-up %s not negative", c.Duration, c.Warmup))
	}
	if c.Progress != nil && c.ProgressInterval <= 0 {
		problems = append(problems, fmt.Errorf("progress interval %s must be positive", c.ProgressInterval))
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(problems...))
	}
	return c, nil
}

// counters are shared by the workers and the progress reporter.
type counters struct {
	records, ops, errs atomic.Int64
	latSum             atomic.Int64 // nanoseconds, for the progress mean
}

// workerState is one worker's measurements, merged after the run.
type workerState struct {
	hist      Histogram
	ops, recs int64 // measured
	due       int64 // open loop: operations scheduled before the end
	completed int64 // operations completed, all phases

	mu         sync.Mutex // the sender and the receiver may both fail
	err        error
	errAt      time.Time
	finished   bool // the worker returned ErrDone
	finishedAt time.Time
}

// schedule is the fixed timetable of one worker's intended send times.
type schedule struct {
	open     bool
	start    time.Time
	interval time.Duration
	k        int64
}

// next returns the intended time of the next operation: on the timetable
// in the open loop, now in the closed loop.
func (s *schedule) next() time.Time {
	if !s.open {
		return time.Now()
	}
	t := s.start.Add(time.Duration(s.k) * s.interval)
	s.k++
	return t
}

// dueBefore counts the timetable's operations before end.
func (s *schedule) dueBefore(end time.Time) int64 {
	if !s.open || !s.start.Before(end) {
		return 0
	}
	return int64((end.Sub(s.start)-1)/s.interval) + 1
}

// Run drives workers under cfg until the measured period is over, every
// worker has stopped, or ctx ends, and returns what it measured. It fails
// only for an invalid cfg; workers' errors are in the Result.
func Run(ctx context.Context, cfg Config, workers []Worker) (Result, error) {
	cfg, err := cfg.validate(len(workers))
	if err != nil {
		return Result{}, err
	}
	var c counters
	states := make([]*workerState, len(workers))
	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	measureTo := measureFrom.Add(cfg.Duration)
	// The end is a cancellation, not a deadline: a deadline would travel
	// with RPCs (gRPC sends it to the server), whose timers can fail a
	// call with DeadlineExceeded a moment before this context reports its
	// end, and that would count as the worker's error.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	endTimer := time.AfterFunc(time.Until(measureTo), stopRun)
	defer endTimer.Stop()

	var interval time.Duration
	if cfg.Rate > 0 {
		perWorker := cfg.Rate / float64(len(workers)) / float64(cfg.RecordsPerOp) // ops/s
		interval = time.Duration(float64(time.Second) / perWorker)
		interval = max(interval, 1)
	}

	var wg sync.WaitGroup
	for i, w := range workers {
		st := &workerState{}
		states[i] = st
		sch := &schedule{open: cfg.Rate > 0, interval: interval,
			// Spread the workers' timetables over one interval.
			start: start.Add(time.Duration(int64(interval) * int64(i) / int64(len(workers))))}
		st.due = sch.dueBefore(measureTo)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cfg.Inflight == 1 {
				runSerial(runCtx, w, sch, st, &c, measureFrom, measureTo)
			} else {
				runPipelined(runCtx, w, cfg.Inflight, sch, st, &c, measureFrom, measureTo)
			}
		}()
	}
	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()
	var progWG sync.WaitGroup
	stopProg := make(chan struct{})
	if cfg.Progress != nil {
		progWG.Add(1)
		go func() {
			defer progWG.Done()
			reportProgress(cfg, &c, start, measureFrom, stopProg)
		}()
	}
	<-allDone
	close(stopProg)
	progWG.Wait()
	return collect(cfg, states, measureFrom, measureTo), nil
}

// wait sleeps until t or until ctx ends; it reports whether t came.
func wait(ctx context.Context, timer *time.Timer, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(d)
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		if !timer.Stop() {
			<-timer.C
		}
		return false
	}
}

func newStoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// complete accounts one received operation intended at t: it is measured
// if it completed in [from, to).
func (st *workerState) complete(c *counters, t time.Time, n int, from, to time.Time) {
	now := time.Now()
	lat := now.Sub(t)
	c.records.Add(int64(n))
	c.ops.Add(1)
	c.latSum.Add(int64(lat))
	st.completed++
	if !now.Before(from) && now.Before(to) {
		st.hist.RecordDuration(lat)
		st.ops++
		st.recs += int64(n)
	}
}

// fail records a worker's error, unless it is the end of the run or of
// the worker's work.
func (st *workerState) fail(ctx context.Context, c *counters, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil || st.finished {
		return
	}
	if errors.Is(err, ErrDone) {
		st.finished, st.finishedAt = true, time.Now()
		return
	}
	if ctx.Err() != nil {
		return // the run's end, not the worker's failure
	}
	c.errs.Add(1)
	st.err, st.errAt = err, time.Now()
}

// runSerial sends and receives one operation at a time.
func runSerial(ctx context.Context, w Worker, sch *schedule, st *workerState, c *counters, from, to time.Time) {
	timer := newStoppedTimer()
	for {
		t := sch.next()
		if !t.Before(to) || !wait(ctx, timer, t) {
			return
		}
		err := w.Send(ctx)
		n := 0
		if err == nil {
			n, err = w.Recv(ctx)
		}
		if err != nil {
			st.fail(ctx, c, err)
			return
		}
		st.complete(c, t, n, from, to)
	}
}

// runPipelined sends from this goroutine and receives on another, with at
// most inflight operations sent and not yet received (slots). Intended
// times go from sender to receiver, in order, through times.
func runPipelined(ctx context.Context, w Worker, inflight int, sch *schedule, st *workerState, c *counters, from, to time.Time) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slots := make(chan struct{}, inflight)
	times := make(chan time.Time, inflight) // never full: at most inflight are sent
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for t := range times {
			n, err := w.Recv(ctx)
			if err != nil {
				st.fail(ctx, c, err)
				cancel()          // stops the sender, which closes times
				for range times { //nolint:revive // discarding what is left
				}
				return
			}
			st.complete(c, t, n, from, to)
			<-slots
		}
	}()
	timer := newStoppedTimer()
	func() {
		defer close(times)
		for {
			t := sch.next()
			if !t.Before(to) || !wait(ctx, timer, t) {
				return
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			if err := w.Send(ctx); err != nil {
				st.fail(ctx, c, err)
				cancel() // the receiver may wait for it
				return
			}
			times <- t
		}
	}()
	<-recvDone
}

// reportProgress calls cfg.Progress every interval until stop, then once
// more.
func reportProgress(cfg Config, c *counters, start, measureFrom time.Time, stop <-chan struct{}) {
	tick := time.NewTicker(cfg.ProgressInterval)
	defer tick.Stop()
	var lastRecs, lastOps, lastLat int64
	last := start
	report := func() {
		now := time.Now()
		recs, ops, lat := c.records.Load(), c.ops.Load(), c.latSum.Load()
		p := Progress{
			Elapsed: now.Sub(start), Warmup: now.Before(measureFrom),
			Records: recs, Ops: ops, Errors: c.errs.Load(),
		}
		if dt := now.Sub(last).Seconds(); dt > 0 {
			p.RecordsPerSec = float64(recs-lastRecs) / dt
		}
		if ops > lastOps {
			p.MeanLatency = time.Duration((lat - lastLat) / (ops - lastOps))
		}
		lastRecs, lastOps, lastLat, last = recs, ops, lat, now
		cfg.Progress(p)
	}
	for {
		select {
		case <-tick.C:
			report()
		case <-stop:
			report()
			return
		}
	}
}

// collect merges the workers' measurements.
func collect(cfg Config, states []*workerState, from, to time.Time) Result {
	res := Result{
		Workers: len(states), RecordsPerOp: cfg.RecordsPerOp, RecordBytes: cfg.RecordBytes,
		Inflight: cfg.Inflight, TargetRate: cfg.Rate, WarmupSec: cfg.Warmup.Seconds(),
		hist: &Histogram{},
	}
	end := to
	allFinished := true
	var lastFinish, firstErrAt time.Time
	for _, st := range states {
		res.hist.Merge(&st.hist)
		res.Ops += st.ops
		res.Records += st.recs
		if st.err == nil && !st.finished {
			res.Backlog += max(st.due-st.completed, 0)
		}
		if st.err != nil {
			res.Errors++
			if res.FirstError == "" || st.errAt.Before(firstErrAt) {
				res.FirstError, firstErrAt = st.err.Error(), st.errAt
			}
		}
		switch {
		case st.finished:
			if st.finishedAt.After(lastFinish) {
				lastFinish = st.finishedAt
			}
		case st.err == nil:
			allFinished = false
		}
	}
	// Workers that all ran out of work before the end measured only
	// until the last of them did.
	if allFinished && !lastFinish.IsZero() && lastFinish.Before(end) {
		end = lastFinish
	}
	res.ElapsedSec = max(end.Sub(from).Seconds(), 0)
	if res.ElapsedSec > 0 {
		res.RecordsPerSec = float64(res.Records) / res.ElapsedSec
		res.OpsPerSec = float64(res.Ops) / res.ElapsedSec
		res.MBPerSec = res.RecordsPerSec * float64(cfg.RecordBytes) / 1e6
	}
	res.Latency = res.hist.Summarize()
	return res
}
