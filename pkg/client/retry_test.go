package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// fake is a Log server whose answers a test scripts.
type fake struct {
	loghousev1.UnimplementedLogServer
	addr string

	mu         sync.Mutex
	servers    func(call int) []*loghousev1.Server // GetServers, by call number from 1
	produce    func(ctx context.Context) error     // nil: succeed
	consume    func(ctx context.Context) error     // nil: succeed
	stream     func(*loghousev1.ConsumeRequest, loghousev1.Log_ConsumeStreamServer) error
	getServers int
	produced   int
	consumed   int

	// hold is closed when the test ends; a handler may wait on it.
	hold chan struct{}
}

func (f *fake) GetServers(context.Context, *loghousev1.GetServersRequest) (*loghousev1.GetServersResponse, error) {
	f.mu.Lock()
	f.getServers++
	n, fn := f.getServers, f.servers
	f.mu.Unlock()
	return &loghousev1.GetServersResponse{Servers: fn(n)}, nil
}

func (f *fake) Produce(ctx context.Context, req *loghousev1.ProduceRequest) (*loghousev1.ProduceResponse, error) {
	f.mu.Lock()
	f.produced++
	fn := f.produce
	f.mu.Unlock()
	if fn != nil {
		if err := fn(ctx); err != nil {
			return nil, err
		}
	}
	return &loghousev1.ProduceResponse{BaseOffset: 7, Count: uint32(len(req.Records))}, nil
}

func (f *fake) Consume(ctx context.Context, _ *loghousev1.ConsumeRequest) (*loghousev1.ConsumeResponse, error) {
	f.mu.Lock()
	f.consumed++
	fn := f.consume
	f.mu.Unlock()
	if fn != nil {
		if err := fn(ctx); err != nil {
			return nil, err
		}
	}
	return &loghousev1.ConsumeResponse{NextOffset: 1, CommittedOffset: 1, Records: []*loghousev1.Record{{Value: []byte("x")}}}, nil
}

func (f *fake) ConsumeStream(req *loghousev1.ConsumeRequest, stream loghousev1.Log_ConsumeStreamServer) error {
	f.mu.Lock()
	fn := f.stream
	f.mu.Unlock()
	if fn == nil {
		return status.Error(codes.Unimplemented, "no stream")
	}
	return fn(req, stream)
}

func (f *fake) counts() (produced, consumed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.produced, f.consumed
}

// startFake serves a fake on 127.0.0.1 with a server certificate of p.
func startFake(t *testing.T, p *pki, name string) *fake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{addr: ln.Addr().String(), hold: make(chan struct{})}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(p.store(t, tlsutil.ServerCert, name).ServerConfig())))
	loghousev1.RegisterLogServer(gs, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := gs.Serve(ln); err != nil {
			t.Logf("fake %s: %v", name, err)
		}
	}()
	t.Cleanup(func() {
		close(f.hold)
		gs.Stop()
		<-done
	})
	return f
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func cluster(leader string, others ...string) []*loghousev1.Server {
	out := []*loghousev1.Server{{Id: "leader", RpcAddr: leader, IsLeader: true, Voter: true}}
	for _, o := range others {
		out = append(out, &loghousev1.Server{Id: o, RpcAddr: o, Voter: true})
	}
	return out
}

// unavailable is the status a node gives when it does not take a write.
func unavailable(leader string, indeterminate bool) error {
	st, err := status.New(codes.Unavailable, "not taken").WithDetails(&loghousev1.Error{
		Code: int32(codes.Unavailable), Message: "not taken", LeaderAddr: leader, Indeterminate: indeterminate,
	})
	if err != nil {
		panic(err) // a constant message always marshals
	}
	return st.Err()
}

