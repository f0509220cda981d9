package server

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// TestConsumeWireMatchesProto: the encoding ConsumeStream sends is
// byte for byte what proto.Marshal makes of the response the unary path
// builds, for every start offset and limit over a log with empty and full
// values, keys and headers, and a stream's run of responses (which keeps
// its iterator and the entry it stopped inside) is the same as chaining
// unary reads.
func TestConsumeWireMatchesProto(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{server: func(cfg *Config) { cfg.ConsumeMaxBytes = 700 }})
	n := c.nodes[0]
	cl := client(t, n, "root")
	for b := range 6 {
		var recs []*loghousev1.Record
		for i := range 1 + b*7 {
			r := &loghousev1.Record{Value: bytes.Repeat([]byte{byte('a' + i%26)}, (i*37+b)%90)}
			if i%3 == 0 {
				r.Key = []byte(fmt.Sprint("k", b, i))
			}
			if i%4 == 1 {
				r.Headers = []*loghousev1.Header{{Key: "h", Value: []byte("v")}, {Key: "", Value: nil}, {Key: "only-key"}}
			}
			recs = append(recs, r)
		}
		produce(t, cl, recs)
	}
	s := n.srv
	committed, _ := s.node.FSM.Committed()
	for off := uint64(0); off < committed; off++ {
		for _, maxRecords := range []int{1, 3, 1000} {
			want, err := s.read(off, committed, maxRecords)
			if err != nil {
				t.Fatalf("read(%d, max %d): %v", off, maxRecords, err)
			}
			wantBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := s.readWire(off, committed, maxRecords, &entryCache{})
			if err != nil {
				t.Fatalf("readWire(%d, max %d): %v", off, maxRecords, err)
			}
			if got := msg.data.ReadOnlyData(); !bytes.Equal(got, wantBytes) {
				var dec loghousev1.ConsumeResponse
				derr := proto.Unmarshal(got, &dec)
				t.Fatalf("readWire(%d, max %d) = %d bytes (decoded: %v, %v), proto.Marshal of read's response %d bytes (%v)",
					off, maxRecords, len(got), &dec, derr, len(wantBytes), want)
			}
			if msg.next != want.NextOffset {
				t.Fatalf("readWire(%d, max %d) next %d, want %d", off, maxRecords, msg.next, want.NextOffset)
			}
		}
	}
	// A stream's run of responses against chained unary reads.
	for _, maxRecords := range []int{2, 5, 1000} {
		cache := &entryCache{}
		for off := uint64(0); off < committed; {
			want, err := s.read(off, committed, maxRecords)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := s.readWire(off, committed, maxRecords, cache)
			if err != nil {
				t.Fatal(err)
			}
			var got loghousev1.ConsumeResponse
			if err := proto.Unmarshal(msg.data.ReadOnlyData(), &got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&got, want) {
				t.Fatalf("stream response at %d (max %d) = %v, want %v", off, maxRecords, &got, want)
			}
			msg.data.Free()
			off = msg.next
		}
	}
}

// TestWireBuffersClasses: a buffer comes from the smallest class that
// holds the request, so a small response never pins a large buffer, and
// only buffers of a class size go back to the pool.
func TestWireBuffersClasses(t *testing.T) {
	var p wireBuffers
	for _, tc := range []struct{ n, wantCap int }{
		{1, 16 << 10}, {16 << 10, 16 << 10}, {16<<10 + 1, 64 << 10}, {200 << 10, 256 << 10}, {1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 1},
	} {
		b := p.Get(tc.n)
		if len(*b) != tc.n || cap(*b) != tc.wantCap {
			t.Fatalf("Get(%d): len %d cap %d, want cap %d", tc.n, len(*b), cap(*b), tc.wantCap)
		}
	}
	if wireSizeHint(1000, 1<<20, 0) != 1<<20 || wireSizeHint(1000, 1<<20, 1000) != 1000+250+512 || wireSizeHint(10, 100, 1<<20) != 100+320+64 {
		t.Fatalf("wireSizeHint: %d, %d, %d", wireSizeHint(1000, 1<<20, 0), wireSizeHint(1000, 1<<20, 1000), wireSizeHint(10, 100, 1<<20))
	}
}
