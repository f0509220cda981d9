package commitlog

// Benchmarks of the storage engine. The append and read benchmarks report
// records/s and MB/s of record payload (records are 256 bytes; a batched
// entry holds 64 of them), allocations, and, for appends and point reads, the
// p50, p99 and maximum latency of one call. The raw-* baselines do the same
// I/O without the engine. BenchmarkOpen reports the time of Open plus Close
// beside the log's size, segment count and active segment size.
//
// One round of every benchmark takes about a minute on the 2-core CI machine
// (the read and open benchmarks first build their logs, outside the timer):
//
//	go test -run='^$' -bench=. -benchtime=2s ./pkg/commitlog
//
// For numbers to compare, run five rounds in a loop rather than with
// -count=5: -count repeats each sub-benchmark back to back, while the loop
// runs each raw baseline and its loghouse twin alternately, so that both see
// the same disk conditions. Then summarize with benchstat
// (golang.org/x/perf/cmd/benchstat):
//
//	for i in 1 2 3 4 5; do
//		go test -run='^$' -bench=. -count=1 -benchtime=2s ./pkg/commitlog
//	done | tee /tmp/bench.txt
//	benchstat /tmp/bench.txt

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	benchRecordSize   = 256
	benchBatchRecords = 64
	// benchReadBytes is the record payload of the read benchmarks' logs.
	benchReadBytes = 256 << 20
	// benchTime0 is the time of entry 1; entry i is i µs later.
	benchTime0 = int64(1_700_000_000_000_000_000)
)

// benchSink keeps the compiler from discarding what benchmarks read.
var benchSink int

// benchPayload returns records records of benchRecordSize bytes, each with its
// own byte pattern.
func benchPayload(records int) []byte {
	b := make([]byte, records*benchRecordSize)
	for i := range b {
		b[i] = byte(i/benchRecordSize*7 + i)
	}
	return b
}

// benchEntry is entry index of a log whose entries hold len(data)/256 records.
func benchEntry(index uint64, data []byte) Entry {
	return Entry{
		Index: index,
		Term:  1,
		Time:  benchTime0 + int64(index)*1000,
		Count: uint32(len(data) / benchRecordSize),
		Data:  data,
	}
}

// benchOpenLog opens a log in dir and closes it when the benchmark ends.
func benchOpenLog(b *testing.B, dir string, opts Options) *Log {
	b.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := l.Close(); err != nil {
			b.Error(err)
		}
	})
	return l
}

// benchReport reports throughput over the benchmark's timed duration.
func benchReport(b *testing.B, records int64) {
	b.Helper()
	s := b.Elapsed().Seconds()
	if s <= 0 {
		return
	}
	b.ReportMetric(float64(records)/s, "records/s")
	b.ReportMetric(float64(records)*benchRecordSize/1e6/s, "MB/s")
}

// benchLatency collects the duration of every operation in a slice allocated
// before the timer starts, so that recording allocates nothing.
type benchLatency struct {
	d    []time.Duration
	last time.Time
}

func benchNewLatency(n int) *benchLatency {
	return &benchLatency{d: make([]time.Duration, 0, n)}
}

// start marks the start of the first operation.
func (l *benchLatency) start() { l.last = time.Now() }

// lap ends an operation and starts the next one: one clock read per
// operation.
func (l *benchLatency) lap() {
	now := time.Now()
	l.d = append(l.d, now.Sub(l.last))
	l.last = now
}

// report reports the 50th and 99th percentiles and the maximum (with
// SyncNone, the Append that seals a segment waits for its fdatasync). Call it
// with the timer stopped: it sorts.
func (l *benchLatency) report(b *testing.B) {
	b.Helper()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	pct := func(p int) float64 {
		i := (len(l.d)*p+99)/100 - 1
		return float64(l.d[max(i, 0)].Nanoseconds())
	}
	b.ReportMetric(pct(50), "p50-ns/op")
	b.ReportMetric(pct(99), "p99-ns/op")
	b.ReportMetric(float64(l.d[len(l.d)-1].Nanoseconds()), "max-ns/op")
}

