package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// TestForwardProduce writes through a follower: the write is committed by
// the leader and answered with its offset; the ACL judges the client (a
// reader may not write through a follower either), and only a server may
// name a client it forwards for.
func TestForwardProduce(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{forward: true})
	leader, f := c.leader(t), c.follower(t)

	resp, err := client(t, f, "writer").Produce(testCtx(t), &loghousev1.ProduceRequest{Records: values("fwd", 3, 0)})
	if err != nil {
		t.Fatalf("produce through a follower: %v", err)
	}
	if resp.Count != 3 {
		t.Fatalf("count %d", resp.Count)
	}
	got := consumeAll(t, client(t, leader, "root"), resp.BaseOffset, resp.BaseOffset+3)
	for i, r := range got {
		if want := fmt.Sprintf("fwd-%d", i); string(r.Value) != want {
			t.Fatalf("record %d = %q, want %q", i, r.Value, want)
		}
	}
	// Read-your-writes on the follower that forwarded it.
	fr, err := client(t, f, "root").Consume(testCtx(t), &loghousev1.ConsumeRequest{
		Start: &loghousev1.ConsumeRequest_Offset{Offset: resp.BaseOffset}, MinCommitted: resp.BaseOffset + 2})
	if err != nil || len(fr.Records) < 3 || string(fr.Records[2].Value) != "fwd-2" {
		t.Fatalf("follower read after a forwarded write: %v %v", fr, err)
	}

	_, err = client(t, f, "reader").Produce(testCtx(t), &loghousev1.ProduceRequest{Records: values("no", 1, 0)})
	wantCode(t, err, codes.PermissionDenied, `"reader" may not produce`)

	// A client cannot pass itself off as another by setting the header.
	ctx := metadata.AppendToOutgoingContext(testCtx(t), ForwardedForKey, "root")
	_, err = client(t, leader, "reader").Produce(ctx, &loghousev1.ProduceRequest{Records: values("no", 1, 0)})
	wantCode(t, err, codes.PermissionDenied, `"reader" may not forward`)

	// A server forwarding for a reader gets the reader's rights.
	ctx = metadata.AppendToOutgoingContext(testCtx(t), ForwardedForKey, "reader")
	_, err = client(t, leader, "server:"+f.id).Produce(ctx, &loghousev1.ProduceRequest{Records: values("no", 1, 0)})
	wantCode(t, err, codes.PermissionDenied, `"reader" may not produce`)

	// A forwarded request is never forwarded again: a follower that gets
	// one answers that it is not the leader.
	other := c.nodes[0]
	for _, n := range c.nodes {
		if n != leader && n != f {
			other = n
		}
	}
	ctx = metadata.AppendToOutgoingContext(testCtx(t), ForwardedForKey, "writer")
	_, err = client(t, other, "server:"+f.id).Produce(ctx, &loghousev1.ProduceRequest{Records: values("no", 1, 0)})
	st := wantCode(t, err, codes.Unavailable, "not the leader")
	if e := errorMessage(st.Err()); e.Indeterminate || e.LeaderAddr != leader.addr {
		t.Fatalf("detail %v", e)
	}
	if n := leader.node.Log.NextOffset(); n != resp.BaseOffset+3 {
		t.Fatalf("log holds %d records, want %d: a refused write was stored", n, resp.BaseOffset+3)
	}
}

// TestForwardProduceStream pipelines requests through a follower: they are
// committed in the order sent, each answered once, in order.
func TestForwardProduceStream(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{forward: true})
	leader, f := c.leader(t), c.follower(t)
	stream, err := client(t, f, "writer").ProduceStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			if err := stream.Send(&loghousev1.ProduceRequest{Sequence: uint64(i + 1), Records: values(fmt.Sprint(i), 2, 0)}); err != nil {
				errc <- err
				return
			}
		}
		errc <- stream.CloseSend()
	}()
	var next uint64
	for i := range n {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if resp.Error != nil || resp.Sequence != uint64(i+1) || resp.Count != 2 {
			t.Fatalf("response %d: %v", i, resp)
		}
		if i > 0 && resp.BaseOffset < next {
			t.Fatalf("request %d committed at %d, before the previous one ended at %d", i, resp.BaseOffset, next)
		}
		next = resp.BaseOffset + 2
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Every request's records are in the log, in request order.
	all := consumeAll(t, client(t, leader, "root"), 0, next)
	i := 0
	for _, r := range all {
		if want := fmt.Sprintf("%d-0", i); string(r.Value) == want {
			i++
		}
	}
	if i != n {
		t.Fatalf("found %d of %d requests in order", i, n)
	}
}

// TestForwardWaitsForElection stops the leader and writes through a
// follower at once: the write waits for the next leader and succeeds
// within its deadline; with too short a deadline it fails as Unavailable
// (or DeadlineExceeded), never silently.
func TestForwardWaitsForElection(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{forward: true})
	leader, f := c.leader(t), c.follower(t)
	cl := client(t, f, "writer")
	c.stopNode(leader)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cl.Produce(ctx, &loghousev1.ProduceRequest{Records: values("after", 1, 0)})
	if err != nil {
		t.Fatalf("produce during an election: %v", err)
	}
	nl := c.leader(t)
	got := consumeAll(t, client(t, nl, "root"), resp.BaseOffset, resp.BaseOffset+1)
	if string(got[0].Value) != "after-0" {
		t.Fatalf("record %q", got[0].Value)
	}
}

// TestForwardNoQuorum writes through a follower that cannot reach a
// quorum: the call ends within its deadline with an error.
func TestForwardNoQuorum(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{forward: true})
	f := c.follower(t)
	for _, n := range c.nodes {
		if n != f {
			c.stopNode(n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := client(t, f, "writer").Produce(ctx, &loghousev1.ProduceRequest{Records: values("x", 1, 0)})
	if err == nil {
		t.Fatal("a write without a quorum succeeded")
	}
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Fatalf("code %v (%v), want Unavailable or DeadlineExceeded", code, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s", d)
	}
}

// TestRemovePeer removes a stopped server through a follower (forwarded
// to the leader); an unknown ID is NotFound; only admins may.
func TestRemovePeer(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{forward: true})
	leader, f := c.leader(t), c.follower(t)
	var gone *tnode
	for _, n := range c.nodes {
		if n != leader && n != f {
			gone = n
		}
	}
	c.stopNode(gone)
	_, err := client(t, f, "writer").RemovePeer(testCtx(t), &loghousev1.RemovePeerRequest{Id: gone.id})
	wantCode(t, err, codes.PermissionDenied, `"writer" may not admin`)
	_, err = client(t, f, "root").RemovePeer(testCtx(t), &loghousev1.RemovePeerRequest{Id: "nope"})
	wantCode(t, err, codes.NotFound, "nope")
	if _, err := client(t, f, "root").RemovePeer(testCtx(t), &loghousev1.RemovePeerRequest{Id: gone.id}); err != nil {
		t.Fatal(err)
	}
	servers, err := client(t, leader, "root").GetServers(testCtx(t), &loghousev1.GetServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(servers.Servers) != 2 {
		t.Fatalf("servers after remove-peer: %v", servers.Servers)
	}
	for _, s := range servers.Servers {
		if s.Id == gone.id {
			t.Fatalf("%s is still a server", gone.id)
		}
	}
	_, err = client(t, f, "root").Members(testCtx(t), &loghousev1.MembersRequest{})
	wantCode(t, err, codes.FailedPrecondition, "without gossip")
}
