package client

import (
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// Codec is the gRPC codec the Client uses: protobuf for every message,
// except that a ConsumeResponse is decoded with few allocations: its
// records come in slabs of up to 128, and their values and keys are copied
// into shared 16 KiB chunks (see DESIGN.md, "Consume responses are decoded
// into slabs and chunks"). The result equals proto.Unmarshal's; a message of
// any shape the fast path does not expect (unknown fields, a field of an
// unexpected wire type, a header key that is not UTF-8, malformed bytes) is
// left to proto.Unmarshal, so errors are protobuf's own.
//
// A record kept after the rest of its response is dropped keeps its slab
// and chunk in memory, 32 KiB: copy the record to keep a few for long.
// Each Value and Key has its own capacity, so appending to one never
// writes over another.
//
// Programs that call the generated loghousev1 stubs on their own
// connection can use it too:
//
//	grpc.WithDefaultCallOptions(grpc.ForceCodecV2(client.Codec{}))
type Codec struct{}

var protoCodec = encoding.GetCodecV2(grpcproto.Name)

// Name is protobuf's: the messages on the wire are plain protobuf.
func (Codec) Name() string { return grpcproto.Name }

// Marshal is protobuf's.
func (Codec) Marshal(v any) (mem.BufferSlice, error) { return protoCodec.Marshal(v) }

// Unmarshal decodes a ConsumeResponse with decodeConsume, anything else
// with protobuf.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*loghousev1.ConsumeResponse)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	// The message in one piece: the decoded records own copies of what
	// they need, so a pooled buffer does, and gRPC's pool would zero it.
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		p := getMsgBuf(data.Len())
		defer putMsgBuf(p)
		b = (*p)[:data.CopyTo(*p)]
	}
	if decodeConsume(b, m) {
		return nil
	}
	return proto.Unmarshal(b, m) // resets m first; copies what it keeps
}

// msgBufs holds *[]byte buffers for messages that come in several pieces.
var msgBufs sync.Pool

// maxPooledMsg is the largest buffer kept for reuse: twice the servers'
// default response limit.
const maxPooledMsg = 2 << 20

func getMsgBuf(n int) *[]byte {
	if p, ok := msgBufs.Get().(*[]byte); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n)
	return &b
}

func putMsgBuf(p *[]byte) {
	if cap(*p) <= maxPooledMsg {
		msgBufs.Put(p)
	}
}

const (
	// slabRecords is how many records share one allocation: 16 KiB of
	// 128-byte Records.
	slabRecords = 128
	// chunkBytes is the size of the chunks values and keys are copied
	// into. Chunks and slabs are small objects to Go's allocator (up to
	// 32 KiB less a header), which recycles them; fresh large objects
	// would cost page faults and the scavenger's madvise calls, a quarter
	// of a consumer's CPU on a paravirtualized VM.
	chunkBytes = 16 << 10
	// ownBytes is the length from which a value has its own allocation,
	// so chunks are not left mostly empty.
	ownBytes = chunkBytes / 4
)

// chunks hands out copies of byte slices, carved from shared chunks.
type chunks struct{ cur []byte }

// copy returns a copy of v with its own capacity (nil if v is empty, as
// protobuf decodes an empty bytes field).
func (c *chunks) copy(v []byte) []byte {
	switch {
	case len(v) == 0:
		return nil
	case len(v) >= ownBytes:
		return append([]byte(nil), v...)
	case len(v) > cap(c.cur)-len(c.cur):
		c.cur = make([]byte, 0, chunkBytes)
	}
	n := len(c.cur)
	c.cur = append(c.cur, v...)
	return c.cur[n:len(c.cur):len(c.cur)]
}

