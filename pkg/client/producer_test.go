package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// holder holds the produce requests that reach a node until the test lets
// them through. It also records, on the client's side, how many records
// each produce attempt carried (the server's request type is its own).
type holder struct {
	mu       sync.Mutex
	arrived  int           // produce requests that reached a node
	sent     []int         // records of each produce attempt, in order
	tokens   chan struct{} // each lets one held request through
	open     chan struct{} // closed: every request goes through
	openOnce sync.Once
}

func newHolder() *holder {
	return &holder{tokens: make(chan struct{}), open: make(chan struct{})}
}

// intercept is the servers' interceptor.
func (h *holder) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if info.FullMethod != methodProduce {
		return handler(ctx, req)
	}
	h.mu.Lock()
	h.arrived++
	h.mu.Unlock()
	select {
	case <-h.open:
	case <-h.tokens:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return handler(ctx, req)
}

// option is the client's dial option that records each produce attempt.
func (h *holder) option() grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if pr, ok := req.(*loghousev1.ProduceRequest); ok && method == methodProduce {
			h.mu.Lock()
			h.sent = append(h.sent, len(pr.GetRecords()))
			h.mu.Unlock()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}

// let lets one held request through, waiting until one is held.
func (h *holder) let(t testing.TB) {
	t.Helper()
	select {
	case h.tokens <- struct{}{}:
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for a held produce request")
	}
}

// release lets every request through, now and from now on.
func (h *holder) release() { h.openOnce.Do(func() { close(h.open) }) }

// arrivals returns how many produce requests reached a node.
func (h *holder) arrivals() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.arrived
}

// requests returns the records of each produce attempt so far.
func (h *holder) requests() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sent)
}

// heldSetup starts an n-node cluster whose nodes hold produce requests (see
// holder), a client of it and a Producer with cfg; change adjusts the
// client's Config. The holder lets everything through before the Producer
// and client close.
func heldSetup(t *testing.T, n int, o clusterOpts, cfg ProducerConfig, change func(*Config)) (*tcluster, *holder, *Client, *Producer) {
	t.Helper()
	h := newHolder()
	o.intercept = h.intercept
	c := newCluster(t, n, o)
	cl := c.client(t, c.addrs(), func(cfg *Config) {
		cfg.DialOptions = append(cfg.DialOptions, h.option())
		if change != nil {
			change(cfg)
		}
	})
	p := newProducer(t, cl, cfg)
	t.Cleanup(h.release)
	return c, h, cl, p
}

// newProducer returns a Producer of cl, closed when the test ends.
func newProducer(t testing.TB, cl *Client, cfg ProducerConfig) *Producer {
	t.Helper()
	p, err := cl.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// queuedCalls counts the calls waiting in p's queue.
func queuedCalls(p *Producer) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) - p.gone
}

// waitQueued waits until n calls wait in p's queue.
func waitQueued(t testing.TB, p *Producer, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d queued calls", n), func() bool { return queuedCalls(p) == n })
}

// readLog reads n's whole log and returns the records' values by offset.
func readLog(t testing.TB, c *tcluster, n *tnode) []string {
	t.Helper()
	raw := c.raw(t, n)
	var out []string
	for {
		resp, err := raw.Consume(testCtx(t), &loghousev1.ConsumeRequest{Start: &loghousev1.ConsumeRequest_Offset{Offset: uint64(len(out))}})
		if err != nil {
			t.Fatalf("consume at %d: %v", len(out), err)
		}
		if len(resp.Records) == 0 {
			return out
		}
		for _, r := range resp.Records {
			if r.Offset != uint64(len(out)) {
				t.Fatalf("read offset %d, want %d", r.Offset, len(out))
			}
			out = append(out, string(r.Value))
		}
	}
}

// callResult is the outcome of one Produce call of a test.
type callResult struct {
	resp *loghousev1.ProduceResponse
	err  error
}

// goProduce calls p.Produce(ctx, rs...) in a goroutine; its result arrives
// on the channel.
func goProduce(ctx context.Context, p *Producer, rs ...*loghousev1.Record) <-chan callResult {
	ch := make(chan callResult, 1)
	go func() {
		resp, err := p.Produce(ctx, rs...)
		ch <- callResult{resp, err}
	}()
	return ch
}

