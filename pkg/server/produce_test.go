package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/record"
)

// wantCode fails unless err is a status with code whose message holds
// every one of substrs.
func wantCode(t testing.TB, err error, code codes.Code, substrs ...string) *status.Status {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v is not a status, want %s", err, code)
	}
	if st.Code() != code {
		t.Fatalf("code %s (%q), want %s", st.Code(), st.Message(), code)
	}
	for _, s := range substrs {
		if !strings.Contains(st.Message(), s) {
			t.Fatalf("message %q does not mention %q", st.Message(), s)
		}
	}
	return st
}

// TestProduceConsume checks the produce and consume happy paths on one
// node: records come back with their key, value, headers, offset and the
// timestamp Produce reported; a request's records are one raft entry.
func TestProduceConsume(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	n := c.nodes[0]
	cl := client(t, n, "root")
	ctx := testCtx(t)

	recs := []*loghousev1.Record{
		{Value: []byte("v0")},
		{Value: []byte("v1"), Key: []byte("k1")},
		{Value: []byte("v2"), Key: []byte("k2"), Headers: []*loghousev1.Header{{Key: "h", Value: []byte("hv")}, {Key: "e"}}},
	}
	before := n.node.Log.LastIndex()
	resp, err := cl.Produce(ctx, &loghousev1.ProduceRequest{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 3 || resp.TimestampUnixNano == 0 {
		t.Fatalf("produce response %v", resp)
	}
	if got := n.node.Log.LastIndex() - before; got != 1 {
		t.Fatalf("one request took %d raft entries, want 1", got)
	}
	got, err := cl.Consume(ctx, &loghousev1.ConsumeRequest{Start: &loghousev1.ConsumeRequest_Offset{Offset: resp.BaseOffset}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Records) != 3 || got.NextOffset != resp.BaseOffset+3 || got.CommittedOffset != resp.BaseOffset+3 || got.FirstOffset != 0 {
		t.Fatalf("consume response: %d records, next %d, first %d, committed %d", len(got.Records), got.NextOffset, got.FirstOffset, got.CommittedOffset)
	}
	for i, r := range got.Records {
		want := recs[i]
		if r.Offset != resp.BaseOffset+uint64(i) || r.TimestampUnixNano != resp.TimestampUnixNano ||
			string(r.Value) != string(want.Value) || string(r.Key) != string(want.Key) || len(r.Headers) != len(want.Headers) {
			t.Fatalf("record %d: %v, want %v at offset %d time %d", i, r, want, resp.BaseOffset+uint64(i), resp.TimestampUnixNano)
		}
		for j, h := range r.Headers {
			if h.Key != want.Headers[j].Key || string(h.Value) != string(want.Headers[j].Value) {
				t.Fatalf("record %d header %d: %v, want %v", i, j, h, want.Headers[j])
			}
		}
	}
}

// TestProduceInvalid checks every InvalidArgument case and that nothing
// of a refused request reaches the log.
func TestProduceInvalid(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{server: func(cfg *Config) {
		cfg.MaxRecordBytes = 1000
		cfg.MaxRequestRecords = 10
		cfg.MaxBatchBytes = 4000
	}})
	n := c.nodes[0]
	cl := client(t, n, "root")
	big := &loghousev1.Record{Value: make([]byte, 1000)}
	tooManyHeaders := &loghousev1.Record{Headers: make([]*loghousev1.Header, record.MaxHeaders+1)}
	for i := range tooManyHeaders.Headers {
		tooManyHeaders.Headers[i] = &loghousev1.Header{Key: "h"}
	}
	cases := []struct {
		name  string
		recs  []*loghousev1.Record
		wants []string
	}{
		{"empty", nil, []string{"at least one record"}},
		{"too many records", values("x", 11, 1), []string{"11 records", "limit is 10"}},
		{"oversize record", append(values("x", 3, 1), big), []string{"record 3", "limit is 1000"}},
		{"oversize key and headers", []*loghousev1.Record{{Value: []byte("v")}, {Key: make([]byte, 600), Headers: []*loghousev1.Header{{Key: "h", Value: make([]byte, 500)}}}}, []string{"record 1", "limit is 1000"}},
		{"request too large", values("x", 5, 900), []string{"limit for one request is 4000"}},
		{"too many headers", []*loghousev1.Record{tooManyHeaders}, []string{"record 0", "headers"}},
	}
	before := n.node.Log.NextOffset()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cl.Produce(testCtx(t), &loghousev1.ProduceRequest{Records: tc.recs})
			wantCode(t, err, codes.InvalidArgument, tc.wants...)
		})
	}
	if got := n.node.Log.NextOffset(); got != before {
		t.Fatalf("refused requests appended %d records", got-before)
	}
	// The limits are inclusive: a record of exactly MaxRecordBytes goes in.
	exact := &loghousev1.Record{Value: make([]byte, 1000-4)} // key length, value length (2 bytes), header count
	if n := (&record.Record{Value: exact.Value}).EncodedSize(); n != 1000 {
		t.Fatalf("test record encodes to %d bytes", n)
	}
	if _, err := cl.Produce(testCtx(t), &loghousev1.ProduceRequest{Records: []*loghousev1.Record{exact}}); err != nil {
		t.Fatalf("record of exactly the limit: %v", err)
	}
}