// decodeConsume fills m from the serialized ConsumeResponse b as
// proto.Unmarshal would, with the records in slabs and their bytes in
// chunks; nothing in m aliases b. It reports false, with m in any state,
// where b holds anything else than the fields of log.proto with their
// declared wire types (proto.Unmarshal then decides).
func decodeConsume(b []byte, m *loghousev1.ConsumeResponse) bool {
	// First pass: the top level, and the number of records.
	n := 0
	var next, first, committed uint64
	for rest := b; len(rest) > 0; {
		num, typ, l := protowire.ConsumeTag(rest)
		if l < 0 {
			return false
		}
		rest = rest[l:]
		switch {
		case num == loghousev1.FieldConsumeResponseRecords && typ == protowire.BytesType:
			_, l = protowire.ConsumeBytes(rest)
			n++
		case num >= loghousev1.FieldConsumeResponseNextOffset && num <= loghousev1.FieldConsumeResponseCommittedOffset && typ == protowire.VarintType:
			var v uint64
			v, l = protowire.ConsumeVarint(rest)
			switch num { // the last of a field sent twice wins
			case loghousev1.FieldConsumeResponseNextOffset:
				next = v
			case loghousev1.FieldConsumeResponseFirstOffset:
				first = v
			default:
				committed = v
			}
		default:
			return false
		}
		if l < 0 {
			return false
		}
		rest = rest[l:]
	}
	// Second pass: the records.
	var (
		ptrs []*loghousev1.Record
		slab []loghousev1.Record
		c    chunks
	)
	if n > 0 {
		ptrs = make([]*loghousev1.Record, n)
	}
	i := 0
	for rest := b; len(rest) > 0; {
		num, _, l := protowire.ConsumeTag(rest)
		rest = rest[l:]
		if num != loghousev1.FieldConsumeResponseRecords {
			_, l = protowire.ConsumeVarint(rest)
			rest = rest[l:]
			continue
		}
		v, l := protowire.ConsumeBytes(rest)
		rest = rest[l:]
		if len(slab) == 0 {
			slab = make([]loghousev1.Record, min(n-i, slabRecords))
		}
		r := &slab[0]
		slab = slab[1:]
		if !decodeRecord(v, r, &c) {
			return false
		}
		ptrs[i] = r
		i++
	}
	m.Records, m.NextOffset, m.FirstOffset, m.CommittedOffset = ptrs, next, first, committed
	return true
}

// decodeRecord fills r from the serialized Record b, its bytes copied
// with c; false as for decodeConsume.
func decodeRecord(b []byte, r *loghousev1.Record, c *chunks) bool {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return false
		}
		b = b[l:]
		switch {
		case (num == loghousev1.FieldRecordValue || num == loghousev1.FieldRecordKey) && typ == protowire.BytesType:
			var v []byte
			v, l = protowire.ConsumeBytes(b)
			if num == loghousev1.FieldRecordValue {
				r.Value = c.copy(v)
			} else {
				r.Key = c.copy(v)
			}
		case (num == loghousev1.FieldRecordOffset || num == loghousev1.FieldRecordTimestamp) && typ == protowire.VarintType:
			var v uint64
			v, l = protowire.ConsumeVarint(b)
			if num == loghousev1.FieldRecordOffset {
				r.Offset = v
			} else {
				r.TimestampUnixNano = int64(v)
			}
		case num == loghousev1.FieldRecordHeaders && typ == protowire.BytesType:
			var v []byte
			v, l = protowire.ConsumeBytes(b)
			if l >= 0 {
				h := new(loghousev1.Header)
				if !decodeHeader(v, h, c) {
					return false
				}
				r.Headers = append(r.Headers, h)
			}
		default:
			return false
		}
		if l < 0 {
			return false
		}
		b = b[l:]
	}
	return true
}

// decodeHeader fills h from the serialized Header b; false as for
// decodeConsume, and for a key that is not UTF-8 (a proto3 string).
func decodeHeader(b []byte, h *loghousev1.Header, c *chunks) bool {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 || typ != protowire.BytesType || (num != loghousev1.FieldHeaderKey && num != loghousev1.FieldHeaderValue) {
			return false
		}
		b = b[l:]
		v, l := protowire.ConsumeBytes(b)
		if l < 0 {
			return false
		}
		b = b[l:]
		if num == loghousev1.FieldHeaderValue {
			h.Value = c.copy(v)
			continue
		}
		if !utf8.Valid(v) {
			return false
		}
		h.Key = string(v)
	}
	return true
}