// await returns the result of a goProduce call.
func await(t testing.TB, ch <-chan callResult) callResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for a Produce call")
		return callResult{}
	}
}

// checkLog checks that the log holds exactly the records of calls, each
// at the offsets its call was told: every record once, each call's
// records consecutive and in order.
func checkLog(t testing.TB, log []string, calls [][]*loghousev1.Record, resps []*loghousev1.ProduceResponse) {
	t.Helper()
	want := make([]string, len(log))
	owner := make([]int, len(log))
	for i := range owner {
		owner[i] = -1
	}
	total := 0
	for i, rs := range calls {
		resp := resps[i]
		if resp.Count != uint32(len(rs)) {
			t.Fatalf("call %d: count %d, want %d", i, resp.Count, len(rs))
		}
		total += len(rs)
		for j, r := range rs {
			off := resp.BaseOffset + uint64(j)
			if off >= uint64(len(log)) {
				t.Fatalf("call %d was told offset %d; the log has %d records", i, off, len(log))
			}
			if owner[off] >= 0 {
				t.Fatalf("calls %d and %d were both told offset %d", owner[off], i, off)
			}
			owner[off], want[off] = i, string(r.Value)
		}
	}
	if total != len(log) {
		t.Fatalf("the calls produced %d records; the log holds %d", total, len(log))
	}
	for off := range log {
		if log[off] != want[off] {
			t.Fatalf("offset %d holds %q, want %q (call %d)", off, log[off], want[off], owner[off])
		}
	}
}

// TestProducerConcurrentCallers runs 64 goroutines producing through one
// Producer and checks that every call got its own consecutive offsets and
// that the log holds every record once, there. With the first request held
// at the server until the other 63 calls are queued, those 63 go in one
// request: two produce requests for 64 calls.
func TestProducerConcurrentCallers(t *testing.T) {
	const goroutines = 64
	tests := []struct {
		name  string
		cfg   ProducerConfig
		calls int  // per goroutine
		held  bool // hold the first request until the other calls are queued
	}{
		{name: "held first request", cfg: ProducerConfig{MaxInflight: 1}, calls: 1, held: true},
		{name: "free running", cfg: ProducerConfig{}, calls: 20},
		{name: "small requests", cfg: ProducerConfig{MaxInflight: 2, MaxRecords: 7, MaxBytes: 100}, calls: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, h, _, p := heldSetup(t, 1, clusterOpts{}, tt.cfg, nil)
			if !tt.held {
				h.release()
			}
			ctx := testCtx(t)
			n := goroutines * tt.calls
			calls := make([][]*loghousev1.Record, n)
			resps := make([]*loghousev1.ProduceResponse, n)
			errs := make([]error, n)
			for i := range calls {
				calls[i] = recs(fmt.Sprintf("g%02d-c%02d", i/tt.calls, i%tt.calls), 1+i%4)
			}
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for k := range tt.calls {
						i := g*tt.calls + k
						resps[i], errs[i] = p.Produce(ctx, calls[i]...)
					}
				})
			}
			if tt.held {
				waitFor(t, "the first request at the server", func() bool { return h.arrivals() == 1 })
				waitQueued(t, p, goroutines-1)
				h.release()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			checkLog(t, readLog(t, c, c.nodes[0]), calls, resps)
			rpcs := c.nodes[0].calls.count(methodProduce)
			t.Logf("%d calls took %d produce requests; records per request: %v", n, rpcs, h.requests())
			if rpcs > n {
				t.Errorf("%d produce requests for %d calls", rpcs, n)
			}
			for i, r := range h.requests() {
				if r > p.cfg.MaxRecords {
					t.Errorf("request %d held %d records, more than MaxRecords %d", i, r, p.cfg.MaxRecords)
				}
			}
			if tt.held {
				if rpcs >= n/2 {
					t.Errorf("%d produce requests for %d calls; want fewer than %d", rpcs, n, n/2)
				}
				want := 0
				for _, rs := range calls {
					want += len(rs)
				}
				if got := h.requests(); len(got) != 2 || got[0]+got[1] != want {
					t.Errorf("records per request %v, want the first call alone, then the other %d calls together", got, goroutines-1)
				}
			}
		})
	}
}

