// Package record defines Loghouse's records and the batch encoding that
// carries them inside one raft log entry (and so one commit log entry).
//
// A record is a value with an optional key and headers. Its offset and
// timestamp are not stored in the record: the offset is the entry's base
// offset plus the record's position in the batch, and the timestamp is the
// entry's time, assigned by the raft leader. So a record is written once,
// with no per-record metadata beyond lengths.
//
// # Batch encoding
//
// Integers are unsigned varints (encoding/binary) unless noted.
//
//	byte 0      kind: 0x01 = record batch (other kinds are reserved for
//	            future commands and hold no records)
//	bytes 1..4  record count, uint32 little-endian
//	then, per record:
//	  key length, key bytes
//	  value length, value bytes
//	  header count, then per header: name length, name, value length, value
//
// The count sits at a fixed place so that the log can learn how many offsets
// an entry takes without decoding its records.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// KindBatch marks a command that carries a batch of records.
const KindBatch byte = 0x01

const batchHeaderSize = 5

// Limits that make a batch decodable without trusting its lengths.
const (
	// MaxRecords is the most records one batch may hold.
	MaxRecords = 1 << 20
	// MaxHeaders is the most headers one record may carry.
	MaxHeaders = 1 << 10
)

// ErrMalformed means bytes are not a valid batch.
var ErrMalformed = errors.New("record: malformed batch")

// Header is one record header.
type Header struct {
	Name  string
	Value []byte
}

// Record is one record as producers send it and consumers receive it.
type Record struct {
	Key     []byte
	Value   []byte
	Headers []Header
}

// EncodedSize is the number of bytes r takes in a batch.
func (r *Record) EncodedSize() int {
	n := HeadSize(len(r.Key), len(r.Value), len(r.Headers))
	for _, h := range r.Headers {
		n += HeaderSize(len(h.Name), len(h.Value))
	}
	return n
}

// AppendBatch appends the batch encoding of recs to dst and returns it.
func AppendBatch(dst []byte, recs []Record) ([]byte, error) {
	if len(recs) > MaxRecords {
		return dst, fmt.Errorf("record: %d records in one batch, the limit is %d", len(recs), MaxRecords)
	}
	size := BatchHeaderSize
	for i := range recs {
		if len(recs[i].Headers) > MaxHeaders {
			return dst, fmt.Errorf("record: record %d has %d headers, the limit is %d", i, len(recs[i].Headers), MaxHeaders)
		}
		size += recs[i].EncodedSize()
	}
	if cap(dst)-len(dst) < size {
		grown := make([]byte, len(dst), len(dst)+size)
		copy(grown, dst)
		dst = grown
	}
	dst = append(dst, make([]byte, BatchHeaderSize)...)
	PutBatchHeader(dst[len(dst)-BatchHeaderSize:], uint32(len(recs)))
	for i := range recs {
		r := &recs[i]
		dst = AppendRecordHead(dst, r.Key, r.Value, len(r.Headers))
		for _, h := range r.Headers {
			dst = binary.AppendUvarint(dst, uint64(len(h.Name)))
			dst = append(dst, h.Name...)
			dst = appendBytes(dst, h.Value)
		}
	}
	return dst, nil
}

// BatchHeaderSize is the size of a batch's header, which precedes its
// records. A batch's records are the concatenation of each record's
// encoding, so batches can be joined: one header, then the records of
// each.
const BatchHeaderSize = batchHeaderSize

// PutBatchHeader writes the header of a batch of count records into
// dst[:BatchHeaderSize].
func PutBatchHeader(dst []byte, count uint32) {
	dst[0] = KindBatch
	binary.LittleEndian.PutUint32(dst[1:batchHeaderSize], count)
}

// AppendRecordHead appends the encoding of a record's key, value and
// header count; the record's headers, each appended with AppendHeader,
// must follow.
func AppendRecordHead(dst, key, value []byte, headers int) []byte {
	dst = appendBytes(dst, key)
	dst = appendBytes(dst, value)
	return binary.AppendUvarint(dst, uint64(headers))
}

