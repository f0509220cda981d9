package server

import (
	"bytes"
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/record"
)

// FuzzProduceRequest feeds arbitrary bytes to produce-request validation
// as a wire message would arrive: whatever decodes must either be refused
// with InvalidArgument, or be accepted within every limit and encode into
// a batch that decodes back to exactly the records sent.
func FuzzProduceRequest(f *testing.F) {
	seed := func(m *loghousev1.ProduceRequest) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&loghousev1.ProduceRequest{})
	seed(&loghousev1.ProduceRequest{Records: []*loghousev1.Record{{Value: []byte("v")}}})
	seed(&loghousev1.ProduceRequest{Sequence: 7, Records: []*loghousev1.Record{
		{Key: []byte("k"), Value: bytes.Repeat([]byte("x"), 300), Headers: []*loghousev1.Header{{Key: "h", Value: []byte("1")}, {Key: "", Value: nil}}},
		{Value: nil},
	}})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0x0f})
	cfg := Config{MaxRecordBytes: 1 << 10, MaxRequestRecords: 64, MaxBatchBytes: 4 << 10}.withDefaults()
	s := &Server{cfg: cfg}
	f.Fuzz(func(t *testing.T, wire []byte) {
		var req loghousev1.ProduceRequest
		if err := proto.Unmarshal(wire, &req); err != nil {
			return // gRPC refuses it before the handler
		}
		r, err := s.newRequest(context.Background(), &req)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("refused with %v, want InvalidArgument", err)
			}
			return
		}
		if len(r.recs) == 0 || len(r.recs) > cfg.MaxRequestRecords || r.size > cfg.MaxBatchBytes {
			t.Fatalf("accepted %d records of %d bytes beyond the limits", len(r.recs), r.size)
		}
		size := 0
		for i := range r.recs {
			n := r.recs[i].EncodedSize()
			if n > cfg.MaxRecordBytes {
				t.Fatalf("accepted record %d of %d bytes", i, n)
			}
			size += n
		}
		if size != r.size {
			t.Fatalf("request size %d, records add up to %d", r.size, size)
		}
		batch, err := record.AppendBatch(nil, r.recs)
		if err != nil {
			t.Fatalf("an accepted request does not encode: %v", err)
		}
		got, err := record.Decode(batch)
		if err != nil || len(got) != len(req.Records) {
			t.Fatalf("decode: %d records, %v", len(got), err)
		}
		for i, pr := range req.Records {
			g := got[i]
			if !bytes.Equal(g.Key, pr.Key) || !bytes.Equal(g.Value, pr.Value) || len(g.Headers) != len(pr.Headers) {
				t.Fatalf("record %d changed on the way: %+v, sent %+v", i, g, pr)
			}
			for j, h := range pr.Headers {
				if g.Headers[j].Name != h.Key || !bytes.Equal(g.Headers[j].Value, h.Value) {
					t.Fatalf("record %d header %d changed", i, j)
				}
			}
		}
	})
}