// TestProducerSplitsRejectedRequest puts a record larger than the server
// allows among good calls in one request. The server rejects the request
// with InvalidArgument; the Producer sends each call again on its own, so
// that only the bad call fails.
func TestProducerSplitsRejectedRequest(t *testing.T) {
	c, h, _, p := heldSetup(t, 1, clusterOpts{maxRecordBytes: 1024}, ProducerConfig{MaxInflight: 1}, nil)
	ctx := testCtx(t)
	first := goProduce(ctx, p, recs("first", 1)...)
	waitFor(t, "the first request at the server", func() bool { return h.arrivals() == 1 })
	const n, bad = 10, 4
	calls := make([][]*loghousev1.Record, n)
	chans := make([]<-chan callResult, n)
	for i := range calls {
		calls[i] = recs(fmt.Sprint("call", i), 2)
		if i == bad {
			calls[i][1].Value = bytes.Repeat([]byte("x"), 2048)
		}
		chans[i] = goProduce(ctx, p, calls[i]...)
		waitQueued(t, p, i+1) // queue them in this order
	}
	h.release()
	r0 := await(t, first)
	if r0.err != nil {
		t.Fatal(r0.err)
	}
	wantCalls := [][]*loghousev1.Record{recs("first", 1)}
	wantResps := []*loghousev1.ProduceResponse{r0.resp}
	for i, ch := range chans {
		r := await(t, ch)
		if i == bad {
			if status.Code(r.err) != codes.InvalidArgument || errors.Is(r.err, ErrIndeterminate) {
				t.Errorf("the call with the oversized record: %v, want a plain InvalidArgument", r.err)
			}
			continue
		}
		if r.err != nil {
			t.Fatalf("call %d: %v", i, r.err)
		}
		wantCalls, wantResps = append(wantCalls, calls[i]), append(wantResps, r.resp)
	}
	checkLog(t, readLog(t, c, c.nodes[0]), wantCalls, wantResps)
	want := []int{1, 2 * n}
	for range n {
		want = append(want, 2)
	}
	if got := h.requests(); !slices.Equal(got, want) {
		t.Errorf("records per request %v, want %v: the first call, the shared request, then each call alone", got, want)
	}
}

// TestProducerCallerLeaves cancels callers: one whose call is queued gets
// context.Canceled and its records are never sent; one whose call is in
// flight gets ErrIndeterminate at once, and its request goes on.
func TestProducerCallerLeaves(t *testing.T) {
	c, h, _, p := heldSetup(t, 1, clusterOpts{}, ProducerConfig{MaxInflight: 1}, nil)
	ctx := testCtx(t)

	// In flight: the request is held at the server.
	leaveCtx, leave := context.WithCancel(ctx)
	inflight := goProduce(leaveCtx, p, recs("inflight", 2)...)
	waitFor(t, "the first request at the server", func() bool { return h.arrivals() == 1 })

	// Queued behind it: one that stays, one that leaves.
	stayer := goProduce(ctx, p, recs("stays", 1)...)
	waitQueued(t, p, 1)
	queuedCtx, cancelQueued := context.WithCancel(ctx)
	leaver := goProduce(queuedCtx, p, recs("leaves", 3)...)
	waitQueued(t, p, 2)

	cancelQueued()
	r := await(t, leaver)
	if !errors.Is(r.err, context.Canceled) || errors.Is(r.err, ErrIndeterminate) {
		t.Errorf("a queued call whose context ended: %v, want context.Canceled, not indeterminate", r.err)
	}
	leave()
	r = await(t, inflight)
	if !errors.Is(r.err, ErrIndeterminate) || !errors.Is(r.err, context.Canceled) || status.Code(r.err) != codes.Canceled {
		t.Errorf("a call in flight whose context ended: %v, want ErrIndeterminate, context.Canceled and code Canceled", r.err)
	}
	if got := queuedCalls(p); got != 1 {
		t.Errorf("%d calls queued, want 1 (the one that stays)", got)
	}

	h.release()
	r = await(t, stayer)
	if r.err != nil {
		t.Fatal(r.err)
	}
	// The request the caller left was committed all the same; the
	// cancelled queued call was never sent.
	p.Close() // waits for the requests
	log := readLog(t, c, c.nodes[0])
	if want := []string{"inflight-0", "inflight-1", "stays-0"}; !slices.Equal(log, want) {
		t.Errorf("the log holds %q, want %q", log, want)
	}
	if got := h.requests(); !slices.Equal(got, []int{2, 1}) {
		t.Errorf("records per request %v, want [2 1]", got)
	}
}

