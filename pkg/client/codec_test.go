package client

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// codecUnmarshal decodes b with Codec from a gRPC buffer that is
// overwritten after, as gRPC recycles it, so a result that aliased it
// instead of its own copy would change.
func codecUnmarshal(b []byte) (*loghousev1.ConsumeResponse, error) {
	buf := append([]byte(nil), b...)
	m := new(loghousev1.ConsumeResponse)
	err := Codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(buf)}, m)
	for i := range buf {
		buf[i] = 0xAA
	}
	return m, err
}

// checkSameAsProto fails unless Codec decodes b as proto.Unmarshal does:
// both fail, or both give equal messages.
func checkSameAsProto(t *testing.T, b []byte) {
	t.Helper()
	want := new(loghousev1.ConsumeResponse)
	werr := proto.Unmarshal(b, want)
	got, gerr := codecUnmarshal(b)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("Codec error %v, proto.Unmarshal error %v, on % x", gerr, werr, b)
	}
	if werr == nil && !proto.Equal(got, want) {
		t.Fatalf("Codec gave %v, proto.Unmarshal %v, on % x", got, want, b)
	}
}

func randomResponse(r *rand.Rand) *loghousev1.ConsumeResponse {
	bs := func(max int) []byte {
		b := make([]byte, r.IntN(max+1))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	m := &loghousev1.ConsumeResponse{NextOffset: r.Uint64(), FirstOffset: r.Uint64N(1000), CommittedOffset: r.Uint64()}
	for range r.IntN(20) {
		rec := &loghousev1.Record{Value: bs(300), Offset: r.Uint64(), TimestampUnixNano: int64(r.Uint64())}
		if r.IntN(3) == 0 {
			rec.Key = bs(10)
		}
		for range r.IntN(3) {
			rec.Headers = append(rec.Headers, &loghousev1.Header{Key: []string{"", "trace", "ключ"}[r.IntN(3)], Value: bs(5)})
		}
		m.Records = append(m.Records, rec)
	}
	return m
}

// TestCodecMatchesProto: for messages of every field, including extremes,
// Codec's result equals proto.Unmarshal's and owns its bytes.
func TestCodecMatchesProto(t *testing.T) {
	fixed := []*loghousev1.ConsumeResponse{
		{},
		{NextOffset: math.MaxUint64},
		{Records: []*loghousev1.Record{{}}},
		{Records: []*loghousev1.Record{{Value: []byte("v"), Offset: math.MaxUint64, TimestampUnixNano: math.MinInt64, Key: []byte("k")}}},
		{Records: []*loghousev1.Record{{TimestampUnixNano: -1, Headers: []*loghousev1.Header{{}, {Key: "k", Value: []byte("v")}}}}},
	}
	for _, m := range fixed {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		checkSameAsProto(t, b)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		b, err := proto.Marshal(randomResponse(r))
		if err != nil {
			t.Fatal(err)
		}
		checkSameAsProto(t, b)
		if !decodeConsume(b, new(loghousev1.ConsumeResponse)) {
			t.Fatalf("the fast path refused what proto.Marshal made: % x", b)
		}
	}
}

// TestCodecOddShapes: what the fast path does not expect is decoded, or
// refused, as protobuf does: fields sent twice, fields out of order,
// unknown fields (kept), wrong wire types, a header key that is not
// UTF-8, truncated messages.
func TestCodecOddShapes(t *testing.T) {
	rec := func(fields ...[]byte) []byte { return bytes.Join(fields, nil) }
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	byts := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	good := rec(byts(loghousev1.FieldRecordValue, []byte("value")), varint(loghousev1.FieldRecordOffset, 7))
	cases := map[string][]byte{
		"offset twice, last wins":  rec(varint(loghousev1.FieldConsumeResponseNextOffset, 1), byts(loghousev1.FieldConsumeResponseRecords, good), varint(loghousev1.FieldConsumeResponseNextOffset, 9)),
		"record fields twice":      byts(loghousev1.FieldConsumeResponseRecords, rec(good, byts(loghousev1.FieldRecordValue, []byte("second")), varint(loghousev1.FieldRecordOffset, 8))),
		"fields out of order":      rec(varint(loghousev1.FieldConsumeResponseCommittedOffset, 3), byts(loghousev1.FieldConsumeResponseRecords, rec(varint(loghousev1.FieldRecordOffset, 1), byts(loghousev1.FieldRecordKey, []byte("k")), byts(loghousev1.FieldRecordValue, []byte("v"))))),
		"unknown top-level field":  rec(byts(loghousev1.FieldConsumeResponseRecords, good), varint(99, 1)),
		"unknown record field":     byts(loghousev1.FieldConsumeResponseRecords, rec(good, byts(42, []byte("x")))),
		"unknown header field":     byts(loghousev1.FieldConsumeResponseRecords, byts(loghousev1.FieldRecordHeaders, rec(byts(loghousev1.FieldHeaderKey, []byte("k")), varint(3, 1)))),
		"offset as bytes":          byts(loghousev1.FieldConsumeResponseRecords, byts(loghousev1.FieldRecordOffset, []byte("x"))),
		"records as varint":        varint(loghousev1.FieldConsumeResponseRecords, 5),
		"header key not UTF-8":     byts(loghousev1.FieldConsumeResponseRecords, byts(loghousev1.FieldRecordHeaders, byts(loghousev1.FieldHeaderKey, []byte{0xff, 0xfe}))),
		"header key as varint":     byts(loghousev1.FieldConsumeResponseRecords, byts(loghousev1.FieldRecordHeaders, varint(loghousev1.FieldHeaderKey, 1))),
		"truncated record":         byts(loghousev1.FieldConsumeResponseRecords, good)[:5],
		"truncated varint":         {0x10, 0xff},
		"truncated tag":            {0xff},
		"record length past end":   {0x0a, 0x20, 0x0a},
		"group wire type":          {0x0b, 0x0c},
		"field number zero":        {0x00, 0x01},
		"empty value and key":      byts(loghousev1.FieldConsumeResponseRecords, rec(byts(loghousev1.FieldRecordValue, nil), byts(loghousev1.FieldRecordKey, nil))),
		"negative timestamp":       byts(loghousev1.FieldConsumeResponseRecords, varint(loghousev1.FieldRecordTimestamp, math.MaxUint64)),
		"header with no key given": byts(loghousev1.FieldConsumeResponseRecords, byts(loghousev1.FieldRecordHeaders, byts(loghousev1.FieldHeaderValue, []byte("v")))),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) { checkSameAsProto(t, b) })
	}
}

