package server

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/record"
	"github.com/loghouse/loghouse/pkg/replication"
)

// request is one produce request on its way through the committer. Its
// records are already in the batch encoding, in memory of their own (not
// gRPC's receive buffers), so they stay valid after a cancelled handler
// has returned.
type request struct {
	ctx  context.Context
	msg  *produceMsg
	done chan result // buffered: the committer never blocks on it
	// stream, on a follower, forwards the requests of one ProduceStream
	// in order; nil for a unary Produce.
	stream *streamForwarder
}

// result is what a request gets back: its records' first offset, their
// count and the entry's timestamp, or why it failed.
type result struct {
	base  uint64
	count uint32
	time  int64
	err   error
}

// batch is one raft entry being committed: the requests it holds, in the
// order their records appear in it.
type batch struct {
	reqs   []*request
	count  int
	future raft.ApplyFuture
}

// committer groups the produce requests of concurrent callers into raft
// entries (group commit). One goroutine forms batches and hands them to
// raft; a second waits for their futures in order and answers the
// requests. At most depth batches are between the two; while the limit is
// reached, requests wait in the queue and the next batch grows. Up to
// twice that many may be in flight while the queue holds a whole batch
// (maxBytes of records): batches cannot grow any more then, so holding
// them back would only leave raft idle between them.
type committer struct {
	raft     *raft.Raft
	logger   hclog.Logger
	timeout  time.Duration
	maxBytes int
	depth    int // batches in flight beyond which only full ones go

	mu          sync.Mutex
	queue       []*request // waiting for a batch, in arrival order
	queuedBytes int        // of the records in queue
	closed      bool

	wake     chan struct{}   // capacity 1: the queue is not empty
	freed    chan struct{}   // capacity 1: a slot was given back
	slots    chan struct{}   // one token per batch in flight
	inflight chan *batch     // from run to wait, in raft order
	stop     chan struct{}   // closed by close
	raftDown <-chan struct{} // closed once raft has shut down
	wg       sync.WaitGroup  // run and wait

	// batches counts the batches formed, and peak the most that were in
	// flight at once (for tests).
	batches atomic.Int64
	peak    atomic.Int64
}

// newCommitter starts the committer's two goroutines. raftDown must be
// closed once r has shut down.
func newCommitter(r *raft.Raft, cfg Config, logger hclog.Logger, raftDown <-chan struct{}) *committer {
	c := &committer{
		raftDown: raftDown,
		raft:     r,
		logger:   logger,
		timeout:  cfg.ApplyTimeout,
		maxBytes: cfg.MaxBatchBytes,
		depth:    cfg.MaxInflightApplies,
		wake:     make(chan struct{}, 1),
		freed:    make(chan struct{}, 1),
		slots:    make(chan struct{}, 2*cfg.MaxInflightApplies),
		inflight: make(chan *batch, 2*cfg.MaxInflightApplies),
		stop:     make(chan struct{}),
	}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		c.run()
	}()
	go func() {
		defer c.wg.Done()
		c.wait()
	}()
	return c
}

// submit queues r; its result arrives on r.done. The queue is not bounded
// here: each request in it belongs to a handler that waits for it, and
// ProduceStream bounds the requests of a stream.
func (c *committer) submit(r *request) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errServerClosed
	}
	c.queue = append(c.queue, r)
	c.queuedBytes += len(r.msg.body())
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	return nil
}

// close stops forming batches, fails the requests still queued, answers
// the batches in flight and waits for the goroutines to end.
func (c *committer) close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.stop)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// run forms batches: it takes a slot, then every queued request that fits
// the batch limits (at least one).
func (c *committer) run() {
	defer close(c.inflight)
	for {
		select {
		case c.slots <- struct{}{}:
		case <-c.stop:
			c.failQueued()
			return
		}
		// Beyond depth, only a full batch goes: wait for one to queue up
		// or for a batch in flight to finish.
		for !c.mayForm() {
			select {
			case <-c.wake:
			case <-c.freed:
			case <-c.stop:
				<-c.slots
				c.failQueued()
				return
			}
		}
		b := c.next()
		for b == nil {
			select {
			case <-c.wake:
				b = c.next()
			case <-c.stop:
				<-c.slots
				c.failQueued()
				return
			}
		}
		c.apply(b)
	}
}

