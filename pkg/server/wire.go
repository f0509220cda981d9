package server

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/record"
)

// produceMsg is a ProduceRequest as the server receives it: codec parses
// the wire bytes straight into the record batch encoding, so a request's
// records are copied once, into the bytes raft will store, and no
// per-record message or slice is allocated (see DESIGN.md, "Produce
// requests are parsed into the batch encoding").
type produceMsg struct {
	seq   uint64
	count int    // records
	buf   []byte // record.BatchHeaderSize spare bytes, then the records
	// err, when set, is why the request is refused (InvalidArgument): it
	// is malformed or breaks a limit. The server answers it per request,
	// so a bad request on a ProduceStream does not end the stream.
	err error
}

// body is the records' batch encoding without the batch header.
func (m *produceMsg) body() []byte { return m.buf[record.BatchHeaderSize:] }

// limits bounds what parse accepts.
type limits struct {
	maxRecordBytes, maxRequestRecords, maxBatchBytes int
}

func (c Config) limits() limits {
	return limits{maxRecordBytes: c.MaxRecordBytes, maxRequestRecords: c.MaxRequestRecords, maxBatchBytes: c.MaxBatchBytes}
}

// errMalformed wraps what parse finds wrong with the wire bytes.
var errMalformed = errors.New("malformed produce request")

// parse fills m from a serialized ProduceRequest, as proto.Unmarshal and
// then the checks of a produce would: for a singular field sent twice the
// last wins, fields of the wrong wire type and unknown fields are skipped,
// header keys must be UTF-8 (a proto3 string). A message that does not
// parse, or that breaks a limit, leaves m.err set and m.buf nil.
func (m *produceMsg) parse(b []byte, lim limits) {
	*m = produceMsg{}
	// First pass: check everything and size the batch.
	size := 0
	var refused error // the first record that breaks a limit
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, u uint64) error {
		switch {
		case num == loghousev1.FieldProduceRequestRecords && typ == protowire.BytesType:
			i := m.count
			m.count++
			r, err := parseRecord(v)
			if err != nil {
				return fmt.Errorf("%w: record %d: %w", errMalformed, i, err)
			}
			n := r.size()
			switch {
			case refused != nil:
			case r.headers > record.MaxHeaders:
				refused = status.Errorf(codes.InvalidArgument, "server: record %d has %d headers, the limit is %d", i, r.headers, record.MaxHeaders)
			case n > lim.maxRecordBytes:
				refused = status.Errorf(codes.InvalidArgument, "server: record %d takes %d bytes (key, value and headers), the limit is %d", i, n, lim.maxRecordBytes)
			}
			size += n
		case num == loghousev1.FieldProduceRequestSequence && typ == protowire.VarintType:
			m.seq = u
		}
		return nil
	})
	switch {
	case err != nil:
		m.err = status.Errorf(codes.InvalidArgument, "server: %v", err)
	case m.count == 0:
		m.err = status.Error(codes.InvalidArgument, "server: a produce request needs at least one record")
	case m.count > lim.maxRequestRecords:
		m.err = status.Errorf(codes.InvalidArgument, "server: %d records in one request, the limit is %d", m.count, lim.maxRequestRecords)
	case refused != nil:
		m.err = refused
	case size > lim.maxBatchBytes:
		m.err = status.Errorf(codes.InvalidArgument, "server: the request's records take %d bytes, the limit for one request is %d", size, lim.maxBatchBytes)
	}
	if m.err != nil {
		return
	}
	// Second pass: encode. The first pass checked every byte read here.
	buf := make([]byte, record.BatchHeaderSize, record.BatchHeaderSize+size)
	_ = eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != loghousev1.FieldProduceRequestRecords || typ != protowire.BytesType {
			return nil
		}
		r, _ := parseRecord(v)
		buf = record.AppendRecordHead(buf, r.key, r.value, r.headers)
		return eachField(v, func(num protowire.Number, typ protowire.Type, hv []byte, _ uint64) error {
			if num == loghousev1.FieldRecordHeaders && typ == protowire.BytesType {
				name, value, _ := parseHeader(hv)
				buf = record.AppendHeader(buf, name, value)
			}
			return nil
		})
	})
	if len(buf) != record.BatchHeaderSize+size {
		// The passes disagree: a bug, never the client's fault.
		m.err = status.Errorf(codes.Internal, "server: encoded %d bytes of records, expected %d", len(buf)-record.BatchHeaderSize, size)
		return
	}
	m.buf = buf
}