// benchAppendLoop appends b.N entries of len(data)/256 records, one entry per
// Append, to l, and reports throughput and latency.
func benchAppendLoop(b *testing.B, l *Log, data []byte) {
	b.Helper()
	ents := make([]Entry, 1)
	next := l.LastIndex() + 1
	perEntry := int64(len(data) / benchRecordSize)
	lat := benchNewLatency(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	lat.start()
	for i := 0; i < b.N; i++ {
		ents[0] = benchEntry(next, data)
		if err := l.Append(ents); err != nil {
			b.Fatal(err)
		}
		next++
		lat.lap()
	}
	b.StopTimer()
	benchReport(b, int64(b.N)*perEntry)
	lat.report(b)
	if got, want := l.NextOffset(), uint64(b.N)*uint64(perEntry); got != want {
		b.Fatalf("next offset %d after %d appends, want %d", got, b.N, want)
	}
	if got := l.LastIndex(); got != uint64(b.N) {
		b.Fatalf("last index %d after %d appends", got, b.N)
	}
}

// benchRawFile creates an empty file for a raw baseline and closes it when
// the benchmark ends.
func benchRawFile(b *testing.B) *os.File {
	b.Helper()
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "raw"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	})
	return f
}

// benchFrame is one record framed as the log stores it (header, checksum).
func benchFrame() []byte {
	e := benchEntry(1, benchPayload(1))
	frame := make([]byte, entryHeaderSize+len(e.Data))
	putEntry(frame, &e, flagBatchEnd)
	return frame
}

// BenchmarkAppendSyncAlways appends one 256-byte record per Append with
// SyncAlways, beside the raw limit: pwrite of the same framed bytes at the
// end of a plain file plus fdatasync, once appending to the file and once
// writing into space fallocate reserved (what Options.Preallocate does).
// loghouse/raw records/s is the price of the engine on the durable path;
// loghouse against loghouse-no-prealloc is what preallocation saves.
func BenchmarkAppendSyncAlways(b *testing.B) {
	raw := func(b *testing.B, prealloc bool) {
		f := benchRawFile(b)
		fd := int(f.Fd())
		frame := benchFrame()
		lat := benchNewLatency(b.N)
		var pos, alloc int64
		b.ReportAllocs()
		b.ResetTimer()
		lat.start()
		for i := 0; i < b.N; i++ {
			if prealloc && pos+int64(len(frame)) > alloc {
				if err := unix.Fallocate(fd, 0, alloc, DefaultPreallocate); err != nil {
					b.Fatal(err)
				}
				alloc += DefaultPreallocate
			}
			if _, err := f.WriteAt(frame, pos); err != nil {
				b.Fatal(err)
			}
			if err := unix.Fdatasync(fd); err != nil {
				b.Fatal(err)
			}
			pos += int64(len(frame))
			lat.lap()
		}
		b.StopTimer()
		benchReport(b, int64(b.N))
		lat.report(b)
	}
	b.Run("raw-write-fdatasync", func(b *testing.B) { raw(b, false) })
	b.Run("raw-fallocated-write-fdatasync", func(b *testing.B) { raw(b, true) })
	b.Run("loghouse", func(b *testing.B) {
		l := benchOpenLog(b, b.TempDir(), Options{Sync: SyncAlways})
		benchAppendLoop(b, l, benchPayload(1))
	})
	b.Run("loghouse-no-prealloc", func(b *testing.B) {
		l := benchOpenLog(b, b.TempDir(), Options{Sync: SyncAlways, Preallocate: -1})
		benchAppendLoop(b, l, benchPayload(1))
	})
}

// BenchmarkAppendSyncNoneBatch64 appends one entry of 64 records per Append,
// leaving flushing to the OS (segments are still synced when sealed).
func BenchmarkAppendSyncNoneBatch64(b *testing.B) {
	l := benchOpenLog(b, b.TempDir(), Options{Sync: SyncNone})
	benchAppendLoop(b, l, benchPayload(benchBatchRecords))
}

