package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// Defaults for the zero fields of ProducerConfig.
const (
	DefaultProducerMaxInflight    = 2
	DefaultProducerMaxRecords     = 1000
	DefaultProducerMaxBytes       = 512 << 10
	DefaultProducerRequestTimeout = 30 * time.Second
	DefaultProducerRegroupMax     = time.Millisecond
)

// ProducerConfig configures a Producer. Zero fields take the defaults
// above.
type ProducerConfig struct {
	// MaxInflight bounds the produce requests the Producer has in flight
	// at once. While that many are, calls queue and the next request
	// grows. Default: 2, so that the next request is formed while one
	// is on its way (see DESIGN.md).
	MaxInflight int
	// MaxRecords bounds the records of one request; a call with more
	// records than that is sent alone. Keep it within the servers'
	// MaxRequestRecords (10,000 by default). Default: 1000.
	MaxRecords int
	// MaxBytes bounds the bytes of the keys, values and header names and
	// values of one request; a call with more is sent alone. Keep it well
	// under the servers' MaxBatchBytes (1 MiB by default), which also
	// counts a few bytes of framing per record. Default: 512 KiB.
	MaxBytes int
	// RequestTimeout bounds one request, its retries included, and so how
	// long Close waits for the requests in flight. Default: 30s.
	RequestTimeout time.Duration
	// RegroupMax bounds how long the Producer holds the queued calls,
	// when a request returns, for that request's callers to produce
	// again, so that they travel together instead of taking turns: it
	// waits for as many calls as the request answered, half the
	// request's latency at most, and never more than RegroupMax. A
	// lone caller never waits. Default: 1ms; negative: never wait.
	RegroupMax time.Duration
}