// TestProducerRetries checks that a shared request is retried as
// Client.Produce retries: when the server it goes to does not lead, and
// when the leader has stopped. Every caller succeeds.
func TestProducerRetries(t *testing.T) {
	const goroutines = 64
	for _, tt := range []string{"not leader", "leader stopped"} {
		t.Run(tt, func(t *testing.T) {
			c, h, cl, p := heldSetup(t, 3, clusterOpts{}, ProducerConfig{MaxInflight: 1}, func(cfg *Config) {
				cfg.ResolveInterval = -1 // only failures make it look again
			})
			h.release()
			ctx := testCtx(t)
			old := c.leader(t)
			var refuser *tnode
			switch tt {
			case "not leader":
				refuser = c.followers(t)[0]
				cl.setLeader(refuser.addr)
			case "leader stopped":
				if _, err := cl.Produce(ctx, recs("before", 1)...); err != nil {
					t.Fatal(err)
				}
				c.stopNode(old)
			}
			calls := make([][]*loghousev1.Record, goroutines)
			resps := make([]*loghousev1.ProduceResponse, goroutines)
			errs := make([]error, goroutines)
			var wg sync.WaitGroup
			for i := range calls {
				calls[i] = recs(fmt.Sprint("g", i), 2)
				wg.Go(func() { resps[i], errs[i] = p.Produce(ctx, calls[i]...) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			leader := c.leader(t)
			log := readLog(t, c, leader)
			if tt == "leader stopped" {
				if leader == old {
					t.Fatal("the stopped node still leads")
				}
				if len(log) == 0 || log[0] != "before-0" {
					t.Fatalf("the log starts %q, want the record produced before", log[:min(len(log), 1)])
				}
				log = log[1:]
				for _, resp := range resps {
					resp.BaseOffset-- // offsets in log[1:]
				}
			}
			checkLog(t, log, calls, resps)
			if refuser != nil {
				if got := refuser.calls.count(methodProduce); got != 1 {
					t.Errorf("the follower received %d produce requests, want 1 (refused, then the leader)", got)
				}
				if got := cl.Leader(); got != leader.addr {
					t.Errorf("Leader() = %q, want %s", got, leader.addr)
				}
			}
			t.Logf("records per request: %v", h.requests())
		})
	}
}

// TestProducerIndeterminate stops the server hard while a shared request
// is in flight: every call in it gets ErrIndeterminate.
func TestProducerIndeterminate(t *testing.T) {
	c, h, _, p := heldSetup(t, 1, clusterOpts{}, ProducerConfig{MaxInflight: 1}, nil)
	ctx := testCtx(t)
	first := goProduce(ctx, p, recs("first", 1)...)
	waitFor(t, "the first request at the server", func() bool { return h.arrivals() == 1 })
	const n = 7
	chans := make([]<-chan callResult, n)
	for i := range chans {
		chans[i] = goProduce(ctx, p, recs(fmt.Sprint("call", i), 1)...)
	}
	waitQueued(t, p, n)
	h.let(t)
	if r := await(t, first); r.err != nil {
		t.Fatal(r.err)
	}
	waitFor(t, "the shared request at the server", func() bool { return h.arrivals() == 2 })
	if got := h.requests(); len(got) != 2 || got[1] != n {
		t.Fatalf("records per request %v, want [1 %d]", got, n)
	}
	c.nodes[0].hard = true
	c.stopNode(c.nodes[0])
	for i, ch := range chans {
		r := await(t, ch)
		if !errors.Is(r.err, ErrIndeterminate) || status.Code(r.err) != codes.Unavailable {
			t.Errorf("call %d: %v, want ErrIndeterminate with Unavailable", i, r.err)
		}
	}
}

// TestProducerClose closes a Producer with a call in flight and calls
// queued: the queued calls fail with ErrClosed at once, Close waits for
// the call in flight, which succeeds, and later calls fail with ErrClosed.
func TestProducerClose(t *testing.T) {
	c, h, _, p := heldSetup(t, 1, clusterOpts{}, ProducerConfig{MaxInflight: 1}, nil)
	ctx := testCtx(t)
	inflight := goProduce(ctx, p, recs("inflight", 1)...)
	waitFor(t, "the first request at the server", func() bool { return h.arrivals() == 1 })
	queued := []<-chan callResult{goProduce(ctx, p, recs("a", 1)...), goProduce(ctx, p, recs("b", 1)...)}
	waitQueued(t, p, 2)

	closed := make(chan struct{})
	go func() {
		defer close(closed)
		p.Close()
	}()
	for _, ch := range queued {
		if r := await(t, ch); !errors.Is(r.err, ErrClosed) || errors.Is(r.err, ErrIndeterminate) {
			t.Errorf("a queued call: %v, want ErrClosed", r.err)
		}
	}
	if _, err := p.Produce(ctx, recs("late", 1)...); !errors.Is(err, ErrClosed) {
		t.Errorf("Produce after Close: %v, want ErrClosed", err)
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a request was in flight")
	default:
	}
	h.release()
	if r := await(t, inflight); r.err != nil {
		t.Errorf("the call in flight: %v", r.err)
	}
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return after the request ended")
	}
	p.Close() // idempotent
	if log := readLog(t, c, c.nodes[0]); !slices.Equal(log, []string{"inflight-0"}) {
		t.Errorf("the log holds %q, want only the call that was in flight", log)
	}
	if got := h.arrivals(); got != 1 {
		t.Errorf("%d produce requests, want 1", got)
	}
}

// TestProducerClientClose closes the Client under a Producer: the call in
// flight fails as indeterminate, the queued call and later calls fail
// with ErrClosed, and nothing hangs.
func TestProducerClientClose(t *testing.T) {
	_, h, cl, p := heldSetup(t, 1, clusterOpts{}, ProducerConfig{MaxInflight: 1}, nil)
	ctx := testCtx(t)
	inflight := goProduce(ctx, p, recs("inflight", 1)...)
	waitFor(t, "the first request at the server", func() bool { return h.arrivals() == 1 })
	queued := goProduce(ctx, p, recs("queued", 1)...)
	waitQueued(t, p, 1)
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if r := await(t, inflight); !errors.Is(r.err, ErrIndeterminate) {
		t.Errorf("the call in flight: %v, want ErrIndeterminate", r.err)
	}
	if r := await(t, queued); !errors.Is(r.err, ErrClosed) {
		t.Errorf("the queued call: %v, want ErrClosed", r.err)
	}
	if _, err := p.Produce(ctx, recs("late", 1)...); !errors.Is(err, ErrClosed) {
		t.Errorf("Produce after the Client closed: %v, want ErrClosed", err)
	}
	p.Close()
	if _, err := cl.NewProducer(ProducerConfig{}); !errors.Is(err, ErrClosed) {
		t.Errorf("NewProducer on a closed Client: %v, want ErrClosed", err)
	}
}

// TestProducerLoneCaller checks that a caller alone is sent at once: one
// request per call, as with Client.Produce.
func TestProducerLoneCaller(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	cl := c.client(t, c.addrs(), nil)
	p := newProducer(t, cl, ProducerConfig{})
	ctx := testCtx(t)
	const n = 20
	for i := range n {
		resp, err := p.Produce(ctx, recs(fmt.Sprint("lone", i), 3)...)
		if err != nil {
			t.Fatal(err)
		}
		if resp.BaseOffset != uint64(3*i) || resp.Count != 3 || resp.TimestampUnixNano == 0 {
			t.Fatalf("call %d: %v", i, resp)
		}
	}
	if got := c.nodes[0].calls.count(methodProduce); got != n {
		t.Errorf("%d produce requests for %d calls one after the other, want %d", got, n, n)
	}
}

// TestProducerRegroup runs 8 callers in a closed loop, 3 calls each, one
// request in flight, on a server that takes 100ms per produce request, so
// that the order of events does not depend on the scheduler. The first
// call goes alone; when it returns, the Producer waits for its caller to
// produce again and sends the next 8 calls together, and so on: 4
// requests. Without the regroup wait, the first caller's calls would keep
// leaving alone while the others' go together: 6 requests.
func TestProducerRegroup(t *testing.T) {
	slow := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod == methodProduce {
			time.Sleep(100 * time.Millisecond)
		}
		return handler(ctx, req)
	}
	for _, tc := range []struct {
		name     string
		regroup  time.Duration
		requests int
	}{
		{"regroup", time.Second, 4},
		{"off", -1, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 1, clusterOpts{intercept: slow})
			cl := c.client(t, c.addrs(), nil)
			p := newProducer(t, cl, ProducerConfig{MaxInflight: 1, RegroupMax: tc.regroup})
			ctx := testCtx(t)
			const callers, rounds = 8, 3
			var (
				mu    sync.Mutex
				calls [][]*loghousev1.Record
				resps []*loghousev1.ProduceResponse
				wg    sync.WaitGroup
			)
			before := c.nodes[0].calls.count(methodProduce)
			for i := range callers {
				if i == 1 { // the first call has left alone
					waitFor(t, "the first request at the server", func() bool { return c.nodes[0].calls.count(methodProduce) > before })
				}
				wg.Go(func() {
					for r := range rounds {
						rs := recs(fmt.Sprintf("c%d-r%d", i, r), 1)
						resp, err := p.Produce(ctx, rs...)
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						calls, resps = append(calls, rs), append(resps, resp)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			if got := c.nodes[0].calls.count(methodProduce) - before; got != tc.requests {
				t.Errorf("%d produce requests for %d callers x %d calls, want %d", got, callers, rounds, tc.requests)
			}
			checkLog(t, readLog(t, c, c.nodes[0]), calls, resps)
		})
	}
}

// TestProduceRefusesBadCalls checks the calls refused before any request:
// no records, a header name that cannot be marshalled, a context that has
// ended.
func TestProduceRefusesBadCalls(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	cl := c.client(t, c.addrs(), nil)
	p := newProducer(t, cl, ProducerConfig{})
	done, cancel := context.WithCancel(testCtx(t))
	cancel()
	for _, tt := range []struct {
		name string
		ctx  context.Context
		recs []*loghousev1.Record
		want func(error) bool
	}{
		{"no records", testCtx(t), nil, invalidArgument},
		{"header name not UTF-8", testCtx(t), []*loghousev1.Record{{Value: []byte("v"), Headers: []*loghousev1.Header{{Key: "\xff"}}}}, invalidArgument},
		{"context ended", done, recs("x", 1), func(err error) bool { return errors.Is(err, context.Canceled) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := p.Produce(tt.ctx, tt.recs...); !tt.want(err) {
				t.Errorf("Producer.Produce = %v", err)
			}
			// Client.Produce refuses the bad records the same way,
			// not as indeterminate.
			if tt.ctx.Err() != nil {
				return
			}
			if _, err := cl.Produce(tt.ctx, tt.recs...); !tt.want(err) || errors.Is(err, ErrIndeterminate) {
				t.Errorf("Client.Produce = %v", err)
			}
		})
	}
	if got := c.nodes[0].calls.count(methodProduce); got != 0 {
		t.Errorf("%d produce requests, want none", got)
	}
}

func invalidArgument(err error) bool { return status.Code(err) == codes.InvalidArgument }

func TestProducerConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     ProducerConfig
		want    ProducerConfig
		wantErr bool
	}{
		{
			name: "defaults",
			want: ProducerConfig{MaxInflight: 2, MaxRecords: 1000, MaxBytes: 512 << 10, RequestTimeout: 30 * time.Second, RegroupMax: time.Millisecond},
		},
		{
			name: "kept",
			cfg:  ProducerConfig{MaxInflight: 1, MaxRecords: 2, MaxBytes: 3, RequestTimeout: time.Second, RegroupMax: 5 * time.Millisecond},
			want: ProducerConfig{MaxInflight: 1, MaxRecords: 2, MaxBytes: 3, RequestTimeout: time.Second, RegroupMax: 5 * time.Millisecond},
		},
		{
			name: "regroup off",
			cfg:  ProducerConfig{RegroupMax: -1},
			want: ProducerConfig{MaxInflight: 2, MaxRecords: 1000, MaxBytes: 512 << 10, RequestTimeout: 30 * time.Second, RegroupMax: -1},
		},
		{name: "negative inflight", cfg: ProducerConfig{MaxInflight: -1}, wantErr: true},
		{name: "negative records", cfg: ProducerConfig{MaxRecords: -1}, wantErr: true},
		{name: "negative bytes", cfg: ProducerConfig{MaxBytes: -1}, wantErr: true},
		{name: "negative timeout", cfg: ProducerConfig{RequestTimeout: -time.Second}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.withDefaults()
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("withDefaults = %v, want ErrInvalidConfig", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("withDefaults = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// BenchmarkProducer has 64 goroutines produce one 256-byte record per call
// to a one-node cluster: each call its own request (Client.Produce), or
// through a Producer (its defaults; MaxInflight 1 and 4; no regroup). For
// reference, Batched64 is the bound: one goroutine producing 64 records per
// request with Client.Produce. An op is one record.
func BenchmarkProducer(b *testing.B) {
	const goroutines = 64
	c := newCluster(b, 1, clusterOpts{})
	cl := c.client(b, c.addrs(), nil)
	value := bytes.Repeat([]byte("v"), 256)
	one := func(produce func(context.Context, ...*loghousev1.Record) (*loghousev1.ProduceResponse, error)) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := produce(ctx, &loghousev1.Record{Value: value})
			return err
		}
	}
	batch := make([]*loghousev1.Record, goroutines)
	for i := range batch {
		batch[i] = &loghousev1.Record{Value: value}
	}
	for _, bm := range []struct {
		name       string
		goroutines int
		records    int // per call
		call       func(context.Context) error
	}{
		{"ClientProduce", goroutines, 1, one(cl.Produce)},
		{"Producer", goroutines, 1, one(newProducer(b, cl, ProducerConfig{}).Produce)},
		{"ProducerInflight1", goroutines, 1, one(newProducer(b, cl, ProducerConfig{MaxInflight: 1}).Produce)},
		{"ProducerInflight4", goroutines, 1, one(newProducer(b, cl, ProducerConfig{MaxInflight: 4}).Produce)},
		{"ProducerNoRegroup", goroutines, 1, one(newProducer(b, cl, ProducerConfig{RegroupMax: -1}).Produce)},
		{"Batched64", 1, goroutines, func(ctx context.Context) error {
			_, err := cl.Produce(ctx, batch...)
			return err
		}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			ctx := b.Context() // not testCtx: a slow disk may need more than 30s
			rpcs := c.nodes[0].calls.count(methodProduce)
			var (
				next atomic.Int64
				wg   sync.WaitGroup
				mu   sync.Mutex
				lat  []time.Duration
				errs atomic.Int64
			)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range bm.goroutines {
				wg.Go(func() {
					var mine []time.Duration
					for next.Add(int64(bm.records)) <= int64(b.N)+int64(bm.records)-1 {
						t0 := time.Now()
						if err := bm.call(ctx); err != nil {
							errs.Add(1)
						}
						mine = append(mine, time.Since(t0))
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if n := errs.Load(); n > 0 {
				b.Fatalf("%d calls failed", n)
			}
			slices.Sort(lat)
			records := float64(len(lat) * bm.records)
			b.ReportMetric(records/elapsed.Seconds(), "records/s")
			b.ReportMetric(records*float64(len(value))/elapsed.Seconds()/1e6, "MB/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs/call")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs/call")
			b.ReportMetric(records/float64(c.nodes[0].calls.count(methodProduce)-rpcs), "records/request")
		})
	}
}