// mayForm says whether run, holding a slot, may form the next batch now:
// with at most depth batches in flight (this one included), or when the
// queue holds at least a whole batch.
func (c *committer) mayForm() bool {
	if len(c.slots) <= c.depth {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queuedBytes >= c.maxBytes
}

// next takes the next batch off the queue, or returns nil if no request
// is queued. Requests whose callers have gone are answered and left out.
func (c *committer) next() *batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := &batch{}
	size, n := 0, 0
	for _, r := range c.queue {
		if len(b.reqs) > 0 && (size+len(r.msg.body()) > c.maxBytes || b.count+r.msg.count > record.MaxRecords) {
			break
		}
		n++
		if err := r.ctx.Err(); err != nil {
			r.done <- result{err: err}
			continue
		}
		b.reqs = append(b.reqs, r)
		b.count += r.msg.count
		size += len(r.msg.body())
	}
	for _, r := range c.queue[:n] {
		c.queuedBytes -= len(r.msg.body())
	}
	clear(c.queue[:n])
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil // let the backing array go
	}
	if len(b.reqs) == 0 {
		return nil
	}
	return b
}

// failQueued answers every queued request with errServerClosed.
func (c *committer) failQueued() {
	c.mu.Lock()
	q := c.queue
	c.queue, c.queuedBytes = nil, 0
	c.mu.Unlock()
	for _, r := range q {
		r.done <- result{err: errServerClosed}
	}
}

// apply joins b's requests into one record batch and hands it to raft
// and then to wait. A batch of one request uses the request's bytes,
// whose space for the batch header the codec left free.
func (c *committer) apply(b *batch) {
	c.batches.Add(1)
	var data []byte
	if len(b.reqs) == 1 {
		data = b.reqs[0].msg.buf
	} else {
		size := record.BatchHeaderSize
		for _, r := range b.reqs {
			size += len(r.msg.body())
		}
		data = make([]byte, record.BatchHeaderSize, size)
		for _, r := range b.reqs {
			data = append(data, r.msg.body()...)
		}
	}
	record.PutBatchHeader(data, uint32(b.count))
	if n := int64(len(c.slots)); n > c.peak.Load() {
		c.peak.Store(n) // only run stores it
	}
	switch {
	case c.raft.State() == raft.Shutdown:
		// raft.Apply after Shutdown may queue the entry where nothing
		// will ever answer it (see wait).
		b.future = failedFuture{raft.ErrRaftShutdown}
	default:
		b.future = c.raft.Apply(data, c.timeout)
	}
	c.inflight <- b // never blocks: run holds a slot for b
}

// wait answers the requests of each batch, in the order raft got them.
func (c *committer) wait() {
	for b := range c.inflight {
		res, err := c.outcome(b)
		pos := uint64(0)
		for _, r := range b.reqs {
			if err != nil {
				r.done <- result{err: err}
			} else {
				r.done <- result{base: res.Offset + pos, count: uint32(r.msg.count), time: res.Time}
			}
			pos += uint64(r.msg.count)
		}
		<-c.slots
		select {
		case c.freed <- struct{}{}:
		default: // a notice is already pending
		}
	}
}

func (c *committer) outcome(b *batch) (replication.ApplyResult, error) {
	if err := c.futureError(b.future); err != nil {
		return replication.ApplyResult{}, err
	}
	res, ok := b.future.Response().(replication.ApplyResult)
	switch {
	case !ok:
		return res, fmt.Errorf("server: raft answered a batch with %T", b.future.Response())
	case res.Err != nil:
		return res, res.Err
	case int(res.Count) != b.count:
		return res, fmt.Errorf("server: entry %d holds %d records, the batch had %d", res.Index, res.Count, b.count)
	}
	return res, nil
}

// errApplyAbandoned answers a batch whose future raft left unanswered
// when it shut down.
var errApplyAbandoned = fmt.Errorf("server: raft shut down without answering the write; it may or may not have been committed: %w", raft.ErrRaftShutdown)

// futureError waits for f. hashicorp/raft can leave a future unanswered
// forever if Apply races with Shutdown (the entry sits in the buffered
// apply channel that nobody reads any more; hashicorp/raft#498), so the
// wait also ends when raft has shut down. The goroutine left waiting on
// such a future can never end; there is at most one per batch in flight,
// once per raft instance.
func (c *committer) futureError(f raft.ApplyFuture) error {
	if ff, ok := f.(failedFuture); ok {
		return ff.err
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-c.raftDown:
		select {
		case err := <-done:
			return err
		default:
			c.logger.Warn("raft shut down without answering a write")
			return errApplyAbandoned
		}
	}
}

// failedFuture is an ApplyFuture that failed before reaching raft.
type failedFuture struct{ err error }

func (f failedFuture) Error() error  { return f.err }
func (f failedFuture) Response() any { return nil }
func (f failedFuture) Index() uint64 { return 0 }
