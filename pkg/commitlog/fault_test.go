package commitlog

// Fault-injection tests: run each write workload (append, append with
// segment roll-over, suffix truncation into an earlier segment, head
// deletion, retention, reset) once to count its file-system operations, then
// again failing the n-th operation, for every n, with EIO, ENOSPC and short
// ENOSPC writes, once or for good. After each run the open log must serve
// only whole, acknowledged entries, keep its promises about errors, and,
// once reopened, hold every acknowledged entry with dense indexes and
// offsets.

import (
	"errors"
	"fmt"
	"runtime/debug"
	"testing"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// faultOptions are the options of the logs under test: small segments, so
// the prefix spans four of them, and SyncAlways.
func faultOptions(t *testing.T, fs vfs.FS) Options {
	t.Helper()
	return Options{
		Logger:            crashLogger(t),
		FS:                fs,
		Sync:              SyncAlways,
		MaxSegmentBytes:   4096,
		MaxSegmentEntries: 64,
		TimeIndexInterval: 512,
	}
}

// faultBatch is a batch of new entries from index first with the given data
// sizes; gen makes the data differ from any earlier entry at the same index.
func faultBatch(first uint64, gen int, sizes ...int) []Entry {
	b := make([]Entry, len(sizes))
	for k, n := range sizes {
		i := first + uint64(k)
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(int(i)*31 + j*7 + gen*101)
		}
		b[k] = Entry{Index: i, Term: uint64(gen), Type: uint8(gen % 4), Time: int64(i) * 1000,
			Count: uint32((int(i) + gen) % 3), Data: data}
		if i%4 == 0 {
			b[k].Extensions = []byte(fmt.Sprintf("x%d.%d", i, gen))
		}
	}
	return b
}

// faultPrefix is a closed log of four segments that every case starts from.
type faultPrefix struct {
	dir     string
	entries []Entry     // entries[k] has index k+1
	batches [][2]uint64 // first and last index of each Append
	bases   []uint64    // segment base indexes
	sizes   []int64     // store sizes
}