// TestProduceRetryClassification checks which produce failures are retried
// against servers that answer with crafted statuses: only those that prove
// nothing was stored.
func TestProduceRetryClassification(t *testing.T) {
	tests := []struct {
		name string
		// setup scripts a (the leader the seed names at first) and b; gone
		// is an address nothing listens on.
		setup             func(a, b *fake, gone string)
		timeout           time.Duration
		wantCode          codes.Code
		wantIndeterminate bool
		wantA, wantB      int // produce calls received
		wantLeader        string
	}{
		{
			name: "indeterminate detail is not retried",
			setup: func(a, b *fake, _ string) {
				a.produce = func(context.Context) error { return unavailable(b.addr, true) }
			},
			wantCode: codes.Unavailable, wantIndeterminate: true, wantA: 1, wantB: 0,
		},
		{
			name: "not leader with the leader in the detail goes there",
			setup: func(a, b *fake, _ string) {
				a.produce = func(context.Context) error { return unavailable(b.addr, false) }
			},
			wantCode: codes.OK, wantA: 1, wantB: 1, wantLeader: "b",
		},
		{
			name: "not leader with the leader in the trailer goes there",
			setup: func(a, b *fake, _ string) {
				a.produce = func(ctx context.Context) error {
					if err := grpc.SetTrailer(ctx, metadata.Pairs(leaderTrailer, b.addr)); err != nil {
						return err
					}
					return unavailable("", false)
				}
			},
			wantCode: codes.OK, wantA: 1, wantB: 1, wantLeader: "b",
		},
		{
			name: "not leader without a hint resolves again",
			setup: func(a, b *fake, _ string) {
				a.servers = func(call int) []*loghousev1.Server {
					if call == 1 {
						return cluster(a.addr, b.addr)
					}
					return cluster(b.addr, a.addr)
				}
				a.produce = func(context.Context) error { return unavailable("", false) }
			},
			wantCode: codes.OK, wantA: 1, wantB: 1, wantLeader: "b",
		},
		{
			name: "connection refused before sending is retried",
			setup: func(a, b *fake, gone string) {
				a.servers = func(call int) []*loghousev1.Server {
					if call == 1 {
						return cluster(gone, a.addr, b.addr)
					}
					return cluster(b.addr, a.addr, gone)
				}
			},
			wantCode: codes.OK, wantA: 0, wantB: 1, wantLeader: "b",
		},
		{
			name: "unavailable without detail after sending is indeterminate",
			setup: func(a, _ *fake, _ string) {
				a.produce = func(context.Context) error { return status.Error(codes.Unavailable, "connection reset") }
			},
			wantCode: codes.Unavailable, wantIndeterminate: true, wantA: 1,
		},
		{
			name: "deadline exceeded from the server is indeterminate",
			setup: func(a, _ *fake, _ string) {
				a.produce = func(context.Context) error { return status.Error(codes.DeadlineExceeded, "apply timed out") }
			},
			wantCode: codes.DeadlineExceeded, wantIndeterminate: true, wantA: 1,
		},
		{
			name: "the caller's deadline while in flight is indeterminate",
			setup: func(a, _ *fake, _ string) {
				a.produce = func(context.Context) error {
					<-a.hold // the client gives up first
					return unavailable("", false)
				}
			},
			timeout:  300 * time.Millisecond,
			wantCode: codes.DeadlineExceeded, wantIndeterminate: true, wantA: 1,
		},
		{
			name: "internal is indeterminate",
			setup: func(a, _ *fake, _ string) {
				a.produce = func(context.Context) error { return status.Error(codes.Internal, "boom") }
			},
			wantCode: codes.Internal, wantIndeterminate: true, wantA: 1,
		},
		{
			name: "invalid argument is final and stored nothing",
			setup: func(a, _ *fake, _ string) {
				a.produce = func(context.Context) error { return status.Error(codes.InvalidArgument, "too big") }
			},
			wantCode: codes.InvalidArgument, wantA: 1,
		},
	}
	p := newPKI(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := startFake(t, p, "a"), startFake(t, p, "b")
			gone := closedAddr(t)
			a.servers = func(int) []*loghousev1.Server { return cluster(a.addr, b.addr) }
			b.servers = func(int) []*loghousev1.Server { return cluster(b.addr, a.addr) }
			tt.setup(a, b, gone)
			cl, err := New(testCtx(t), Config{
				Seeds:           []string{a.addr},
				TLS:             p.clientTLS(t),
				Logger:          testLogger(t, "client"),
				InitialBackoff:  time.Millisecond,
				MaxBackoff:      20 * time.Millisecond,
				MaxAttempts:     5,
				ResolveInterval: -1,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := cl.Close(); err != nil {
					t.Error(err)
				}
			})
			ctx := testCtx(t)
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			resp, err := cl.Produce(ctx, &loghousev1.Record{Value: []byte("v")})
			t.Logf("Produce = %v, %v", resp, err)
			if got := status.Code(err); got != tt.wantCode {
				t.Errorf("code %v, want %v", got, tt.wantCode)
			}
			if got := errors.Is(err, ErrIndeterminate); got != tt.wantIndeterminate {
				t.Errorf("errors.Is(err, ErrIndeterminate) = %v, want %v", got, tt.wantIndeterminate)
			}
			if err == nil && (resp.BaseOffset != 7 || resp.Count != 1) {
				t.Errorf("response %v", resp)
			}
			if pa, _ := a.counts(); pa != tt.wantA {
				t.Errorf("a received %d produce calls, want %d", pa, tt.wantA)
			}
			if pb, _ := b.counts(); pb != tt.wantB {
				t.Errorf("b received %d produce calls, want %d", pb, tt.wantB)
			}
			if tt.wantLeader == "b" && cl.Leader() != b.addr {
				t.Errorf("Leader() = %q, want b %s", cl.Leader(), b.addr)
			}
		})
	}
}