// TestCodecAllocations: a response's records cost an allocation per slab
// and per chunk, not a few per record.
func TestCodecAllocations(t *testing.T) {
	m := &loghousev1.ConsumeResponse{NextOffset: 1000}
	for i := range 1000 {
		m.Records = append(m.Records, &loghousev1.Record{Value: make([]byte, 256), Offset: uint64(i), TimestampUnixNano: 1})
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	data := mem.BufferSlice{mem.SliceBuffer(b)}
	allocs := testing.AllocsPerRun(20, func() {
		var got loghousev1.ConsumeResponse
		if err := (Codec{}).Unmarshal(data, &got); err != nil || len(got.Records) != 1000 {
			t.Fatalf("%d records, %v", len(got.Records), err)
		}
	})
	// 8 slabs of 128 records, 16 chunks of 64 values, the slice of
	// pointers and the buffer gRPC's pool hands out.
	if want := float64((1000+slabRecords-1)/slabRecords + (1000*256+chunkBytes-1)/chunkBytes + 2); allocs > want {
		t.Fatalf("%v allocations for 1000 records, want at most %v", allocs, want)
	}
}

// TestCodecRecordsOwnTheirBytes: appending to one record's value or key
// never writes over another's, however the values fall into chunks.
func TestCodecRecordsOwnTheirBytes(t *testing.T) {
	m := &loghousev1.ConsumeResponse{}
	for i, size := range []int{1, 100, ownBytes - 1, ownBytes, ownBytes + 1, chunkBytes, 5, 3 * chunkBytes, 7} {
		v := bytes.Repeat([]byte{byte('a' + i)}, size)
		m.Records = append(m.Records, &loghousev1.Record{Value: v, Key: v[:1], Offset: uint64(i)})
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := codecUnmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got.Records {
		r.Value = append(r.Value, "XYZ"...)
		r.Key = append(r.Key, "XYZ"...)
	}
	for i, r := range got.Records {
		want := append(bytes.Clone(m.Records[i].Value), "XYZ"...)
		if !bytes.Equal(r.Value, want) || !bytes.Equal(r.Key, append(bytes.Clone(m.Records[i].Key), "XYZ"...)) {
			t.Fatalf("record %d: value %.20q… key %q, written over", i, r.Value, r.Key)
		}
	}
}

// TestCodecSmallObjects: slabs and chunks stay small objects to Go's
// allocator (see chunkBytes).
func TestCodecSmallObjects(t *testing.T) {
	const maxSmall = 32<<10 - 8
	if slab := slabRecords * unsafe.Sizeof(loghousev1.Record{}); slab > maxSmall || chunkBytes > maxSmall {
		t.Fatalf("slab %d bytes, chunk %d: want both at most %d", slab, chunkBytes, maxSmall)
	}
}

// TestCodecSeveralPieces: a message that gRPC hands over in several
// buffers decodes as one, and the pooled copy it was decoded from is not
// aliased (a second message reuses it).
func TestCodecSeveralPieces(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var kept []*loghousev1.ConsumeResponse
	var wants []*loghousev1.ConsumeResponse
	for range 20 {
		want := randomResponse(r)
		b, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var data mem.BufferSlice
		for len(b) > 0 {
			n := min(len(b), 1+r.IntN(64))
			data = append(data, mem.SliceBuffer(b[:n]))
			b = b[n:]
		}
		got := new(loghousev1.ConsumeResponse)
		if err := (Codec{}).Unmarshal(data, got); err != nil {
			t.Fatal(err)
		}
		kept, wants = append(kept, got), append(wants, want)
	}
	for i := range kept {
		if !proto.Equal(kept[i], wants[i]) {
			t.Fatalf("message %d: got %v, want %v", i, kept[i], wants[i])
		}
	}
}

// BenchmarkCodecConsume decodes a response of 1,000 records of 256 bytes.
func BenchmarkCodecConsume(b *testing.B) {
	m := &loghousev1.ConsumeResponse{NextOffset: 1000}
	for i := range 1000 {
		m.Records = append(m.Records, &loghousev1.Record{Value: make([]byte, 256), Offset: uint64(i), TimestampUnixNano: 1})
	}
	buf, err := proto.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	data := mem.BufferSlice{mem.SliceBuffer(buf)}
	b.ReportAllocs()
	for b.Loop() {
		var got loghousev1.ConsumeResponse
		if err := (Codec{}).Unmarshal(data, &got); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCodecOtherMessages: messages other than ConsumeResponse are
// protobuf's, both ways.
func TestCodecOtherMessages(t *testing.T) {
	in := &loghousev1.ProduceRequest{Records: []*loghousev1.Record{{Value: []byte("v")}}, Sequence: 3}
	data, err := Codec{}.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := new(loghousev1.ProduceRequest)
	if err := (Codec{}).Unmarshal(data, out); err != nil || !proto.Equal(in, out) {
		t.Fatalf("got %v, %v; want %v", out, err, in)
	}
}

// FuzzCodecConsume: on any bytes, Codec and proto.Unmarshal agree.
func FuzzCodecConsume(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 8 {
		b, err := proto.Marshal(randomResponse(r))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x02, 0x2a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) { checkSameAsProto(t, b) })
}