// TestGroupCommit has 64 concurrent producers send many requests and
// checks that they share raft entries (far fewer entries than requests),
// that each request's records have consecutive offsets holding exactly its
// values, and that all offsets are unique and dense.
func TestGroupCommit(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	n := c.nodes[0]
	conn := dial(t, n, "root")
	const producers, perProducer, perRequest = 64, 20, 3
	startIndex, startOffset := n.node.Log.LastIndex(), n.node.Log.NextOffset()

	type ack struct {
		p, r int
		resp *loghousev1.ProduceResponse
	}
	acks := make(chan ack, producers*perProducer)
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := loghousev1.NewLogClient(conn)
			for r := range perProducer {
				resp, err := cl.Produce(context.Background(), &loghousev1.ProduceRequest{Records: values(fmt.Sprintf("p%d-r%d", p, r), perRequest, 0)})
				if err != nil {
					errs <- err
					return
				}
				acks <- ack{p, r, resp}
			}
		}()
	}
	wg.Wait()
	close(acks)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	requests := producers * perProducer
	entries := n.node.Log.LastIndex() - startIndex
	t.Logf("%d requests took %d raft entries (%d batches)", requests, entries, n.srv.committer.batches.Load())
	if entries > uint64(requests/4) {
		t.Fatalf("%d requests took %d raft entries: no group commit", requests, entries)
	}

	total := uint64(requests * perRequest)
	recs := consumeAll(t, client(t, n, "root"), startOffset, startOffset+total)
	seen := make(map[uint64]bool)
	for a := range acks {
		if a.resp.Count != perRequest {
			t.Fatalf("request p%d-r%d: count %d", a.p, a.r, a.resp.Count)
		}
		for i := range uint64(perRequest) {
			off := a.resp.BaseOffset + i
			if seen[off] {
				t.Fatalf("offset %d acknowledged twice", off)
			}
			seen[off] = true
			if off < startOffset || off >= startOffset+total {
				t.Fatalf("offset %d outside [%d, %d)", off, startOffset, startOffset+total)
			}
			if got, want := string(recs[off-startOffset].Value), fmt.Sprintf("p%d-r%d-%d", a.p, a.r, i); got != want {
				t.Fatalf("offset %d holds %q, want %q", off, got, want)
			}
		}
	}
	if uint64(len(seen)) != total {
		t.Fatalf("%d offsets acknowledged, want %d", len(seen), total)
	}
	if got := n.node.Log.NextOffset(); got != startOffset+total {
		t.Fatalf("log holds %d new records, want %d", got-startOffset, total)
	}
}