// withDefaults returns c with its zero fields set to the defaults, or an
// error wrapping ErrInvalidConfig.
func (c ProducerConfig) withDefaults() (ProducerConfig, error) {
	var problems []string
	for _, f := range []struct {
		name string
		p    *int
		def  int
	}{
		{"MaxInflight", &c.MaxInflight, DefaultProducerMaxInflight},
		{"MaxRecords", &c.MaxRecords, DefaultProducerMaxRecords},
		{"MaxBytes", &c.MaxBytes, DefaultProducerMaxBytes},
	} {
		switch {
		case *f.p == 0:
			*f.p = f.def
		case *f.p < 0:
			problems = append(problems, fmt.Sprintf("%s %d must not be negative", f.name, *f.p))
		}
	}
	switch {
	case c.RequestTimeout == 0:
		c.RequestTimeout = DefaultProducerRequestTimeout
	case c.RequestTimeout < 0:
		problems = append(problems, fmt.Sprintf("RequestTimeout %s must not be negative", c.RequestTimeout))
	}
	if c.RegroupMax == 0 {
		c.RegroupMax = DefaultProducerRegroupMax
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: producer: %s", ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return c, nil
}

// Producer sends the records of concurrent Produce calls together, in
// shared produce requests (client-side group commit). It is safe for
// concurrent use. Make one with Client.NewProducer and Close it before the
// Client. See the package doc, "Batching producer".
type Producer struct {
	c   *Client
	cfg ProducerConfig

	// ctx bounds every request (with RequestTimeout). It ends with the
	// Client, so that a request does not wait out its back-off after
	// Client.Close, and when Close has waited for the requests.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per request in flight

	mu       sync.Mutex
	queue    []*pcall // waiting for a request, in arrival order
	gone     int      // calls in queue whose callers left
	inflight int      // requests in flight
	closed   bool
	// queuedRecords and queuedBytes count the queued calls that are not
	// gone.
	queuedRecords, queuedBytes int
	// regroup, while set, holds dispatch until the queue has regroup.want
	// calls or the timer fires (see ProducerConfig.RegroupMax).
	regroup *regroup
}

// regroup is one wait for the callers of a returned request.
type regroup struct {
	want  int // live queued calls that end the wait
	timer *time.Timer
}

// pcall is one Produce call of a Producer.
type pcall struct {
	ctx  context.Context
	recs []*loghousev1.Record
	size int          // bytes that count against MaxBytes
	done chan presult // buffered: answered once, never blocks
	// state and alone are guarded by Producer.mu.
	state pstate
	// alone: the call goes in a request of its own. It was in a shared
	// request that was rejected, maybe because of another call's records.
	alone bool
}

// presult is what a call gets back.
type presult struct {
	resp *loghousev1.ProduceResponse
	err  error
}

// pstate is where a call is.
type pstate uint8

const (
	// queued: in Producer.queue, not sent.
	queued pstate = iota
	// sent: in a request that is in flight; the request answers it.
	sent
	// gone: answered or left while queued; skipped in the queue.
	gone
)

// NewProducer returns a Producer that sends through c, or an error
// wrapping ErrInvalidConfig if cfg is invalid, or ErrClosed if c is
// closed.
func (c *Client) NewProducer(cfg ProducerConfig) (*Producer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	p := &Producer{c: c, cfg: cfg}
	p.ctx, p.cancel = context.WithCancel(c.ctx)
	return p, nil
}

// Produce appends recs atomically, as Client.Produce does: they get
// consecutive offsets from the response's base offset, or none is stored;
// it returns once they are committed. The records travel with those of
// other calls in one request, but always together and in order, and the
// response is this call's own: its base offset, its count, the entry's
// timestamp. Errors are those of Client.Produce, with ErrIndeterminate
// when the outcome is unknown.
//
// If ctx ends while the call waits for a request, Produce returns
// ctx.Err() and nothing was sent. If ctx ends after its request was sent,
// Produce returns at once an error that wraps ErrIndeterminate and
// ctx.Err(); the request goes on and may commit the records, and it may
// read recs until it ends: do not modify records passed to Produce.
func (p *Producer) Produce(ctx context.Context, recs ...*loghousev1.Record) (*loghousev1.ProduceResponse, error) {
	size, err := callSize(recs)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pc := &pcall{ctx: ctx, recs: recs, size: size, done: make(chan presult, 1)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.queue = append(p.queue, pc)
	p.queuedRecords += len(pc.recs)
	p.queuedBytes += pc.size
	p.dispatchLocked()
	p.mu.Unlock()

	select {
	case r := <-pc.done:
		return r.resp, r.err
	case <-ctx.Done():
	}
	p.mu.Lock()
	if pc.state == queued {
		p.leaveLocked(pc)
		p.mu.Unlock()
		return nil, ctx.Err()
	}
	p.mu.Unlock()
	select {
	case r := <-pc.done: // answered meanwhile
		return r.resp, r.err
	default:
	}
	return nil, leftInFlight{ctx.Err()}
}

// leftInFlight is the error of a call whose context ended, with ctxErr,
// after its request was sent. It wraps ErrIndeterminate and ctxErr, and
// carries the gRPC status (Canceled or DeadlineExceeded) that
// Client.Produce's error would, for status.Code.
type leftInFlight struct{ ctxErr error }

func (e leftInFlight) Error() string {
	return ErrIndeterminate.Error() + ": the call's context ended while its request was in flight: " + e.ctxErr.Error()
}

func (e leftInFlight) Unwrap() []error { return []error{ErrIndeterminate, e.ctxErr} }

// GRPCStatus is the status of the context's error.
func (e leftInFlight) GRPCStatus() *status.Status { return status.FromContextError(e.ctxErr) }

// Close fails the calls still queued with ErrClosed and waits for the
// requests in flight, which answer their calls (each is bounded by
// RequestTimeout). Later calls fail with ErrClosed. Close is idempotent.
// Closing the Client instead makes the requests fail with ErrClosed, or
// with ErrIndeterminate if they were in flight.
func (p *Producer) Close() {
	p.mu.Lock()
	q := p.queue
	p.queue, p.gone = nil, 0
	p.queuedRecords, p.queuedBytes = 0, 0
	p.closed = true
	p.endRegroupLocked()
	for _, pc := range q {
		if pc.state == queued {
			pc.state = gone
			pc.done <- presult{err: ErrClosed}
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.cancel()
}

// dispatchLocked starts requests while a slot is free and calls are
// queued, unless a regroup holds them.
func (p *Producer) dispatchLocked() {
	if r := p.regroup; r != nil {
		if len(p.queue)-p.gone < r.want && p.queuedRecords < p.cfg.MaxRecords && p.queuedBytes < p.cfg.MaxBytes {
			return
		}
		p.endRegroupLocked()
	}
	for !p.closed && p.inflight < p.cfg.MaxInflight {
		calls := p.nextLocked()
		if calls == nil {
			return
		}

		p.inflight++
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.send(calls)
		}()
	}
}

// nextLocked takes the calls of the next request off the queue: the
// oldest, and those after it while they fit MaxRecords and MaxBytes (a
// call that must go alone ends the request, or is the request). Calls whose
// callers have left are dropped; calls whose context has ended are
// answered and left out. It returns nil if no call is queued.
func (p *Producer) nextLocked() []*pcall {
	var calls []*pcall
	records, size, n := 0, 0, 0
	for _, pc := range p.queue {
		if pc.state == gone {
			n++
			p.gone--
			continue
		}
		if len(calls) > 0 && (pc.alone || records+len(pc.recs) > p.cfg.MaxRecords || size+pc.size > p.cfg.MaxBytes) {
			break
		}
		n++
		p.queuedRecords -= len(pc.recs)
		p.queuedBytes -= pc.size
		if err := pc.ctx.Err(); err != nil {
			pc.state = gone
			pc.done <- presult{err: err}
			continue
		}
		pc.state = sent
		calls = append(calls, pc)
		records += len(pc.recs)
		size += pc.size
		if pc.alone {
			break
		}
	}
	clear(p.queue[:n])
	p.queue = p.queue[n:]
	if len(p.queue) == 0 {
		p.queue = nil // let the backing array go
	}
	return calls
}

// leaveLocked marks a queued call whose caller has left. The queue drops
// it when a request is formed; it is compacted when most of it is gone,
// so that callers that time out while requests are stuck do not make it
// grow without bound.
func (p *Producer) leaveLocked(pc *pcall) {
	pc.state = gone
	p.gone++
	p.queuedRecords -= len(pc.recs)
	p.queuedBytes -= pc.size
	if p.gone < 64 || 2*p.gone < len(p.queue) {
		return
	}
	kept := p.queue[:0]
	for _, q := range p.queue {
		if q.state != gone {
			kept = append(kept, q)
		}
	}
	clear(p.queue[len(kept):])
	p.queue, p.gone = kept, 0
}

// send sends one request and answers its calls, then frees its slot. If
// the request was rejected in a way one call's records may have caused,
// its calls go back to the front of the queue, each to be sent alone.
func (p *Producer) send(calls []*pcall) {
	start := time.Now()
	split := p.produce(calls)
	took := time.Since(start)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight--
	if split {
		var again []*pcall
		for _, pc := range calls {
			switch {
			case p.closed:
				pc.state = gone
				pc.done <- presult{err: ErrClosed}
			case pc.ctx.Err() != nil:
				// The caller has left (with ErrIndeterminate); nothing
				// was stored.
				pc.state = gone
				pc.done <- presult{err: pc.ctx.Err()}
			default:
				pc.state, pc.alone = queued, true
				again = append(again, pc)
				p.queuedRecords += len(pc.recs)
				p.queuedBytes += pc.size
			}
		}
		p.queue = append(again, p.queue...)
	} else if want := len(p.queue) - p.gone + len(calls); want > 1 && !p.closed && p.cfg.RegroupMax > 0 {
		p.startRegroupLocked(want, min(took/2, p.cfg.RegroupMax))
	}
	p.dispatchLocked()
}

// startRegroupLocked holds dispatch until want calls are queued or wait
// has passed. The callers of a request that just returned usually produce
// again at once; without the wait, the first of them, or the calls queued
// meanwhile, would leave without the others, and in a closed loop the
// callers would split into groups that take turns, in requests half as
// large. The wait lasts half a request's latency at most; a lone caller,
// whose request carried only its call and found nothing queued, never
// waits.
func (p *Producer) startRegroupLocked(want int, wait time.Duration) {
	if r := p.regroup; r != nil {
		r.want = max(r.want, want) // the earlier deadline stands
		return
	}
	r := &regroup{want: want}

	r.timer = time.AfterFunc(wait, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.regroup == r {
			p.endRegroupLocked()
			p.dispatchLocked()
		}
	})
	p.regroup = r
}

// endRegroupLocked ends the current regroup, if any.
func (p *Producer) endRegroupLocked() {
	if p.regroup != nil {
		p.regroup.timer.Stop()
		p.regroup = nil
	}
}

// produce sends the calls' records in one request, bounded by
// RequestTimeout, through Client.Produce (and so its retry rules), and
// answers each call with its share of the response or the error. It
// answers nothing and returns true if the calls should be sent again one
// by one (see rejectsRecords).
func (p *Producer) produce(calls []*pcall) (split bool) {
	recs := calls[0].recs
	if len(calls) > 1 {
		n := 0
		for _, pc := range calls {
			n += len(pc.recs)
		}
		recs = make([]*loghousev1.Record, 0, n)
		for _, pc := range calls {
			recs = append(recs, pc.recs...)
		}
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.RequestTimeout)
	defer cancel()
	resp, err := p.c.Produce(ctx, recs...)
	if err == nil && resp.GetCount() != uint32(len(recs)) {
		err = indeterminate(status.Errorf(codes.Internal, "client: the server answered %d records to a request of %d", resp.GetCount(), len(recs)))
	}
	if err != nil {
		if len(calls) > 1 && rejectsRecords(err) {
			p.c.logger.Debug("shared produce request rejected; sending its calls one by one", "calls", len(calls), "records", len(recs), "error", err)
			return true
		}
		for _, pc := range calls {
			pc.done <- presult{err: err}
		}
		return false
	}
	base := resp.GetBaseOffset()
	for _, pc := range calls {
		pc.done <- presult{resp: &loghousev1.ProduceResponse{
			BaseOffset:        base,
			Count:             uint32(len(pc.recs)),
			TimestampUnixNano: resp.GetTimestampUnixNano(),
		}}
		base += uint64(len(pc.recs))
	}
	return false
}

// rejectsRecords reports whether err rejected a request, storing nothing,
// for a reason that may lie in one call's records: a record too large or
// with too many headers (InvalidArgument), a message over a size limit
// (ResourceExhausted).
func rejectsRecords(err error) bool {
	if errors.Is(err, ErrIndeterminate) {
		return false
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.ResourceExhausted:
		return true
	}
	return false
}

// callSize checks the records of one call and returns the bytes of their
// keys, values and headers. It refuses, with InvalidArgument, what would
// fail a shared request for every call in it: no records, or a header
// name that is not UTF-8 (which cannot be marshalled).
func callSize(recs []*loghousev1.Record) (int, error) {
	if len(recs) == 0 {
		return 0, status.Error(codes.InvalidArgument, "client: a produce call needs at least one record")
	}
	n := 0
	for i, r := range recs {
		n += len(r.GetKey()) + len(r.GetValue())
		for _, h := range r.GetHeaders() {
			if !utf8.ValidString(h.GetKey()) {
				return 0, status.Errorf(codes.InvalidArgument, "client: record %d has a header name that is not valid UTF-8", i)
			}
			n += len(h.GetKey()) + len(h.GetValue())
		}
	}
	return n, nil
}
