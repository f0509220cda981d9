package client

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/server"
)

const (
	methodProduce       = loghousev1.Log_Produce_FullMethodName
	methodConsume       = loghousev1.Log_Consume_FullMethodName
	methodConsumeStream = loghousev1.Log_ConsumeStream_FullMethodName
)

func TestLeaderTrailerMatchesServer(t *testing.T) {
	if leaderTrailer != server.LeaderTrailer {
		t.Fatalf("client reads trailer %q, server sets %q", leaderTrailer, server.LeaderTrailer)
	}
}

// TestRouting checks that writes go straight to the leader although the
// only seed is a follower, that reads go to the followers in turn, and to
// the leader alone with ReadFromLeader.
func TestRouting(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{})
	leader, followers := c.leader(t), c.followers(t)
	cl := c.client(t, []string{followers[0].addr}, nil)
	if got := cl.Leader(); got != leader.addr {
		t.Fatalf("Leader() = %q, want %s", got, leader.addr)
	}
	ctx := testCtx(t)
	const n = 10
	for i := range n {
		resp, err := cl.Produce(ctx, recs(fmt.Sprint("w", i), 2)...)
		if err != nil {
			t.Fatal(err)
		}
		if resp.BaseOffset != uint64(2*i) || resp.Count != 2 {
			t.Fatalf("produce %d: base %d count %d", i, resp.BaseOffset, resp.Count)
		}
	}
	if got := leader.calls.count(methodProduce); got != n {
		t.Errorf("the leader received %d produce calls, want %d", got, n)
	}
	for _, f := range followers {
		if got := f.calls.count(methodProduce); got != 0 {
			t.Errorf("follower %s received %d produce calls, want 0 (writes go to the leader)", f.id, got)
		}
	}

	// Reads: round-robin over the followers; MinCommitted so that a
	// follower that has not heard of the last commit yet waits for it.
	for range 2 * n {
		resp, err := cl.Consume(ctx, &loghousev1.ConsumeRequest{Start: &loghousev1.ConsumeRequest_Offset{Offset: 0}, MinCommitted: 2*n - 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Records) != 2*n || string(resp.Records[0].Value) != "w0-0" {
			t.Fatalf("consume: %d records, first %q", len(resp.Records), resp.Records[0].Value)
		}
	}
	if got := leader.calls.count(methodConsume); got != 0 {
		t.Errorf("the leader received %d consume calls, want 0", got)
	}
	for _, f := range followers {
		if got := f.calls.count(methodConsume); got != n {
			t.Errorf("follower %s received %d consume calls, want %d (round-robin)", f.id, got, n)
		}
	}

	lc := c.client(t, []string{followers[1].addr}, func(cfg *Config) { cfg.ReadFromLeader = true })
	for range n {
		if _, err := lc.Consume(ctx, &loghousev1.ConsumeRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := leader.calls.count(methodConsume); got != n {
		t.Errorf("with ReadFromLeader the leader received %d consume calls, want %d", got, n)
	}

	servers, err := cl.Servers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 3 {
		t.Fatalf("Servers() = %v", servers)
	}
	for _, s := range servers {
		if s.IsLeader != (s.RpcAddr == leader.addr) || !s.Voter {
			t.Errorf("server %v: leader %s", s, leader.addr)
		}
	}
	st, err := cl.Status(ctx, followers[0].addr)
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeId != followers[0].id || st.LeaderAddr != leader.addr {
		t.Errorf("Status(%s) = node %q leader %q", followers[0].addr, st.NodeId, st.LeaderAddr)
	}
}

// attempts counts the client's attempts per method and target.
type attempts struct {
	mu sync.Mutex
	by []string // "method target", in order
}

func (a *attempts) option() grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		a.mu.Lock()
		a.by = append(a.by, method+" "+cc.Target())
		a.mu.Unlock()
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}

func (a *attempts) list(method string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, s := range a.by {
		if m, target, _ := cut(s); m == method {
			out = append(out, target)
		}
	}
	return out
}

func cut(s string) (method, target string, ok bool) {
	for i := range s {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// TestLeaderFailover stops the leader; the next produce fails on it (the
// request never reaches it), finds the new leader and succeeds there, and
// the log holds each record once. The leader stops gracefully (GOAWAY), or
// drops its connections; then the test waits until the client has seen
// that, since a request written as the connection breaks is rightly
// indeterminate.
func TestLeaderFailover(t *testing.T) {
	for _, hard := range []bool{false, true} {
		t.Run(fmt.Sprintf("hard=%v", hard), func(t *testing.T) {
			c := newCluster(t, 3, clusterOpts{})
			old := c.leader(t)
			old.hard = hard
			var att attempts
			cl := c.client(t, c.addrs(), func(cfg *Config) {
				cfg.DialOptions = []grpc.DialOption{att.option()}
				cfg.ResolveInterval = -1 // only failures make it look again
			})
			ctx := testCtx(t)
			if _, err := cl.Produce(ctx, &loghousev1.Record{Value: []byte("before")}); err != nil {
				t.Fatal(err)
			}
			c.stopNode(old)
			if hard {
				waitFor(t, "the client to see the connection drop", func() bool {
					cl.mu.Lock()
					defer cl.mu.Unlock()
					return cl.conns[old.addr].cc.GetState() != connectivity.Ready
				})
			}
			resp, err := cl.Produce(ctx, &loghousev1.Record{Value: []byte("after")})
			if err != nil {
				t.Fatalf("produce after the leader stopped: %v", err)
			}
			if resp.BaseOffset != 1 {
				t.Errorf("base offset %d, want 1", resp.BaseOffset)
			}
			tries := att.list(methodProduce)
			t.Logf("produce attempts: %v", tries)
			if len(tries) < 3 || tries[1] != "passthrough:///"+old.addr {
				t.Fatalf("attempts %v: want the first, then a failed one on the old leader %s, then retries", tries, old.addr)
			}
			nl := c.leader(t)
			if nl == old {
				t.Fatal("the stopped node still leads")
			}
			if got := cl.Leader(); got != nl.addr {
				t.Errorf("Leader() = %q, want the new leader %s", got, nl.addr)
			}
			if tries[len(tries)-1] != "passthrough:///"+nl.addr {
				t.Errorf("the last attempt went to %s, want the new leader %s", tries[len(tries)-1], nl.addr)
			}
			if got := old.calls.count(methodProduce); got != 1 {
				t.Errorf("the old leader served %d produce calls, want 1", got)
			}
			got, err := c.raw(t, nl).Consume(ctx, &loghousev1.ConsumeRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var values []string
			for _, r := range got.Records {
				values = append(values, string(r.Value))
			}
			if fmt.Sprint(values) != "[before after]" {
				t.Fatalf("the log holds %q, want [before after]", values)
			}
		})
	}
}

// TestReadYourWritesFromFollower produces on the leader and reads each
// record back at once from a follower with MinCommitted. Followers learn of
// commits up to a CommitTimeout late here, so without the wait they would
// answer that the record is not there yet (the control read shows it).
func TestReadYourWritesFromFollower(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{commitTimeout: 300 * time.Millisecond})
	leader, followers := c.leader(t), c.followers(t)
	cl := c.client(t, []string{leader.addr}, nil)
	ctx := testCtx(t)
	// Offset 0 cannot be waited for (min_committed 0 means "do not
	// wait"), so start from 1.
	if _, err := cl.Produce(ctx, &loghousev1.Record{Value: []byte("warm-up")}); err != nil {
		t.Fatal(err)
	}
	var raws []loghousev1.LogClient
	for _, f := range followers {
		raws = append(raws, c.raw(t, f))
	}
	misses := 0
	const rounds = 6
	for i := range rounds {
		want := fmt.Sprint("ryw-", i)
		p, err := cl.Produce(ctx, &loghousev1.Record{Value: []byte(want)})
		if err != nil {
			t.Fatal(err)
		}
		// Control: the followers without waiting.
		for _, raw := range raws {
			r, err := raw.Consume(ctx, &loghousev1.ConsumeRequest{Start: &loghousev1.ConsumeRequest_Offset{Offset: p.BaseOffset}})
			if err != nil || len(r.Records) == 0 {
				misses++
			}
		}
		resp, err := cl.Consume(ctx, &loghousev1.ConsumeRequest{Start: &loghousev1.ConsumeRequest_Offset{Offset: p.BaseOffset}, MinCommitted: p.BaseOffset})
		if err != nil {
			t.Fatalf("round %d: consume at %d: %v", i, p.BaseOffset, err)
		}
		if len(resp.Records) == 0 || string(resp.Records[0].Value) != want || resp.Records[0].Offset != p.BaseOffset {
			t.Fatalf("round %d: read %v at %d, want %q", i, resp.Records, p.BaseOffset, want)
		}
	}
	t.Logf("control reads without min_committed missed the record %d of %d times", misses, rounds*len(raws))
	if misses == 0 {
		t.Error("the followers never lagged; the test does not show that MinCommitted matters")
	}
	if got := leader.calls.count(methodConsume); got != 0 {
		t.Errorf("the leader served %d consume calls, want 0 (reads go to followers)", got)
	}
}

// TestConsumeStreamAcrossServerFailure follows the log from a follower,
// stops that follower in the middle, produces more, and checks that the
// stream delivers every record exactly once, in order, from the other.
func TestConsumeStreamAcrossServerFailure(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{})
	leader := c.leader(t)
	cl := c.client(t, c.addrs(), nil)
	ctx := testCtx(t)
	const before, after = 200, 100
	for i := 0; i < before; i += 20 {
		batch := make([]*loghousev1.Record, 20)
		for j := range batch {
			batch[j] = &loghousev1.Record{Value: fmt.Appendf(nil, "r%d", i+j)}
		}
		if _, err := cl.Produce(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}
	s := cl.ConsumeStream(ctx, &loghousev1.ConsumeRequest{MaxRecords: 7})
	defer s.Close()
	next := 0
	read := func(upTo int) {
		t.Helper()
		for next < upTo {
			resp, err := s.Recv()
			if err != nil {
				t.Fatalf("recv at %d: %v", next, err)
			}
			for _, r := range resp.Records {
				if r.Offset != uint64(next) || string(r.Value) != fmt.Sprint("r", next) {
					t.Fatalf("got offset %d %q, want offset %d r%d", r.Offset, r.Value, next, next)
				}
				next++
			}
			if resp.NextOffset != uint64(next) {
				t.Fatalf("next offset %d, want %d", resp.NextOffset, next)
			}
		}
	}
	read(50)
	var serving *tnode
	for _, n := range c.nodes {
		if n.calls.open(methodConsumeStream) > 0 {
			serving = n
		}
	}
	if serving == nil || serving == leader {
		t.Fatalf("the stream is served by %v, want a follower", serving)
	}
	c.stopNode(serving)
	for i := before; i < before+after; i++ {
		if _, err := cl.Produce(ctx, &loghousev1.Record{Value: fmt.Appendf(nil, "r%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	read(before + after)
	if off, ok := s.NextOffset(); !ok || off != before+after {
		t.Errorf("NextOffset() = %d, %v", off, ok)
	}
	resumed := 0
	for _, n := range c.nodes {
		if n != serving {
			resumed += n.calls.count(methodConsumeStream)
		}
	}
	if resumed == 0 {
		t.Error("no other server served a stream after the failure")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err == nil {
		t.Fatal("Recv after Close succeeded")
	}
}