// TestReadRetry checks that a read that meets an unavailable follower is
// retried on the other follower, and that a rejected read is not retried.
func TestReadRetry(t *testing.T) {
	p := newPKI(t)
	l, a, b := startFake(t, p, "l"), startFake(t, p, "a"), startFake(t, p, "b")
	for _, f := range []*fake{l, a, b} {
		f.servers = func(int) []*loghousev1.Server { return cluster(l.addr, a.addr, b.addr) }
	}
	cl, err := New(testCtx(t), Config{
		Seeds: []string{l.addr}, TLS: p.clientTLS(t), Logger: testLogger(t, "client"),
		InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, MaxAttempts: 5, ResolveInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t)

	a.consume = func(context.Context) error { return status.Error(codes.Unavailable, "going away") }
	for i := range 4 {
		if _, err := cl.Consume(ctx, &loghousev1.ConsumeRequest{}); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	_, ca := a.counts()
	_, cb := b.counts()
	_, cl0 := l.counts()
	if cb != 4 || ca == 0 || cl0 != 0 {
		t.Errorf("consume calls: a %d (unavailable), b %d, leader %d; want a > 0, b 4, leader 0", ca, cb, cl0)
	}

	a.consume = func(context.Context) error { return status.Error(codes.OutOfRange, "past the end") }
	b.consume = a.consume
	_, err = cl.Consume(ctx, &loghousev1.ConsumeRequest{})
	if status.Code(err) != codes.OutOfRange || errors.Is(err, ErrIndeterminate) {
		t.Fatalf("Consume = %v, want a plain OutOfRange", err)
	}
	_, ca2 := a.counts()
	_, cb2 := b.counts()
	if ca2+cb2 != ca+cb+1 {
		t.Errorf("an OutOfRange read was tried %d times, want once", ca2+cb2-ca-cb)
	}
}

// TestUnimplementedAdmin checks that the admin calls report a server's
// Unimplemented as it is, without retrying.
func TestUnimplementedAdmin(t *testing.T) {
	p := newPKI(t)
	a := startFake(t, p, "a")
	a.servers = func(int) []*loghousev1.Server { return cluster(a.addr) }
	cl, err := New(testCtx(t), Config{Seeds: []string{"loghouse://" + a.addr}, TLS: p.clientTLS(t), ResolveInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Members(testCtx(t)); status.Code(err) != codes.Unimplemented {
		t.Errorf("Members = %v", err)
	}
	if err := cl.RemovePeer(testCtx(t), "node9"); status.Code(err) != codes.Unimplemented {
		t.Errorf("RemovePeer = %v", err)
	}
}

func TestClassify(t *testing.T) {
	withDetail := func(code codes.Code, leader string, indet bool) error {
		st, err := status.New(code, "x").WithDetails(&loghousev1.Error{Code: int32(code), LeaderAddr: leader, Indeterminate: indet})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	tests := []struct {
		name       string
		err        error
		write      bool
		sent       bool
		trailer    metadata.MD
		want       verdict
		wantLeader string
	}{
		{"write not leader", withDetail(codes.Unavailable, "l:1", false), true, true, nil, retry, "l:1"},
		{"write indeterminate", withDetail(codes.Unavailable, "l:1", true), true, true, nil, unknown, "l:1"},
		{"write refused connection", status.Error(codes.Unavailable, "refused"), true, false, nil, retry, ""},
		{"write broken connection", status.Error(codes.Unavailable, "reset"), true, true, nil, unknown, ""},
		{"write deadline sent", status.Error(codes.DeadlineExceeded, "late"), true, true, nil, unknown, ""},
		{"write deadline unsent", status.Error(codes.DeadlineExceeded, "late"), true, false, nil, final, ""},
		{"write canceled sent", status.Error(codes.Canceled, "bye"), true, true, nil, unknown, ""},
		{"write unknown sent", errors.New("what"), true, true, nil, unknown, ""},
		{"write permission", status.Error(codes.PermissionDenied, "no"), true, true, nil, final, ""},
		{"write resource exhausted", status.Error(codes.ResourceExhausted, "big"), true, true, nil, final, ""},
		{"write trailer hint", status.Error(codes.Unavailable, "x"), true, false, metadata.Pairs(leaderTrailer, "t:1"), retry, "t:1"},
		{"detail beats trailer", withDetail(codes.Unavailable, "d:1", false), true, true, metadata.Pairs(leaderTrailer, "t:1"), retry, "d:1"},
		{"read unavailable", status.Error(codes.Unavailable, "x"), false, true, nil, retry, ""},
		{"read indeterminate detail", withDetail(codes.Unavailable, "", true), false, true, nil, retry, ""},
		{"read deadline", status.Error(codes.DeadlineExceeded, "late"), false, true, nil, final, ""},
		{"read out of range", status.Error(codes.OutOfRange, "end"), false, true, nil, final, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := classify(tt.err, tt.write, tt.sent, tt.trailer)
			if f.verdict != tt.want || f.leader != tt.wantLeader {
				t.Errorf("classify = %v %q, want %v %q", f.verdict, f.leader, tt.want, tt.wantLeader)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	c := &Client{cfg: Config{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}}
	for n := 1; n <= 40; n++ {
		ceil := min(100*time.Millisecond, 10*time.Millisecond<<min(n-1, 20))
		for range 20 {
			if d := c.backoff(n); d < ceil/2 || d > ceil {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s]", n, d, ceil/2, ceil)
			}
		}
	}
}

// TestRecordsResume runs the record iterator over scripted streams: the
// first server fails after five records; the next one is asked for offset
// 5 and sends from 3 (the repeats are dropped), or from 6 (a gap, which
// stops the stream instead of skipping offset 5).
func TestRecordsResume(t *testing.T) {
	for _, tt := range []struct {
		name    string
		resume  uint64 // where the second server starts sending
		want    int    // records delivered
		wantErr error
	}{
		{name: "overlap", resume: 3, want: 10},
		{name: "gap", resume: 6, want: 5, wantErr: ErrOffsetGap},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPKI(t)
			l, a, b := startFake(t, p, "l"), startFake(t, p, "a"), startFake(t, p, "b")
			var (
				mu     sync.Mutex
				starts []uint64
			)
			send := func(stream loghousev1.Log_ConsumeStreamServer, from, to uint64) error {
				for o := from; o < to; o += 2 {
					resp := &loghousev1.ConsumeResponse{NextOffset: min(o+2, to)}
					for r := o; r < min(o+2, to); r++ {
						resp.Records = append(resp.Records, &loghousev1.Record{Offset: r, Value: fmt.Appendf(nil, "v%d", r)})
					}
					if err := stream.Send(resp); err != nil {
						return err
					}
				}
				return nil
			}
			for _, f := range []*fake{l, a, b} {
				f.servers = func(int) []*loghousev1.Server { return cluster(l.addr, a.addr, b.addr) }
				f.stream = func(req *loghousev1.ConsumeRequest, stream loghousev1.Log_ConsumeStreamServer) error {
					mu.Lock()
					starts = append(starts, req.GetOffset())
					n := len(starts)
					mu.Unlock()
					if n == 1 {
						if err := send(stream, req.GetOffset(), 5); err != nil {
							return err
						}
						return status.Error(codes.Unavailable, "shutting down")
					}
					if err := send(stream, tt.resume, 10); err != nil {
						return err
					}
					select {
					case <-f.hold:
					case <-stream.Context().Done():
					}
					return nil
				}
			}
			cl, err := New(testCtx(t), Config{
				Seeds: []string{l.addr}, TLS: p.clientTLS(t), Logger: testLogger(t, "client"),
				InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, MaxAttempts: 5, ResolveInterval: -1,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			var got []uint64
			var gotErr error
			for r, err := range cl.Records(testCtx(t), &loghousev1.ConsumeRequest{}) {
				if err != nil {
					gotErr = err
					break
				}
				if string(r.Value) != fmt.Sprint("v", r.Offset) {
					t.Fatalf("record %d has value %q", r.Offset, r.Value)
				}
				got = append(got, r.Offset)
				if len(got) == 10 {
					break
				}
			}
			for i, o := range got {
				if o != uint64(i) {
					t.Fatalf("delivered offsets %v, want 0, 1, 2, ... once each", got)
				}
			}
			if len(got) != tt.want || !errors.Is(gotErr, tt.wantErr) {
				t.Fatalf("delivered %d records (%v), error %v; want %d, %v", len(got), got, gotErr, tt.want, tt.wantErr)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(starts) != 2 || starts[0] != 0 || starts[1] != 5 {
				t.Fatalf("streams started at %v, want [0 5]", starts)
			}
		})
	}
}
