package server

import (
	"sync"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/record"
)

// consumeWire is a ConsumeResponse in its protobuf wire encoding, which
// the server's codec sends as it is (ConsumeStream). next is its
// next_offset.
type consumeWire struct {
	data mem.Buffer
	next uint64
}

// wireResponse encodes records into a ConsumeResponse's wire form, as
// proto.Marshal would (fields in number order, zero values left out).
type wireResponse struct {
	buf   []byte
	limit responseLimit
}

func (w *wireResponse) add(off uint64, time int64, rec *record.Record) bool {
	if !w.limit.take(rec) {
		return false
	}
	b := protowire.AppendTag(w.buf, loghousev1.FieldConsumeResponseRecords, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(recordWireSize(off, time, rec)))
	b = appendBytesField(b, loghousev1.FieldRecordValue, rec.Value)
	b = appendVarintField(b, loghousev1.FieldRecordOffset, off)
	b = appendVarintField(b, loghousev1.FieldRecordTimestamp, uint64(time))
	b = appendBytesField(b, loghousev1.FieldRecordKey, rec.Key)
	for _, h := range rec.Headers {
		b = protowire.AppendTag(b, loghousev1.FieldRecordHeaders, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(headerWireSize(h)))
		b = appendBytesField(b, loghousev1.FieldHeaderKey, []byte(h.Name))
		b = appendBytesField(b, loghousev1.FieldHeaderValue, h.Value)
	}
	w.buf = b
	return true
}

// finish appends the response's offsets.
func (w *wireResponse) finish(next, first, committed uint64) {
	w.buf = appendVarintField(w.buf, loghousev1.FieldConsumeResponseNextOffset, next)
	w.buf = appendVarintField(w.buf, loghousev1.FieldConsumeResponseFirstOffset, first)
	w.buf = appendVarintField(w.buf, loghousev1.FieldConsumeResponseCommittedOffset, committed)
}

func recordWireSize(off uint64, time int64, rec *record.Record) int {
	n := bytesFieldSize(len(rec.Value)) + varintFieldSize(off) + varintFieldSize(uint64(time)) + bytesFieldSize(len(rec.Key))
	for _, h := range rec.Headers {
		n += 1 + protowire.SizeBytes(headerWireSize(h))
	}
	return n
}

func headerWireSize(h record.Header) int {
	return bytesFieldSize(len(h.Name)) + bytesFieldSize(len(h.Value))
}

// The field numbers here are all below 16, so each tag is one byte.

func bytesFieldSize(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + protowire.SizeBytes(n)
}

func varintFieldSize(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// wireBuffers recycles response encodings once gRPC has written them out
// (it releases a mem.Buffer then, not when SendMsg returns), in a few size
// classes so that a small response never holds a large buffer. Unlike
// gRPC's default pool it does not clear them: only what was written is
// sent.
type wireBuffers struct{ classes [wireClasses]sync.Pool }

// The classes are 16 KiB, 64 KiB, 256 KiB and 1 MiB; other sizes are
// allocated and left to the GC.
const (
	wireClasses   = 4
	wireClassBase = 16 << 10
)

func wireClass(size int) int {
	for k := range wireClasses {
		if size <= wireClassBase<<(2*k) {
			return k
		}
	}
	return -1
}

// Get implements mem.BufferPool.
func (p *wireBuffers) Get(n int) *[]byte {
	k := wireClass(n)
	if k < 0 {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[k].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, wireClassBase<<(2*k))
	return &b
}

// Put implements mem.BufferPool.
func (p *wireBuffers) Put(b *[]byte) {
	if k := wireClass(cap(*b)); k >= 0 && cap(*b) == wireClassBase<<(2*k) {
		p.classes[k].Put(b)
	}
}

// wireSizeHint is the size of the buffer a response is encoded into: a
// quarter more than the stream's last response (last, 0 for the first),
// and never more than room for maxBytes of records and their fields. A
// response that needs more grows its buffer, unpooled.
func wireSizeHint(maxRecords, maxBytes, last int) int {
	most := maxBytes + 32*maxRecords + 64
	if last == 0 {
		return min(most, 1<<20)
	}
	return min(most, last+last/4+512)
}