// wireRecord is what parseRecord finds in one Record message.
type wireRecord struct {
	key, value  []byte
	headers     int
	headerBytes int // their batch encoding
}

func (r wireRecord) size() int {
	return record.HeadSize(len(r.key), len(r.value), r.headers) + r.headerBytes
}

func parseRecord(b []byte) (wireRecord, error) {
	var r wireRecord
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case loghousev1.FieldRecordValue:
			r.value = v
		case loghousev1.FieldRecordKey:
			r.key = v
		case loghousev1.FieldRecordHeaders:
			name, value, err := parseHeader(v)
			if err != nil {
				return fmt.Errorf("header %d: %w", r.headers, err)
			}
			r.headers++
			r.headerBytes += record.HeaderSize(len(name), len(value))
		}
		return nil
	})
	return r, err
}

func parseHeader(b []byte) (name, value []byte, err error) {
	err = eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case loghousev1.FieldHeaderKey:
			if !utf8.Valid(v) {
				return errors.New("the key is not valid UTF-8")
			}
			name = v
		case loghousev1.FieldHeaderValue:
			value = v
		}
		return nil
	})
	return name, value, err
}

// eachField calls fn for each field of the message b: its number, wire
// type, and its bytes (BytesType) or value (VarintType). It stops at the
// first error fn returns, or at malformed bytes.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, u uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %w", errMalformed, protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber {
			return fmt.Errorf("%w: field number %d out of range", errMalformed, num)
		}
		b = b[n:]
		var v []byte
		var u uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			u, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %w", errMalformed, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, u); err != nil {
			return err
		}
	}
	return nil
}

// msgFromProto builds the produceMsg of a ProduceRequest already
// unmarshalled (a caller of Server.Produce that is not gRPC) through the
// same parser as the wire, so there is one set of checks.
func msgFromProto(req *loghousev1.ProduceRequest, lim limits) *produceMsg {
	m := new(produceMsg)
	b, err := proto.Marshal(req)
	if err != nil {
		m.err = status.Errorf(codes.InvalidArgument, "server: %s: %v", errMalformed, err)
		return m
	}
	m.parse(b, lim)
	return m
}

// toProto returns the records of m as a ProduceRequest, for a follower
// that forwards them to the leader.
func (m *produceMsg) toProto() (*loghousev1.ProduceRequest, error) {
	// The header space is the request's own; the committer writes the
	// same header there if the request reaches it.
	record.PutBatchHeader(m.buf, uint32(m.count))
	d, err := record.NewDecoder(m.buf)
	if err != nil {
		return nil, err
	}
	req := &loghousev1.ProduceRequest{Sequence: m.seq, Records: make([]*loghousev1.Record, 0, m.count)}
	for {
		var r record.Record
		ok, err := d.Next(&r)
		if err != nil {
			return nil, err
		}
		if !ok {
			return req, nil
		}
		pr := &loghousev1.Record{Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			pr.Headers = append(pr.Headers, &loghousev1.Header{Key: h.Name, Value: h.Value})
		}
		req.Records = append(req.Records, pr)
	}
}

// codec is the server's gRPC codec: protobuf for every message, except
// that a produceMsg is parsed by produceMsg.parse and a consumeWire is sent
// as it is already encoded.
type codec struct {
	proto encoding.CodecV2
	lim   limits
}

func newCodec(lim limits) codec {
	return codec{proto: encoding.GetCodecV2(grpcproto.Name), lim: lim}
}

func (c codec) Name() string { return grpcproto.Name }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*consumeWire); ok {
		return mem.BufferSlice{m.data}, nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*produceMsg)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	m.parse(buf.ReadOnlyData(), c.lim)
	return nil
}
