package commitlog

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// scanResult is what a sequential pass over a store file found.
type scanResult struct {
	idx     []byte      // index entries of the whole entries kept
	points  []timePoint // sparse time index of the entries kept
	count   uint64      // entries kept (up to the last batch end)
	end     int64       // store position after the last entry kept
	maxTime int64       // running maximum time after the last entry kept
	nextOff uint64      // record offset after the last entry kept

	// Where the pass stopped early, if it did: the first byte that is not
	// part of a whole, valid entry, and why.
	stopped    bool
	stopPos    int64
	stopReason string
	// whole entries that were valid but followed the last batch end, and
	// so are dropped with the torn batch.
	unfinished int
}

// scanStore reads a store file from its first entry to size, validating the
// framing, checksum, index and offset continuity of every entry. It keeps
// entries up to the last one that ended a batch.
func scanStore(f vfs.File, size int64, hdr fileHeader, interval int) (scanResult, error) {
	r := scanResult{end: fileHeaderSize, maxTime: hdr.startTime, nextOff: hdr.baseOffset}
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	var (
		pos        = int64(fileHeaderSize)
		bufStart   = int64(0)
		bufLen     = 0
		wantIndex  = hdr.baseIndex
		wantOffset = hdr.baseOffset
		runMax     = hdr.startTime
		lastPoint  = int64(math.MinInt64)
		// pending entries since the last batch end
		pendIdx    []byte
		pendPoints []timePoint
		pendCount  uint64
	)
	stop := func(reason string) {
		r.stopped, r.stopPos, r.stopReason = true, pos, reason
	}
	for pos < size {
		// Make sure the header is in the buffer.
		if pos+entryHeaderSize > bufStart+int64(bufLen) {
			if size-pos < entryHeaderSize {
				stop(fmt.Sprintf("torn entry header: %d bytes before end of file", size-pos))
				break
			}
			n, err := readFull(f, buf, pos, size)
			if err != nil {
				return r, err
			}
			bufStart, bufLen = pos, n
		}
		hb := buf[pos-bufStart:]
		h, err := decodeEntryHeader(hb)
		if err != nil {
			stop(err.Error())
			break
		}
		esz := h.size()
		if pos+esz > size {
			stop(fmt.Sprintf("torn entry: %d bytes needed, %d before end of file", esz, size-pos))
			break
		}
		if pos+esz > bufStart+int64(bufLen) {
			if int64(len(buf)) < esz {
				buf = make([]byte, esz)
			}
			n, err := readFull(f, buf, pos, size)
			if err != nil {
				return r, err
			}
			bufStart, bufLen = pos, n
		}
		eb := buf[pos-bufStart : pos-bufStart+esz]
		if err := verifyEntry(&h, eb); err != nil {
			stop(err.Error())
			break
		}
		if h.index != wantIndex {
			stop(fmt.Sprintf("entry index %d, want %d", h.index, wantIndex))
			break
		}
		if h.offset != wantOffset {
			stop(fmt.Sprintf("entry offset %d, want %d", h.offset, wantOffset))
			break
		}
		if h.time > runMax {
			runMax = h.time
		}
		var ie [indexEntrySize]byte
		putIndexEntry(ie[:], uint64(pos), h.offset)
		pendIdx = append(pendIdx, ie[:]...)
		if r.count+pendCount == 0 || pos-lastPoint >= int64(interval) {
			pendPoints = append(pendPoints, timePoint{time: runMax, index: h.index})
			lastPoint = pos
		}
		pendCount++
		wantIndex++
		wantOffset += uint64(h.count)
		pos += esz
		if h.flags&flagBatchEnd != 0 {
			r.idx = append(r.idx, pendIdx...)
			r.points = append(r.points, pendPoints...)
			r.count += pendCount
			r.end = pos
			r.maxTime = runMax
			r.nextOff = wantOffset
			pendIdx, pendPoints, pendCount = pendIdx[:0], pendPoints[:0], 0
		}
	}
	if pendCount > 0 {
		r.unfinished = int(pendCount)
		if !r.stopped {
			r.stopped, r.stopPos, r.stopReason = true, pos, "batch not finished"
		}
	}
	return r, nil
}

// readFull reads as much of buf as the file holds from pos (up to size).
func readFull(f vfs.File, buf []byte, pos, size int64) (int, error) {
	want := len(buf)
	if rem := size - pos; rem < int64(want) {
		want = int(rem)
	}
	n, err := f.ReadAt(buf[:want], pos)
	if n == want {
		return n, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return n, fmt.Errorf("commitlog: read %s: %d bytes at %d, file shrank", f.Name(), n, pos)
	}
	return n, fmt.Errorf("commitlog: read %s: %w", f.Name(), err)
}
