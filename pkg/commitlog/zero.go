package commitlog

import (
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// zeroer writes zeros, in the background, over the active store's
// preallocated space ahead of the appender and syncs them, so that the
// blocks an append lands in are already written ones (DESIGN.md, "Zeroing
// ahead"). It never writes at or below the appender's end, and the appender
// never writes into a piece being zeroed: the two meet under mu.
//
// Every change to the active store other than an append (sealing it,
// cutting it back, replacing or closing the log) calls halt first, under
// appendMu: halt waits for a piece in flight and forgets the segment, so no
// zeros can land in a file after it was truncated or in a new file that
// took an old one's name. The next append hands the zeroer its segment
// again.
type zeroer struct {
	fill   func(name string, off, length int64) error
	gap    int64 // zeros start at least this far beyond the appender's end
	piece  int64 // bytes zeroed and synced at a time
	logger hclog.Logger

	mu   sync.Mutex
	cond sync.Cond // signalled when busy ends, work appears, or quit
	seg  *segment  // the active segment, or nil: nothing to do
	path string    // seg's store file
	// end is where the appender's last write ended; done is where the
	// zeroed run ends; alloc is the store file's preallocated length.
	end, done, alloc int64
	busy             bool  // a piece is being zeroed
	busyFrom         int64 // where it starts
	off              bool  // zeroing failed once; it stays off
	quit             bool
	zeroed           int64 // bytes zeroed over the log's life (tests)
	exited           chan struct{}
}

func newZeroer(fill func(string, int64, int64) error, prealloc int64, logger hclog.Logger) *zeroer {
	z := &zeroer{
		fill:   fill,
		gap:    min(prealloc/4, 256<<10),
		piece:  min(prealloc/4, 1<<20),
		logger: logger,
		exited: make(chan struct{}),
	}
	z.cond.L = &z.mu
	go z.run()
	return z
}

// claim tells the zeroer that the appender is about to write up to end in
// a, whose store file is allocated up to alloc, and waits if a piece being
// zeroed would overlap the write. Caller holds appendMu.
func (z *zeroer) claim(a *segment, end, alloc int64) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.off || z.quit {
		return
	}
	for z.busy && (z.seg != a || end > z.busyFrom) {
		z.cond.Wait()
	}
	if z.seg != a {
		z.seg, z.path, z.end, z.done = a, a.storePath, end, end
	}
	z.end, z.alloc = max(z.end, end), alloc
	if z.next() < z.alloc {
		z.cond.Broadcast()
	}
}

// next is where the next piece would start. Caller holds mu.
func (z *zeroer) next() int64 { return max(z.done, z.end+z.gap) }

// halt waits for a piece in flight and forgets the active segment. Caller
// holds appendMu.
func (z *zeroer) halt() {
	z.mu.Lock()
	defer z.mu.Unlock()
	for z.busy {
		z.cond.Wait()
	}
	z.seg, z.end, z.done, z.alloc = nil, 0, 0, 0
}

// haltZeroing is zeroer.halt when the log zeroes ahead.
func (l *Log) haltZeroing() {
	if l.zero != nil {
		l.zero.halt()
	}
}

// minZeroAhead is the smallest Options.Preallocate the log zeroes ahead
// with: below it the pieces would be too small to be worth a sync each.
const minZeroAhead = 64 << 10

// startZeroing starts the zeroer if the log syncs every append, reserves
// space ahead and its file system can zero through a handle of its own.
func (l *Log) startZeroing() {
	zf, ok := l.fs.(vfs.ZeroFiller)
	if !ok || l.opts.Sync != SyncAlways || l.opts.Preallocate < minZeroAhead {
		return
	}
	l.zero = newZeroer(zf.ZeroFill, l.opts.Preallocate, l.logger)
}

// close stops the zeroer and waits for it.
func (z *zeroer) close() {
	z.mu.Lock()
	z.quit = true
	z.cond.Broadcast()
	z.mu.Unlock()
	<-z.exited
}

func (z *zeroer) run() {
	defer close(z.exited)
	z.mu.Lock()
	defer z.mu.Unlock()
	for {
		for !z.quit && (z.off || z.seg == nil || z.next() >= z.alloc) {
			z.cond.Wait()
		}
		if z.quit {
			return
		}
		from := z.next()
		to := min(from+z.piece, z.alloc)
		path := z.path
		z.busy, z.busyFrom = true, from
		z.mu.Unlock()
		err := z.fill(path, from, to-from)
		z.mu.Lock()
		z.busy = false
		z.cond.Broadcast()
		if err != nil {
			// Only a loss of speed: appends go on into unzeroed space.
			z.off = true
			z.logger.Warn("could not zero the log's preallocated space ahead of its writes; writes go on without it", "file", path, "error", err)
			continue
		}
		z.zeroed += to - from
		if z.seg != nil && z.path == path {
			z.done = max(z.done, to)
		}
	}
}