// BenchmarkAppendSyncNoneBatch64Raw is the raw limit for
// BenchmarkAppendSyncNoneBatch64: pwrite of a pre-framed 64-record entry at
// the end of a plain file, and, like a segment roll, fdatasync and a new file
// every 64 MiB. It shows what the machine's buffered write path allows.
func BenchmarkAppendSyncNoneBatch64Raw(b *testing.B) {
	dir := b.TempDir()
	e := benchEntry(1, benchPayload(benchBatchRecords))
	frame := make([]byte, entryHeaderSize+len(e.Data))
	putEntry(frame, &e, flagBatchEnd)
	var (
		f     *os.File
		files int
		pos   int64
	)
	roll := func() {
		if f != nil {
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
		}
		var err error
		f, err = os.OpenFile(filepath.Join(dir, fmt.Sprintf("raw%d", files)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		files++
		pos = 0
	}
	roll()
	b.Cleanup(func() {
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	})
	lat := benchNewLatency(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	lat.start()
	for i := 0; i < b.N; i++ {
		if pos+int64(len(frame)) > DefaultMaxSegmentBytes {
			roll()
		}
		if _, err := f.WriteAt(frame, pos); err != nil {
			b.Fatal(err)
		}
		pos += int64(len(frame))
		lat.lap()
	}
	b.StopTimer()
	benchReport(b, int64(b.N)*benchBatchRecords)
	lat.report(b)
}

// BenchmarkAppendSyncNoneSingle appends one 256-byte record per Append with
// SyncNone, which shows the per-entry overhead, beside the raw limit of such
// a log: pwrite of the pre-framed bytes into a file plus a 16-byte index
// entry written to memory.
func BenchmarkAppendSyncNoneSingle(b *testing.B) {
	b.Run("raw-write-memindex", func(b *testing.B) {
		f := benchRawFile(b)
		frame := benchFrame()
		idx := make([]byte, DefaultMaxSegmentEntries*indexEntrySize)
		lat := benchNewLatency(b.N)
		var pos int64
		b.ReportAllocs()
		b.ResetTimer()
		lat.start()
		for i := 0; i < b.N; i++ {
			if _, err := f.WriteAt(frame, pos); err != nil {
				b.Fatal(err)
			}
			slot := i % DefaultMaxSegmentEntries
			putIndexEntry(idx[slot*indexEntrySize:], uint64(pos), uint64(i))
			pos += int64(len(frame))
			lat.lap()
		}
		b.StopTimer()
		benchReport(b, int64(b.N))
		lat.report(b)
	})
	b.Run("loghouse", func(b *testing.B) {
		l := benchOpenLog(b, b.TempDir(), Options{Sync: SyncNone})
		benchAppendLoop(b, l, benchPayload(1))
	})
}

// benchReadCases are the logs the read benchmarks read: entries of 64
// records, and entries of one record.
var benchReadCases = []struct {
	name     string
	perEntry int
}{
	{"batch64", benchBatchRecords},
	{"single", 1},
}

// benchFixture is a log built at most once per top-level benchmark, on first
// use by one of its sub-benchmarks (so a -bench filter builds only what it
// runs), and shared by the sub-benchmark's repeated runs. The parent
// benchmark owns it: benchNewFixture registers its removal there.
type benchFixture struct {
	dir      string
	perEntry int   // records per entry
	bytes    int64 // record payload to fill in
	keepOpen bool  // keep the log open after building (read benchmarks)

	built   bool
	l       *Log
	entries uint64
	took    time.Duration
	err     error
}

// benchNewFixture describes a log in a fresh directory of the parent
// benchmark pb, which closes it and removes the directory when it ends.
func benchNewFixture(pb *testing.B, perEntry int, bytes int64, keepOpen bool) *benchFixture {
	pb.Helper()
	f := &benchFixture{dir: pb.TempDir(), perEntry: perEntry, bytes: bytes, keepOpen: keepOpen}
	pb.Cleanup(func() {
		if f.l != nil {
			if err := f.l.Close(); err != nil {
				pb.Error(err)
			}
		}
	})
	return f
}

// get builds the log on the first call and returns it (nil unless keepOpen).
func (f *benchFixture) get(b *testing.B) *Log {
	b.Helper()
	if !f.built {
		f.built = true
		start := time.Now()
		f.l, f.entries, f.err = benchBuildLog(f.dir, f.perEntry, f.bytes, f.keepOpen)
		f.took = time.Since(start)
	}
	if f.err != nil {
		b.Fatal(f.err)
	}
	return f.l
}

// benchBuildLog fills a new log in dir with entries of perEntry records up to
// bytes of record payload (SyncNone, 256 KiB per Append), then reads it all
// back once with an iterator, which checks it and warms the page cache. It
// returns the log if keepOpen, else closes it.
func benchBuildLog(dir string, perEntry int, bytes int64, keepOpen bool) (*Log, uint64, error) {
	l, err := Open(dir, Options{Sync: SyncNone})
	if err != nil {
		return nil, 0, err
	}
	total, err := benchFillLog(l, perEntry, bytes)
	if err != nil || !keepOpen {
		if cerr := l.Close(); err == nil {
			err = cerr
		}
		return nil, total, err
	}
	return l, total, nil
}

// benchFillLog appends entries of perEntry records to the empty log l up to
// bytes of record payload and checks them with an iterator. It returns the
// number of entries.
func benchFillLog(l *Log, perEntry int, bytes int64) (uint64, error) {
	data := benchPayload(perEntry)
	total := uint64(bytes / int64(len(data)))
	ents := make([]Entry, max(1, (256<<10)/len(data)))
	for next := uint64(1); next <= total; {
		n := min(uint64(len(ents)), total-next+1)
		for j := range ents[:n] {
			ents[j] = benchEntry(next+uint64(j), data)
		}
		if err := l.Append(ents[:n]); err != nil {
			return 0, err
		}
		next += n
	}
	it := l.NewIterator(1)
	var seen uint64
	for it.Next() {
		e := it.Entry()
		seen++
		if e.Index != seen || e.Offset != (seen-1)*uint64(perEntry) || !slices.Equal(e.Data, data) {
			return 0, fmt.Errorf("built log: entry %d is index %d offset %d with %d bytes of data", seen, e.Index, e.Offset, len(e.Data))
		}
	}
	if err := it.Err(); err != nil {
		return 0, err
	}
	if seen != total {
		return 0, fmt.Errorf("built log: iterated %d entries, appended %d", seen, total)
	}
	return total, nil
}

// benchTouch reads one byte of every record in data.
func benchTouch(data []byte) int {
	s := 0
	for i := 0; i < len(data); i += benchRecordSize {
		s += int(data[i])
	}
	return s
}

// BenchmarkReadSequential iterates a warm 256 MiB log from its first index,
// touching every record; an operation is one entry.
func BenchmarkReadSequential(b *testing.B) {
	for _, c := range benchReadCases {
		f := benchNewFixture(b, c.perEntry, benchReadBytes, true)
		b.Run(c.name, func(b *testing.B) {
			l := f.get(b)
			it := l.NewIterator(1)
			var records int64
			sink := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if !it.Next() {
					if err := it.Err(); err != nil {
						b.Fatal(err)
					}
					it = l.NewIterator(1) // wrap around
					if !it.Next() {
						b.Fatalf("empty log: %v", it.Err())
					}
				}
				e := it.Entry()
				if len(e.Data) != int(e.Count)*benchRecordSize || e.Count != uint32(c.perEntry) {
					b.Fatalf("entry %d holds %d records in %d bytes", e.Index, e.Count, len(e.Data))
				}
				sink += benchTouch(e.Data)
				records += int64(e.Count)
			}
			b.StopTimer()
			benchSink = sink
			benchReport(b, records)
		})
	}
}

// benchRandomIndexes returns n random indexes in [1, last], the same every
// run.
func benchRandomIndexes(n int, last uint64) []uint64 {
	r := rand.New(rand.NewPCG(1, 2))
	idx := make([]uint64, n)
	for i := range idx {
		idx[i] = 1 + r.Uint64N(last)
	}
	return idx
}

// BenchmarkReadRandom reads entries of a warm 256 MiB log with Read at random
// indexes; an operation is one Read (a copy of one entry).
func BenchmarkReadRandom(b *testing.B) {
	for _, c := range benchReadCases {
		f := benchNewFixture(b, c.perEntry, benchReadBytes, true)
		b.Run(c.name, func(b *testing.B) {
			l := f.get(b)
			idx := benchRandomIndexes(1<<16, f.entries)
			lat := benchNewLatency(b.N)
			var records int64
			sink := 0
			b.ReportAllocs()
			b.ResetTimer()
			lat.start()
			for i := 0; i < b.N; i++ {
				want := idx[i&(len(idx)-1)]
				e, err := l.Read(want)
				if err != nil {
					b.Fatal(err)
				}
				if e.Index != want || len(e.Data) != c.perEntry*benchRecordSize {
					b.Fatalf("Read(%d) = index %d with %d bytes", want, e.Index, len(e.Data))
				}
				sink += benchTouch(e.Data)
				records += int64(e.Count)
				lat.lap()
			}
			b.StopTimer()
			benchSink = sink
			benchReport(b, records)
			lat.report(b)
		})
	}
}

// BenchmarkReadOffset reads the entry holding a random record offset of a
// warm 256 MiB log with ReadOffset; an operation is one lookup, and its
// records are those of the entry returned.
func BenchmarkReadOffset(b *testing.B) {
	for _, c := range benchReadCases {
		f := benchNewFixture(b, c.perEntry, benchReadBytes, true)
		b.Run(c.name, func(b *testing.B) {
			l := f.get(b)
			offs := benchRandomIndexes(1<<16, l.NextOffset())
			lat := benchNewLatency(b.N)
			var records int64
			sink := 0
			b.ReportAllocs()
			b.ResetTimer()
			lat.start()
			for i := 0; i < b.N; i++ {
				off := offs[i&(len(offs)-1)] - 1
				e, err := l.ReadOffset(off)
				if err != nil {
					b.Fatal(err)
				}
				if off < e.Offset || off-e.Offset >= uint64(e.Count) || e.Offset != (e.Index-1)*uint64(c.perEntry) {
					b.Fatalf("ReadOffset(%d) = entry %d holding [%d, +%d)", off, e.Index, e.Offset, e.Count)
				}
				sink += benchTouch(e.Data)
				records += int64(e.Count)
				lat.lap()
			}
			b.StopTimer()
			benchSink = sink
			benchReport(b, records)
			lat.report(b)
		})
	}
}

// BenchmarkOpen opens and closes logs of 100 MiB and 2 GiB of records in
// 64-record entries with default segment sizes (64 MiB). Open reads every
// segment's header but scans only the active segment, so its time should
// follow the active segment's size (reported as active-MiB), not the log's.
func BenchmarkOpen(b *testing.B) {
	sizes := []struct {
		name  string
		bytes int64
	}{
		{"100MiB", 100 << 20},
		{"2GiB", 2 << 30},
	}
	var built []*benchFixture
	for _, sz := range sizes {
		f := benchNewFixture(b, benchBatchRecords, sz.bytes, false)
		built = append(built, f)
		b.Run(sz.name, func(b *testing.B) {
			f.get(b)
			l, err := Open(f.dir, Options{})
			if err != nil {
				b.Fatal(err)
			}
			st, rec, last := l.Stats(), l.Recovery(), l.LastIndex()
			active := l.segments[len(l.segments)-1].size
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			if last != f.entries || rec.TruncatedAt != -1 || rec.IndexRebuilt || len(rec.OrphansRemoved) > 0 {
				b.Fatalf("reopened log: last index %d (want %d), recovery %+v", last, f.entries, rec)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l, err := Open(f.dir, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(st.Bytes)/(1<<20), "log-MiB")
			b.ReportMetric(float64(st.Segments), "segments")
			b.ReportMetric(float64(active)/(1<<20), "active-MiB")
		})
	}
	for _, f := range built {
		if f.built {
			b.Logf("built %d MiB of records in %d entries in %v", f.bytes>>20, f.entries, f.took.Round(time.Millisecond))
		}
	}
}
