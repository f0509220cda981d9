package commitlog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// On-disk constants; doc.go describes the format these implement.
const (
	fileHeaderSize  = 64
	entryHeaderSize = 56
	indexEntrySize  = 16
	timePointSize   = 16
	timeTrailerSize = 8

	formatVersion = 1

	// maxFormatEntryBytes bounds an entry's payload (extensions + data) in
	// the format itself, whatever Options.MaxEntryBytes says, so a corrupt
	// length can never make the decoder allocate gigabytes.
	maxFormatEntryBytes = 1 << 30

	flagBatchEnd = 1 << 0
	knownFlags   = flagBatchEnd
)

var (
	magicStore = [8]byte{'L', 'H', 'S', 'T', 'O', 'R', 'E', 0}
	magicIndex = [8]byte{'L', 'H', 'I', 'N', 'D', 'E', 'X', 0}
	magicTime  = [8]byte{'L', 'H', 'T', 'I', 'M', 'E', 'X', 0}

	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// fileHeader starts every store, index and time index file.
type fileHeader struct {
	magic      [8]byte
	baseIndex  uint64
	baseOffset uint64
	created    int64 // unix nanoseconds
	startTime  int64 // running maximum entry time before this segment
}

func (h fileHeader) encode() []byte {
	b := make([]byte, fileHeaderSize)
	copy(b[0:8], h.magic[:])
	binary.LittleEndian.PutUint32(b[8:], formatVersion)
	binary.LittleEndian.PutUint32(b[12:], 0)
	binary.LittleEndian.PutUint64(b[16:], h.baseIndex)
	binary.LittleEndian.PutUint64(b[24:], h.baseOffset)
	binary.LittleEndian.PutUint64(b[32:], uint64(h.created))
	binary.LittleEndian.PutUint64(b[40:], uint64(h.startTime))
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

func decodeFileHeader(b []byte, magic [8]byte) (fileHeader, error) {
	var h fileHeader
	if len(b) < fileHeaderSize {
		return h, fmt.Errorf("header is %d bytes, want %d", len(b), fileHeaderSize)
	}
	copy(h.magic[:], b[0:8])
	if h.magic != magic {
		return h, fmt.Errorf("bad magic %q, want %q", h.magic[:], magic[:])
	}
	if got, want := binary.LittleEndian.Uint32(b[60:]), crc32.Checksum(b[:60], castagnoli); got != want {
		return h, fmt.Errorf("header checksum %#08x, want %#08x", got, want)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != formatVersion {
		return h, fmt.Errorf("format version %d, this build reads version %d", v, formatVersion)
	}
	if f := binary.LittleEndian.Uint32(b[12:]); f != 0 {
		return h, fmt.Errorf("unknown header flags %#x", f)
	}
	h.baseIndex = binary.LittleEndian.Uint64(b[16:])
	h.baseOffset = binary.LittleEndian.Uint64(b[24:])
	h.created = int64(binary.LittleEndian.Uint64(b[32:]))
	h.startTime = int64(binary.LittleEndian.Uint64(b[40:]))
	if h.baseIndex == 0 {
		return h, fmt.Errorf("base index 0 (indexes start at 1)")
	}
	return h, nil
}

// entryHeader is the fixed part of a stored entry.
type entryHeader struct {
	crc     uint32
	dataLen uint32
	extLen  uint32
	flags   uint8
	typ     uint8
	index   uint64
	term    uint64
	offset  uint64
	time    int64
	count   uint32
}

func (h *entryHeader) size() int64 {
	return entryHeaderSize + int64(h.extLen) + int64(h.dataLen)
}

// putEntry encodes e into b, which must be exactly entryHeaderSize +
// len(e.Extensions) + len(e.Data) long.
func putEntry(b []byte, e *Entry, flags uint8) {
	binary.LittleEndian.PutUint32(b[4:], uint32(len(e.Data)))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(e.Extensions)))
	b[12] = flags
	b[13] = e.Type
	b[14], b[15] = 0, 0
	binary.LittleEndian.PutUint64(b[16:], e.Index)
	binary.LittleEndian.PutUint64(b[24:], e.Term)
	binary.LittleEndian.PutUint64(b[32:], e.Offset)
	binary.LittleEndian.PutUint64(b[40:], uint64(e.Time))
	binary.LittleEndian.PutUint32(b[48:], e.Count)
	binary.LittleEndian.PutUint32(b[52:], 0)
	n := copy(b[entryHeaderSize:], e.Extensions)
	copy(b[entryHeaderSize+n:], e.Data)
	binary.LittleEndian.PutUint32(b[0:], crc32.Checksum(b[4:], castagnoli))
}

// decodeEntryHeader parses and sanity-checks an entry header. It does not
// check the checksum, which covers the payload too (see verifyEntry).
func decodeEntryHeader(b []byte) (entryHeader, error) {
	var h entryHeader
	if len(b) < entryHeaderSize {
		return h, fmt.Errorf("entry header is %d bytes, want %d", len(b), entryHeaderSize)
	}
	h.crc = binary.LittleEndian.Uint32(b[0:])
	h.dataLen = binary.LittleEndian.Uint32(b[4:])
	h.extLen = binary.LittleEndian.Uint32(b[8:])
	h.flags = b[12]
	h.typ = b[13]
	h.index = binary.LittleEndian.Uint64(b[16:])
	h.term = binary.LittleEndian.Uint64(b[24:])
	h.offset = binary.LittleEndian.Uint64(b[32:])
	h.time = int64(binary.LittleEndian.Uint64(b[40:]))
	h.count = binary.LittleEndian.Uint32(b[48:])
	if h.flags&^knownFlags != 0 {
		return h, fmt.Errorf("unknown entry flags %#x", h.flags)
	}
	if b[14] != 0 || b[15] != 0 || binary.LittleEndian.Uint32(b[52:]) != 0 {
		return h, fmt.Errorf("reserved entry header bytes are not zero")
	}
	if uint64(h.dataLen)+uint64(h.extLen) > maxFormatEntryBytes {
		return h, fmt.Errorf("entry payload of %d bytes exceeds the format limit of %d", uint64(h.dataLen)+uint64(h.extLen), maxFormatEntryBytes)
	}
	if h.index == 0 {
		return h, fmt.Errorf("entry index 0")
	}
	if h.offset > math.MaxUint64-uint64(h.count) {
		return h, fmt.Errorf("entry offset %d + count %d overflows", h.offset, h.count)
	}
	return h, nil
}

// verifyEntry checks the checksum of a whole encoded entry b (header and
// payload, exactly h.size() bytes).
func verifyEntry(h *entryHeader, b []byte) error {
	if got := crc32.Checksum(b[4:], castagnoli); got != h.crc {
		return fmt.Errorf("entry checksum %#08x, want %#08x", got, h.crc)
	}
	return nil
}

// AppendEntry appends e in the store's entry framing (header with checksum,
// extensions, data) to dst, for streams that carry entries between logs
// (raft snapshots); DecodeEntry reads it back. The batch-end flag is set.
func AppendEntry(dst []byte, e *Entry) []byte {
	n := entryHeaderSize + len(e.Extensions) + len(e.Data)
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	putEntry(dst[start:], e, flagBatchEnd)
	return dst
}

// DecodeEntry decodes one whole stored entry from b, checking its checksum.
// It returns the entry (aliasing b) and the number of bytes it used. It is the
// decoder the log uses for every read; a dump tool can use it too.
func DecodeEntry(b []byte) (Entry, int, error) {
	h, err := decodeEntryHeader(b)
	if err != nil {
		return Entry{}, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	n := h.size()
	if int64(len(b)) < n {
		return Entry{}, 0, fmt.Errorf("%w: entry needs %d bytes, have %d", ErrCorrupt, n, len(b))
	}
	if err := verifyEntry(&h, b[:n]); err != nil {
		return Entry{}, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return entryFromHeader(&h, b[:n]), int(n), nil
}

func entryFromHeader(h *entryHeader, b []byte) Entry {
	ext := b[entryHeaderSize : entryHeaderSize+int64(h.extLen)]
	data := b[entryHeaderSize+int64(h.extLen) : h.size()]
	if len(ext) == 0 {
		ext = nil
	}
	return Entry{
		Index:      h.index,
		Term:       h.term,
		Type:       h.typ,
		Time:       h.time,
		Offset:     h.offset,
		Count:      h.count,
		Extensions: ext,
		Data:       data,
	}
}

func putIndexEntry(b []byte, pos, offset uint64) {
	binary.LittleEndian.PutUint64(b[0:], pos)
	binary.LittleEndian.PutUint64(b[8:], offset)
}

func getIndexEntry(b []byte) (pos, offset uint64) {
	return binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:])
}

// timePoint is one entry of a sparse time index: the running maximum entry
// time at (and including) entry index.
type timePoint struct {
	time  int64
	index uint64
}

func encodeTimeIndex(h fileHeader, pts []timePoint) []byte {
	b := make([]byte, 0, fileHeaderSize+len(pts)*timePointSize+timeTrailerSize)
	b = append(b, h.encode()...)
	for _, p := range pts {
		b = binary.LittleEndian.AppendUint64(b, uint64(p.time))
		b = binary.LittleEndian.AppendUint64(b, p.index)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(pts)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b
}

func decodeTimeIndex(b []byte) (fileHeader, []timePoint, error) {
	h, err := decodeFileHeader(b, magicTime)
	if err != nil {
		return h, nil, err
	}
	if len(b) < fileHeaderSize+timeTrailerSize {
		return h, nil, fmt.Errorf("time index of %d bytes has no trailer", len(b))
	}
	body := b[:len(b)-4]
	if got, want := binary.LittleEndian.Uint32(b[len(b)-4:]), crc32.Checksum(body, castagnoli); got != want {
		return h, nil, fmt.Errorf("time index checksum %#08x, want %#08x", got, want)
	}
	n := int(binary.LittleEndian.Uint32(b[len(b)-8:]))
	if fileHeaderSize+n*timePointSize+timeTrailerSize != len(b) {
		return h, nil, fmt.Errorf("time index claims %d points in %d bytes", n, len(b))
	}
	pts := make([]timePoint, n)
	for i := range pts {
		p := b[fileHeaderSize+i*timePointSize:]
		pts[i] = timePoint{time: int64(binary.LittleEndian.Uint64(p)), index: binary.LittleEndian.Uint64(p[8:])}
	}
	return h, pts, nil
}