// faultBuildPrefix appends batches of one to three ~100-byte entries until
// the log has four segments and the active one is more than half full.
func faultBuildPrefix(t *testing.T) *faultPrefix {
	t.Helper()
	p := &faultPrefix{dir: t.TempDir()}
	l, err := Open(p.dir, faultOptions(t, vfs.OS{}))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for k := 0; ; k++ {
		segs := l.Stats().Segments
		if segs > 4 || k > 1000 {
			t.Fatalf("prefix: %d segments after %d batches", segs, k)
		}
		if segs == 4 && faultActiveSize(t, p.dir) > 2600 {
			break
		}
		sizes := []int{40 + k%60, 90, 10 + k%3}[:1+k%3]
		b := faultBatch(l.LastIndex()+1, 0, sizes...)
		if err := l.Append(b); err != nil {
			t.Fatalf("prefix Append: %v", err)
		}
		p.entries = append(p.entries, b...)
		p.batches = append(p.batches, [2]uint64{b[0].Index, b[len(b)-1].Index})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	p.bases, p.sizes = utStores(t, p.dir) // the active store's logical size
	return p
}

// faultActiveSize is the logical size of the last store in dir.
func faultActiveSize(t *testing.T, dir string) int64 {
	t.Helper()
	_, sizes := utStores(t, dir)
	if len(sizes) == 0 {
		t.Fatalf("no store in %s", dir)
	}
	return sizes[len(sizes)-1]
}

// faultModel is what the log has promised so far.
type faultModel struct {
	// mem is what the open log may serve at each index: the entries whose
	// Append returned nil and that no successful truncation, deletion or
	// reset removed since.
	mem map[uint64]Entry
	// disk lists, per index, what a reopened log may hold there. An entry
	// marked must is acknowledged and was not removed since: a reopened
	// log must hold it.
	disk map[uint64][]faultVersion
	gen  int
	// failed: an operation returned ErrFailed, so every write must fail
	// with ErrFailed until the log is reopened. erred: some operation
	// failed.
	failed, erred bool
}

type faultVersion struct {
	e    Entry
	must bool
}

func faultNewModel(p *faultPrefix) *faultModel {
	m := &faultModel{mem: map[uint64]Entry{}, disk: map[uint64][]faultVersion{}}
	for _, e := range p.entries {
		m.mem[e.Index] = e
		m.disk[e.Index] = []faultVersion{{e, true}}
	}
	return m
}

// acknowledged records a batch whose Append returned nil.
func (m *faultModel) acknowledged(b []Entry) {
	last := b[len(b)-1].Index
	for i := range m.disk {
		if i > last {
			delete(m.disk, i)
			delete(m.mem, i)
		}
	}
	for _, e := range b {
		m.mem[e.Index] = e
		m.disk[e.Index] = []faultVersion{{e, true}}
	}
}

// mayHold records entries that may or may not be on disk.
func (m *faultModel) mayHold(b []Entry) {
	for _, e := range b {
		m.disk[e.Index] = append(m.disk[e.Index], faultVersion{e, false})
	}
}

// removed records that the entries in [from, to) are gone for sure.
func (m *faultModel) removed(from, to uint64) {
	for i := range m.disk {
		if i >= from && i < to {
			delete(m.disk, i)
			delete(m.mem, i)
		}
	}
}

// uncertain records that the entries in [from, to) may be gone.
func (m *faultModel) uncertain(from, to uint64) {
	for i, vs := range m.disk {
		if i >= from && i < to {
			for k := range vs {
				vs[k].must = false
			}
		}
	}
}

// faultStep is one operation of a workload. It runs the operation, checks
// that a nil error means its effect is visible and an error that is not
// ErrFailed means nothing of it is, records the outcome in m and returns the
// operation's error.
type faultStep struct {
	name string
	do   func(t *testing.T, l *Log, m *faultModel) error
}

func faultAppend(sizes ...int) faultStep {
	return faultStep{name: fmt.Sprintf("Append%v", sizes), do: func(t *testing.T, l *Log, m *faultModel) error {
		t.Helper()
		first, off := l.LastIndex()+1, l.NextOffset()
		m.gen++
		b := faultBatch(first, m.gen, sizes...)
		err := l.Append(b)
		if err != nil {
			// Append never publishes a batch it could not finish.
			if l.LastIndex() != first-1 || l.NextOffset() != off {
				t.Errorf("failed Append moved the log's end from (%d, %d) to (%d, %d)", first-1, off, l.LastIndex(), l.NextOffset())
			}
			if errors.Is(err, ErrFailed) && !m.failed {
				m.mayHold(b)
			}
			return err
		}
		for _, e := range b {
			if e.Offset != off {
				t.Errorf("Append gave entry %d offset %d, want %d", e.Index, e.Offset, off)
			}
			off += uint64(e.Count)
		}
		if l.LastIndex() != b[len(b)-1].Index || l.NextOffset() != off {
			t.Errorf("after Append of [%d, %d]: LastIndex %d, NextOffset %d; want %d, %d",
				first, b[len(b)-1].Index, l.LastIndex(), l.NextOffset(), b[len(b)-1].Index, off)
		}
		m.acknowledged(b)
		return nil
	}}
}

func faultTruncateFrom(i uint64) faultStep {
	return faultStep{name: fmt.Sprintf("TruncateFrom(%d)", i), do: func(t *testing.T, l *Log, m *faultModel) error {
		t.Helper()
		first, last, next := l.FirstIndex(), l.LastIndex(), l.NextOffset()
		want, ok := m.mem[i]
		if !ok && !m.erred {
			t.Fatalf("workload truncates from %d, which the log does not hold", i)
		}
		err := l.TruncateFrom(i)
		switch {
		case err == nil:
			if l.LastIndex() != i-1 || (ok && l.NextOffset() != want.Offset) {
				t.Errorf("after TruncateFrom(%d): LastIndex %d, NextOffset %d; want %d, %d", i, l.LastIndex(), l.NextOffset(), i-1, want.Offset)
			}
			m.removed(i, ^uint64(0))
		case errors.Is(err, ErrFailed):
			if !m.failed {
				m.uncertain(i, ^uint64(0))
			}
		default:
			if l.FirstIndex() != first || l.LastIndex() != last || l.NextOffset() != next {
				t.Errorf("TruncateFrom failed with %v, not ErrFailed, yet changed the log", err)
			}
		}
		return err
	}}
}

// faultDeleteHead is DeleteBefore(i) or, if i is 0, ApplyRetention; either
// must leave wantFirst as the first index.
func faultDeleteHead(i, wantFirst uint64) faultStep {
	name := fmt.Sprintf("DeleteBefore(%d)", i)
	if i == 0 {
		name = "ApplyRetention"
	}
	return faultStep{name: name, do: func(t *testing.T, l *Log, m *faultModel) error {
		t.Helper()
		first, segs := l.FirstIndex(), l.Stats().Segments
		var (
			n   int
			err error
		)
		if i == 0 {
			var res RetentionResult
			res, err = l.ApplyRetention()
			n = res.Segments
		} else {
			n, err = l.DeleteBefore(i)
		}
		// Whatever happened, the segments reported deleted are gone and
		// no other.
		if got := segs - l.Stats().Segments; got != n {
			t.Errorf("%s reported %d segments deleted, the log lost %d", name, n, got)
		}
		if err == nil && l.FirstIndex() != wantFirst {
			t.Errorf("after %s: FirstIndex %d, want %d", name, l.FirstIndex(), wantFirst)
		}
		if n == 0 && l.FirstIndex() != first {
			t.Errorf("%s deleted nothing, yet FirstIndex moved from %d to %d", name, first, l.FirstIndex())
		}
		if m.failed {
			return err
		}
		m.removed(0, l.FirstIndex())
		if err != nil {
			// The segment whose deletion failed may be gone on disk.
			m.uncertain(0, wantFirst)
		}
		return err
	}}
}

func faultReset(nextIndex, nextOffset uint64) faultStep {
	return faultStep{name: fmt.Sprintf("Reset(%d, %d)", nextIndex, nextOffset), do: func(t *testing.T, l *Log, m *faultModel) error {
		t.Helper()
		first, last, next := l.FirstIndex(), l.LastIndex(), l.NextOffset()
		err := l.Reset(nextIndex, nextOffset)
		switch {
		case err == nil:
			if l.FirstIndex() != nextIndex || l.LastIndex() != nextIndex-1 || l.NextOffset() != nextOffset {
				t.Errorf("after Reset: FirstIndex %d, LastIndex %d, NextOffset %d", l.FirstIndex(), l.LastIndex(), l.NextOffset())
			}
			m.removed(0, ^uint64(0))
		case errors.Is(err, ErrFailed):
			if !m.failed {
				m.uncertain(0, ^uint64(0))
			}
		default:
			if l.FirstIndex() != first || l.LastIndex() != last || l.NextOffset() != next {
				t.Errorf("Reset failed with %v, not ErrFailed, yet changed the log", err)
			}
		}
		return err
	}}
}

type faultWorkload struct {
	name  string
	opts  func(o *Options) // nil: faultOptions as they are
	steps []faultStep
}

// faultWorkloads are the workloads, built against the prefix p.
func faultWorkloads(t *testing.T, p *faultPrefix) []faultWorkload {
	t.Helper()
	last := p.entries[len(p.entries)-1].Index
	active := p.sizes[len(p.sizes)-1]
	// The roll-over batch does not fit in the active segment; the single
	// entry that follows a failed roll-over does.
	big := []int{200, 200, 200, 200, 200, 200, 200}
	if active+int64(len(big))*(entryHeaderSize+200) <= 4096 || active+2*(entryHeaderSize+60) > 4096 {
		t.Fatalf("prefix's active segment of %d bytes does not suit the workloads", active)
	}
	// Truncate segment 1 in the middle of a batch, so that the entry
	// before the cut must be marked as a batch end.
	cut := uint64(0)
	for _, b := range p.batches {
		if b[0] >= p.bases[1] && b[1] < p.bases[2] && b[1] > b[0] {
			cut = b[0] + 1
			break
		}
	}
	if cut == 0 {
		t.Fatal("no batch of two entries in segment 1")
	}
	return []faultWorkload{
		{name: "append", steps: []faultStep{faultAppend(40), faultAppend(30, 0, 50)}},
		{name: "append-rollover", steps: []faultStep{faultAppend(big...), faultAppend(20)}},
		{name: "truncate-into-earlier-segment", steps: []faultStep{faultTruncateFrom(cut), faultAppend(30, 30)}},
		{name: "delete-before", steps: []faultStep{faultDeleteHead(p.bases[2]+1, p.bases[2]), faultAppend(30)}},
		{
			name: "retention",
			opts: func(o *Options) { o.RetentionBytes = p.sizes[1] + p.sizes[2] + p.sizes[3] - 1 },
			// Over the limit by less than segment 1: segments 0 and 1 go.
			steps: []faultStep{faultDeleteHead(0, p.bases[2]), faultAppend(30)},
		},
		{name: "reset", steps: []faultStep{faultReset(last+100, 10_000), faultAppend(30, 40)}},
	}
}

// faultVariants are the ways the n-th operation fails.
var faultVariants = []struct {
	name          string
	err           error
	sticky, short bool
}{
	{"eio", vfs.ErrIO, false, false},
	{"eio-sticky", vfs.ErrIO, true, false},
	{"enospc", vfs.ErrNoSpace, false, false},
	{"enospc-sticky", vfs.ErrNoSpace, true, false},
	{"short-enospc", vfs.ErrNoSpace, false, true},
	{"short-enospc-sticky", vfs.ErrNoSpace, true, true},
}

// TestFaultInjection runs every workload failing each of its operations in
// each way, and checks the log's promises after each run.
func TestFaultInjection(t *testing.T) {
	p := faultBuildPrefix(t)
	t.Logf("prefix: entries [1, %d], segments %v of %v bytes", len(p.entries), p.bases, p.sizes)
	for _, w := range faultWorkloads(t, p) {
		t.Run(w.name, func(t *testing.T) {
			var count int
			if !t.Run("no-fault", func(t *testing.T) { count = faultRun(t, p, w, 0, 0) }) {
				t.Fatal("the workload fails without faults")
			}
			if count == 0 {
				t.Fatal("the workload made no counted file-system operations")
			}
			t.Logf("%d counted operations", count)
			failed := 0
			for n := 1; n <= count; n++ {
				for v := range faultVariants {
					if !t.Run(fmt.Sprintf("n=%d/%s", n, faultVariants[v].name), func(t *testing.T) { faultRun(t, p, w, n, v) }) {
						if failed++; failed >= 5 {
							t.Fatalf("stopping after %d failing cases", failed)
						}
					}
				}
			}
		})
	}
}

// faultRun runs workload w on a copy of the prefix, failing the n-th
// counted operation as variant v says (n = 0: no fault), and checks the
// invariants. It returns the number of counted operations the workload made.
func faultRun(t *testing.T, p *faultPrefix, w faultWorkload, n, v int) (count int) {
	t.Helper()
	dir := crashCopy(t, p.dir)
	f := vfs.NewFault(vfs.OS{}, vfs.OpMutating)
	opts := faultOptions(t, f)
	if w.opts != nil {
		w.opts(&opts)
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	defer func() { // (a) no panic
		if r := recover(); r != nil {
			t.Fatalf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	m := faultNewModel(p)
	if n == 0 {
		f.FailAt(0, nil, false, false) // count from here, fail nothing
	} else {
		vv := faultVariants[v]
		f.FailAt(n, vv.err, vv.sticky, vv.short)
	}
	for _, s := range w.steps {
		wasFailed := m.failed
		err := s.do(t, l, m)
		if err != nil {
			t.Logf("%s: %v", s.name, err)
			m.erred = true
			if n == 0 {
				t.Errorf("%s failed without a fault: %v", s.name, err)
			}
		}
		// (c) after ErrFailed, every write fails with ErrFailed.
		if wasFailed && !errors.Is(err, ErrFailed) {
			t.Errorf("after an ErrFailed, %s returned %v", s.name, err)
		}
		if errors.Is(err, ErrFailed) {
			m.failed = true
		}
	}
	count = f.Count()
	fired := f.Fired()
	if n > 0 && len(fired) == 0 {
		t.Fatalf("operation %d of %d was not failed", n, count)
	}
	t.Logf("failed: %v", fired)

	// (b) while the fault may still be armed, reads may fail, but never
	// serve data that was not acknowledged at that index.
	faultCheckOpen(t, l, m, true)
	f.Disarm()
	faultCheckOpen(t, l, m, m.failed)

	// (d) the next Append succeeds at the right index and offset, or the
	// log has failed for good.
	first, off := l.LastIndex()+1, l.NextOffset()
	if e, ok := m.mem[first-1]; ok && off != e.Offset+uint64(e.Count) {
		t.Errorf("NextOffset %d, but entry %d ends at offset %d", off, first-1, e.Offset+uint64(e.Count))
	}
	m.gen++
	b := faultBatch(first, m.gen, 60)
	err = l.Append(b)
	switch {
	case err == nil:
		if m.failed {
			t.Errorf("Append succeeded after an ErrFailed")
		}
		if b[0].Offset != off || l.LastIndex() != first {
			t.Errorf("Append after the fault: index %d offset %d, want %d and %d", l.LastIndex(), b[0].Offset, first, off)
		}
		m.acknowledged(b)
	case errors.Is(err, ErrFailed):
		t.Logf("Append after the fault: %v", err)
		if !m.failed {
			m.mayHold(b)
			m.failed = true
		}
	default:
		t.Errorf("Append after the fault: %v, want nil or ErrFailed", err)
	}
	if m.failed {
		if err := l.TruncateFrom(l.LastIndex() + 1); !errors.Is(err, ErrFailed) {
			t.Errorf("TruncateFrom on a failed log: %v, want ErrFailed", err)
		}
	}
	faultCheckOpen(t, l, m, m.erred)
	if err := l.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	// (e) reopened with the plain file system, the log holds every
	// acknowledged entry, whole, with dense indexes and offsets.
	opts.FS = nil
	faultCheckReopened(t, dir, opts, m)
	return count
}

// faultCheckOpen reads every index the open log claims to hold, by index
// and with an iterator. Each read must return exactly the acknowledged entry
// at that index; a read may fail only if tolerate.
func faultCheckOpen(t *testing.T, l *Log, m *faultModel, tolerate bool) {
	t.Helper()
	first, last := l.FirstIndex(), l.LastIndex()
	if last+1 < first {
		t.Errorf("LastIndex %d is below FirstIndex %d - 1", last, first)
		return
	}
	readErrs := 0
	for i := first; i <= last && i != 0; i++ {
		e, err := l.Read(i)
		if err != nil {
			readErrs++
			if !tolerate {
				t.Errorf("Read(%d): %v", i, err)
			}
			continue
		}
		want, ok := m.mem[i]
		if !ok {
			t.Errorf("Read(%d) served an entry that was never acknowledged: %+v", i, e)
			continue
		}
		if d := crashDiff(e, want); d != "" {
			t.Errorf("Read(%d): %s", i, d)
		}
	}
	if _, err := l.Read(last + 1); !errors.Is(err, ErrOutOfRange) && !(m.failed && errors.Is(err, ErrFailed)) {
		t.Errorf("Read(%d) past the end: %v, want ErrOutOfRange", last+1, err)
	}
	it := l.NewIterator(first)
	for it.Next() {
		e := it.Entry()
		if want, ok := m.mem[e.Index]; !ok || crashDiff(e, want) != "" {
			t.Errorf("iterator at %d served %+v, want %+v", e.Index, e, want)
			break
		}
	}
	if it.Err() != nil && !tolerate {
		t.Errorf("iterator: %v", it.Err())
	}
	if readErrs > 0 {
		t.Logf("%d reads failed", readErrs)
	}
}

// faultCheckReopened opens dir and checks it against m: every entry that
// must be there is, every entry there is one that was appended at its index
// (never a partial one), indexes and offsets are dense, and an Append works.
func faultCheckReopened(t *testing.T, dir string, opts Options, m *faultModel) {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close after reopen: %v", err)
		}
	}()
	if rep := l.Recovery(); rep.TruncatedAt >= 0 || len(rep.OrphansRemoved) > 0 {
		t.Logf("recovery: %+v", rep)
	}
	first, last := l.FirstIndex(), l.LastIndex()
	for i, vs := range m.disk {
		for _, v := range vs {
			if v.must && (i < first || i > last) {
				t.Errorf("acknowledged entry %d is lost: the reopened log holds [%d, %d]", i, first, last)
			}
		}
	}
	var prev Entry
	for i := first; i <= last; i++ {
		e, err := l.Read(i)
		if err != nil {
			t.Errorf("Read(%d) after reopen: %v", i, err)
			continue
		}
		match := false
		for _, v := range m.disk[i] {
			if crashDiff(e, v.e) == "" {
				match = true
			} else if v.must {
				t.Errorf("acknowledged entry %d changed after reopen: %s", i, crashDiff(e, v.e))
			}
		}
		if !match {
			t.Errorf("reopened log holds an entry at %d that was never appended there: %+v", i, e)
		}
		if want := l.FirstOffset(); i == first && e.Offset != want {
			t.Errorf("first entry %d has offset %d, FirstOffset is %d", i, e.Offset, want)
		} else if i > first && e.Offset != prev.Offset+uint64(prev.Count) {
			t.Errorf("offsets not dense: entry %d at %d after entry %d at %d holding %d", i, e.Offset, prev.Index, prev.Offset, prev.Count)
		}
		prev = e
	}
	wantNext := l.FirstOffset()
	if last >= first {
		wantNext = prev.Offset + uint64(prev.Count)
	}
	if got := l.NextOffset(); got != wantNext {
		t.Errorf("NextOffset after reopen = %d, want %d", got, wantNext)
	}
	it := l.NewIterator(first)
	k := first
	for it.Next() {
		if e := it.Entry(); e.Index != k {
			t.Errorf("iterator after reopen: index %d, want %d", e.Index, k)
			break
		}
		k++
	}
	if it.Err() != nil || k != last+1 {
		t.Errorf("iterator after reopen stopped at %d of [%d, %d]: %v", k, first, last, it.Err())
	}
	b := faultBatch(last+1, 1<<20, 25, 35)
	if err := l.Append(b); err != nil {
		t.Fatalf("Append after reopen: %v", err)
	}
	if b[0].Offset != wantNext || l.LastIndex() != last+2 {
		t.Errorf("Append after reopen: offset %d, LastIndex %d; want %d and %d", b[0].Offset, l.LastIndex(), wantNext, last+2)
	}
	for _, w := range b {
		if e, err := l.Read(w.Index); err != nil || crashDiff(e, w) != "" {
			t.Errorf("Read(%d) of the entry appended after reopen: %v %s", w.Index, err, crashDiff(e, w))
		}
	}
}