// TestProduceCancelled checks that a request whose caller has gone does
// not disturb the others of its batch: the committer leaves it out, and
// every other request gets its own consecutive offsets.
func TestProduceCancelled(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	n := c.nodes[0]
	s := n.srv
	start := n.node.Log.NextOffset()

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	mk := func(ctx context.Context, prefix string, k int) *request {
		r, err := s.newRequest(ctx, msgFromProto(&loghousev1.ProduceRequest{Records: values(prefix, k, 0)}, s.cfg.limits()))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Submit straight to the committer so that the requests queue together
	// and the cancelled one sits between the others.
	reqs := []*request{mk(context.Background(), "a", 2), mk(gone, "gone", 5), mk(context.Background(), "b", 3)}
	for _, r := range reqs {
		if err := s.committer.submit(r); err != nil {
			t.Fatal(err)
		}
	}
	ra, rg, rb := <-reqs[0].done, <-reqs[1].done, <-reqs[2].done
	if !errors.Is(rg.err, context.Canceled) {
		t.Fatalf("cancelled request: %+v", rg)
	}
	if ra.err != nil || rb.err != nil || ra.count != 2 || rb.count != 3 {
		t.Fatalf("results %+v %+v", ra, rb)
	}
	if n.node.Log.NextOffset() != start+5 {
		t.Fatalf("log grew by %d records, want 5", n.node.Log.NextOffset()-start)
	}
	recs := consumeAll(t, client(t, n, "root"), start, start+5)
	for _, w := range []struct {
		res    result
		prefix string
	}{{ra, "a"}, {rb, "b"}} {
		for i := range w.res.count {
			if got, want := string(recs[w.res.base+uint64(i)-start].Value), fmt.Sprintf("%s-%d", w.prefix, i); got != want {
				t.Fatalf("offset %d holds %q, want %q", w.res.base+uint64(i), got, want)
			}
		}
	}
}

// TestProduceStream sends many requests before reading any answer and
// checks that every request is answered once, in order, with its sequence
// echoed; that a bad request is answered with its error while the stream
// goes on; and that the requests were committed in shared entries (so the
// stream did not wait for one before submitting the next).
func TestProduceStream(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	n := c.nodes[0]
	cl := client(t, n, "root")
	stream, err := cl.ProduceStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	const requests, bad = 300, 137
	startIndex, startOffset := n.node.Log.LastIndex(), n.node.Log.NextOffset()
	seq := func(i int) uint64 { return uint64(i)*7 + 3 }
	for i := range requests {
		req := &loghousev1.ProduceRequest{Sequence: seq(i), Records: values(fmt.Sprintf("s%d", i), 2, 0)}
		if i == bad {
			req.Records = nil
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	next := startOffset
	for i := range requests {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if resp.Sequence != seq(i) {
			t.Fatalf("response %d echoes sequence %d, want %d", i, resp.Sequence, seq(i))
		}
		if i == bad {
			if resp.Error == nil || codes.Code(resp.Error.Code) != codes.InvalidArgument {
				t.Fatalf("bad request answered with %v", resp)
			}
			continue
		}
		if resp.Error != nil || resp.Count != 2 || resp.BaseOffset != next {
			t.Fatalf("response %d: %v, want base offset %d", i, resp, next)
		}
		next += 2
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last response: %v, want EOF", err)
	}
	entries := n.node.Log.LastIndex() - startIndex
	t.Logf("%d pipelined requests took %d raft entries", requests, entries)
	if entries >= requests-1 {
		t.Fatalf("%d pipelined requests took %d raft entries: the stream did not pipeline", requests-1, entries)
	}
	recs := consumeAll(t, cl, startOffset, next)
	for i, k := 0, 0; i < requests; i++ {
		if i == bad {
			continue
		}
		for j := range 2 {
			if got, want := string(recs[k].Value), fmt.Sprintf("s%d-%d", i, j); got != want {
				t.Fatalf("offset %d holds %q, want %q", startOffset+uint64(k), got, want)
			}
			k++
		}
	}
}

// TestNotLeader produces on a follower: Unavailable whose message,
// details and trailer name the leader; on a stream, every request is
// answered with that error and the stream goes on.
func TestNotLeader(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{})
	leader, f := c.leader(t), c.follower(t)
	cl := client(t, f, "root")

	var trailer metadata.MD
	_, err := cl.Produce(testCtx(t), &loghousev1.ProduceRequest{Records: values("x", 1, 0)}, grpc.Trailer(&trailer))
	st := wantCode(t, err, codes.Unavailable, "not the leader", leader.addr, leader.id)
	var detail *loghousev1.Error
	for _, d := range st.Details() {
		if e, ok := d.(*loghousev1.Error); ok {
			detail = e
		}
	}
	if detail == nil || detail.LeaderAddr != leader.addr || codes.Code(detail.Code) != codes.Unavailable {
		t.Fatalf("details %v, want a loghousev1.Error naming %s", st.Details(), leader.addr)
	}
	if got := trailer.Get(LeaderTrailer); len(got) != 1 || got[0] != leader.addr {
		t.Fatalf("trailer %s = %v, want %s", LeaderTrailer, got, leader.addr)
	}

	stream, err := cl.ProduceStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := stream.Send(&loghousev1.ProduceRequest{Sequence: uint64(i + 1), Records: values("x", 1, 0)}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.Sequence != uint64(i+1) || resp.Error == nil || codes.Code(resp.Error.Code) != codes.Unavailable || resp.Error.LeaderAddr != leader.addr {
			t.Fatalf("stream response %d: %v", i, resp)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}

	// The leader takes the write.
	if _, err := client(t, leader, "root").Produce(testCtx(t), &loghousev1.ProduceRequest{Records: values("x", 1, 0)}); err != nil {
		t.Fatal(err)
	}
}

// TestFailedApplyFailsBatch makes raft refuse a batch of three requests:
// each of them fails, with Unavailable once mapped, and none is stored.
func TestFailedApplyFailsBatch(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	n := c.nodes[0]
	s := n.srv
	if err := n.node.Raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	before := n.node.Log.NextOffset()
	// Queue the three requests in one step, as submit would, so that they
	// form one batch.
	batches := s.committer.batches.Load()
	var reqs []*request
	for i := range 3 {
		r, err := s.newRequest(context.Background(), msgFromProto(&loghousev1.ProduceRequest{Records: values(fmt.Sprint(i), 2, 0)}, s.cfg.limits()))
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, r)
	}
	s.committer.mu.Lock()
	s.committer.queue = append(s.committer.queue, reqs...)
	s.committer.mu.Unlock()
	select {
	case s.committer.wake <- struct{}{}:
	default:
	}
	for i, r := range reqs {
		res := <-r.done
		if !errors.Is(res.err, raft.ErrRaftShutdown) {
			t.Fatalf("request %d: %+v", i, res)
		}
		st := s.toStatus(context.Background(), res.err)
		wantCode(t, st, codes.Unavailable, "shut down while committing")
		if e := errorMessage(st); !e.GetIndeterminate() {
			t.Fatalf("request %d: a batch handed to raft failed without indeterminate: %v", i, e)
		}
	}
	if got := s.committer.batches.Load() - batches; got != 1 {
		t.Fatalf("three queued requests formed %d batches, want 1", got)
	}
	if n.node.Log.NextOffset() != before {
		t.Fatal("a refused batch was stored")
	}
}

// TestAbandonedFuture checks that the committer stops waiting for a raft
// future that will never be answered once raft has shut down.
func TestAbandonedFuture(t *testing.T) {
	down := make(chan struct{})
	c := &committer{raftDown: down, logger: testLogger(t, "committer")}
	release := make(chan struct{})
	defer close(release)
	got := make(chan error, 1)
	go func() { got <- c.futureError(stuckFuture{release}) }()
	close(down)
	if err := <-got; !errors.Is(err, errApplyAbandoned) || !errors.Is(err, raft.ErrRaftShutdown) {
		t.Fatalf("got %v, want errApplyAbandoned", err)
	}
}

// stuckFuture is an ApplyFuture that raft never answers.
type stuckFuture struct{ release chan struct{} }

func (f stuckFuture) Error() error {
	<-f.release
	return nil
}
func (stuckFuture) Response() any { return nil }
func (stuckFuture) Index() uint64 { return 0 }

// rawCodec sends a rawMsg's bytes as they are, so a test can put
// malformed bytes on the wire, and decodes responses with protobuf.
type rawCodec struct{}

type rawMsg []byte

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(rawMsg); ok {
		return mem.BufferSlice{mem.SliceBuffer(m)}, nil
	}
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2("proto").Unmarshal(data, v)
}

// TestProduceMalformed sends bytes that are not a ProduceRequest: a
// unary Produce and a ProduceStream request are answered with
// InvalidArgument naming the problem, the stream goes on, and nothing is
// stored.
func TestProduceMalformed(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	n := c.nodes[0]
	conn := dial(t, n, "root", grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	ctx := testCtx(t)
	before := n.node.Log.NextOffset()
	// A record (field 1) whose length runs past the end of the message.
	bad := rawMsg{0x0a, 0x05, 0x0a, 0x01}
	var resp loghousev1.ProduceResponse
	err := conn.Invoke(ctx, loghousev1.Log_Produce_FullMethodName, bad, &resp)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "malformed produce request") {
		t.Fatalf("unary: %v, want InvalidArgument naming a malformed request", err)
	}

	desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
	st, err := conn.NewStream(ctx, desc, loghousev1.Log_ProduceStream_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	good, err := proto.Marshal(&loghousev1.ProduceRequest{Sequence: 2, Records: values("ok", 1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	// A header key that is not UTF-8, then a good request.
	badKey := rawMsg{0x0a, 0x05, 0x2a, 0x03, 0x0a, 0x01, 0xff, 0x10, 0x01}
	for _, m := range []rawMsg{badKey, good} {
		if err := st.SendMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var first, second loghousev1.ProduceResponse
	if err := st.RecvMsg(&first); err != nil {
		t.Fatal(err)
	}
	if first.GetError() == nil || codes.Code(first.GetError().GetCode()) != codes.InvalidArgument || !strings.Contains(first.GetError().GetMessage(), "UTF-8") {
		t.Fatalf("stream answer to a malformed request: %v", &first)
	}
	if err := st.RecvMsg(&second); err != nil {
		t.Fatal(err)
	}
	if second.GetError() != nil || second.GetSequence() != 2 || second.GetCount() != 1 || second.GetBaseOffset() != before {
		t.Fatalf("stream answer to the good request: %v", &second)
	}
	if got := n.node.Log.NextOffset(); got != before+1 {
		t.Fatalf("log grew by %d records, want 1", got-before)
	}
}
