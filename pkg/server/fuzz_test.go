package server

import (
	"bytes"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/record"
)

// FuzzProduceRequest feeds arbitrary bytes to the produce codec as a wire
// message would arrive, and checks it against protobuf's own decoder
// followed by the same limits (referenceMsg): a message protobuf refuses
// is refused with InvalidArgument; one it accepts gets the same verdict
// from both, and an accepted one the same batch, within every limit,
// holding exactly the records protobuf decoded.
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
		{Key: []byte("k"), Value: bytes.Repeat([]byte("x"), 300), Offset: 9, TimestampUnixNano: -1, Headers: []*loghousev1.Header{{Key: "h", Value: []byte("1")}, {Key: "", Value: nil}}},
		{Value: nil},
	}})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0x0f})
	// A value sent twice (the last wins), an unknown field, a known
	// field of the wrong wire type, a group, a header key not UTF-8.
	f.Add([]byte{0x0a, 0x0a, 0x0a, 0x01, 'a', 0x0a, 0x01, 'b', 0x30, 0x01, 0x10, 0x05})
	f.Add([]byte{0x0a, 0x04, 0x08, 0x01, 0x0b, 0x0c})
	f.Add([]byte{0x0a, 0x05, 0x2a, 0x03, 0x0a, 0x01, 0xff})
	cfg := Config{MaxRecordBytes: 1 << 10, MaxRequestRecords: 64, MaxBatchBytes: 4 << 10}.withDefaults()
	lim := cfg.limits()
	f.Fuzz(func(t *testing.T, wire []byte) {
		var got produceMsg
		got.parse(wire, lim)
		var req loghousev1.ProduceRequest
		if err := proto.Unmarshal(wire, &req); err != nil {
			if got.err == nil || status.Code(got.err) != codes.InvalidArgument {
				t.Fatalf("protobuf refuses the message (%v), the codec gives %v", err, got.err)
			}
			return
		}
		want := referenceMsg(&req, lim)
		if (got.err == nil) != (want.err == nil) {
			t.Fatalf("codec: %v, protobuf and limits: %v", got.err, want.err)
		}
		if got.err != nil {
			if status.Code(got.err) != codes.InvalidArgument || status.Code(want.err) != codes.InvalidArgument {
				t.Fatalf("refused with %v / %v, want InvalidArgument", got.err, want.err)
			}
			return
		}
		if got.seq != req.GetSequence() || got.count != len(req.GetRecords()) || !bytes.Equal(got.buf, want.buf) {
			t.Fatalf("codec: seq %d, %d records, %x; protobuf: seq %d, %d records, %x", got.seq, got.count, got.buf, req.GetSequence(), len(req.GetRecords()), want.buf)
		}
		if got.count == 0 || got.count > cfg.MaxRequestRecords || len(got.body()) > cfg.MaxBatchBytes {
			t.Fatalf("accepted %d records of %d bytes beyond the limits", got.count, len(got.body()))
		}
		data := slices.Clone(got.buf)
		record.PutBatchHeader(data, uint32(got.count))
		recs, err := record.Decode(data)
		if err != nil || len(recs) != len(req.Records) {
			t.Fatalf("decode: %d records, %v", len(recs), err)
		}
		for i, pr := range req.Records {
			g := recs[i]
			if g.EncodedSize() > cfg.MaxRecordBytes {
				t.Fatalf("accepted record %d of %d bytes", i, g.EncodedSize())
			}
			if !bytes.Equal(g.Key, pr.Key) || !bytes.Equal(g.Value, pr.Value) || len(g.Headers) != len(pr.Headers) {
				t.Fatalf("record %d changed on the way: %+v, sent %+v", i, g, pr)
			}
			for j, h := range pr.Headers {
				if g.Headers[j].Name != h.Key || !bytes.Equal(g.Headers[j].Value, h.Value) {
					t.Fatalf("record %d header %d changed", i, j)
				}
			}
		}
		back, err := got.toProto()
		if err != nil || !proto.Equal(back, &loghousev1.ProduceRequest{Sequence: req.Sequence, Records: stripAssigned(req.Records)}) {
			t.Fatalf("toProto: %v, %v", back, err)
		}
	})
}

// stripAssigned returns recs without the fields the cluster assigns and
// without unknown fields, as a batch gives them back.
func stripAssigned(recs []*loghousev1.Record) []*loghousev1.Record {
	out := make([]*loghousev1.Record, len(recs))
	for i, r := range recs {
		out[i] = &loghousev1.Record{Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			out[i].Headers = append(out[i].Headers, &loghousev1.Header{Key: h.Key, Value: h.Value})
		}
	}
	return out
}

// referenceMsg is the test's model of parse: the produceMsg of a
// ProduceRequest that protobuf unmarshalled, built from its fields with
// the limits written out again, independently of the wire parser.
func referenceMsg(req *loghousev1.ProduceRequest, lim limits) *produceMsg {
	m := &produceMsg{seq: req.GetSequence()}
	in := req.GetRecords()
	size := 0
	var refused error
	for i, pr := range in {
		n := record.HeadSize(len(pr.GetKey()), len(pr.GetValue()), len(pr.GetHeaders()))
		for _, h := range pr.GetHeaders() {
			n += record.HeaderSize(len(h.GetKey()), len(h.GetValue()))
		}
		switch {
		case refused != nil:
		case len(pr.GetHeaders()) > record.MaxHeaders:
			refused = status.Errorf(codes.InvalidArgument, "server: record %d has %d headers, the limit is %d", i, len(pr.GetHeaders()), record.MaxHeaders)
		case n > lim.maxRecordBytes:
			refused = status.Errorf(codes.InvalidArgument, "server: record %d takes %d bytes (key, value and headers), the limit is %d", i, n, lim.maxRecordBytes)
		}
		size += n
	}
	switch {
	case len(in) == 0:
		m.err = status.Error(codes.InvalidArgument, "server: a produce request needs at least one record")
	case len(in) > lim.maxRequestRecords:
		m.err = status.Errorf(codes.InvalidArgument, "server: %d records in one request, the limit is %d", len(in), lim.maxRequestRecords)
	case refused != nil:
		m.err = refused
	case size > lim.maxBatchBytes:
		m.err = status.Errorf(codes.InvalidArgument, "server: the request's records take %d bytes, the limit for one request is %d", size, lim.maxBatchBytes)
	}
	if m.err != nil {
		return m
	}
	buf := make([]byte, record.BatchHeaderSize, record.BatchHeaderSize+size)
	for _, pr := range in {
		buf = record.AppendRecordHead(buf, pr.GetKey(), pr.GetValue(), len(pr.GetHeaders()))
		for _, h := range pr.GetHeaders() {
			buf = record.AppendHeader(buf, []byte(h.GetKey()), h.GetValue())
		}
	}
	m.count, m.buf = len(in), buf
	return m
}