// AppendHeader appends the encoding of one header.
func AppendHeader(dst, name, value []byte) []byte {
	dst = appendBytes(dst, name)
	return appendBytes(dst, value)
}

// HeadSize is the size of AppendRecordHead's encoding.
func HeadSize(keyLen, valueLen, headers int) int {
	return uvarintLen(uint64(keyLen)) + keyLen + uvarintLen(uint64(valueLen)) + valueLen + uvarintLen(uint64(headers))
}

// HeaderSize is the size of AppendHeader's encoding.
func HeaderSize(nameLen, valueLen int) int {
	return uvarintLen(uint64(nameLen)) + nameLen + uvarintLen(uint64(valueLen)) + valueLen
}

// Count returns how many records data holds: the batch's count for a record
// batch, 0 for any other command.
func Count(data []byte) uint32 {
	if len(data) < batchHeaderSize || data[0] != KindBatch {
		return 0
	}
	return binary.LittleEndian.Uint32(data[1:])
}

// Decoder walks the records of a batch without copying: the byte slices of
// the records it returns alias the batch.
type Decoder struct {
	data  []byte
	left  uint32
	count uint32
}

// NewDecoder checks a batch's header and returns a decoder for its records.
func NewDecoder(data []byte) (*Decoder, error) {
	if len(data) < batchHeaderSize || data[0] != KindBatch {
		return nil, fmt.Errorf("%w: not a record batch", ErrMalformed)
	}
	n := binary.LittleEndian.Uint32(data[1:])
	if n > MaxRecords {
		return nil, fmt.Errorf("%w: %d records, the limit is %d", ErrMalformed, n, MaxRecords)
	}
	return &Decoder{data: data[batchHeaderSize:], left: n, count: n}, nil
}

// Count is the number of records in the batch.
func (d *Decoder) Count() uint32 { return d.count }

// Next decodes the next record into r (reusing r.Headers' storage). It
// returns false when the batch is exhausted; a malformed batch is an error.
func (d *Decoder) Next(r *Record) (bool, error) {
	if d.left == 0 {
		if len(d.data) != 0 {
			return false, fmt.Errorf("%w: %d bytes after the last record", ErrMalformed, len(d.data))
		}
		return false, nil
	}
	var err error
	if r.Key, err = d.bytes(); err != nil {
		return false, err
	}
	if r.Value, err = d.bytes(); err != nil {
		return false, err
	}
	nh, err := d.uvarint()
	if err != nil {
		return false, err
	}
	if nh > MaxHeaders {
		return false, fmt.Errorf("%w: %d headers, the limit is %d", ErrMalformed, nh, MaxHeaders)
	}
	r.Headers = r.Headers[:0]
	for range nh {
		name, err := d.bytes()
		if err != nil {
			return false, err
		}
		val, err := d.bytes()
		if err != nil {
			return false, err
		}
		r.Headers = append(r.Headers, Header{Name: string(name), Value: val})
	}
	if len(r.Key) == 0 {
		r.Key = nil
	}
	if len(r.Headers) == 0 {
		r.Headers = nil
	}
	d.left--
	return true, nil
}

// Decode returns all records of a batch.
func Decode(data []byte) ([]Record, error) {
	d, err := NewDecoder(data)
	if err != nil {
		return nil, err
	}
	recs := make([]Record, 0, min(d.Count(), 4096))
	for {
		var r Record
		ok, err := d.Next(&r)
		if err != nil {
			return nil, err
		}
		if !ok {
			return recs, nil
		}
		recs = append(recs, r)
	}
}

func (d *Decoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.data)
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad length", ErrMalformed)
	}
	d.data = d.data[n:]
	return v, nil
}

func (d *Decoder) bytes() ([]byte, error) {
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(d.data)) {
		return nil, fmt.Errorf("%w: length %d exceeds the %d bytes left", ErrMalformed, n, len(d.data))
	}
	b := d.data[:n:n]
	d.data = d.data[n:]
	return b, nil
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
