package vfs

import (
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// Op names a kind of file-system operation, for fault injection.
type Op uint16

// The operations a Fault counts. Reads are counted too, so a test can fail
// them, but most tests filter them out.
const (
	OpOpen Op = 1 << iota
	OpRead
	OpWrite
	OpSync
	OpTruncate
	OpSize
	OpMap
	OpClose
	OpRemove
	OpRename
	OpReadDir
	OpMkdir
	OpSyncDir
	OpAllocate

	// OpMutating is every operation that changes what is on disk.
	OpMutating = OpOpen | OpWrite | OpSync | OpTruncate | OpRemove | OpRename | OpMkdir | OpSyncDir | OpAllocate
	// OpAll is every operation.
	OpAll Op = 1<<14 - 1
)

var opNames = map[Op]string{
	OpOpen: "open", OpRead: "read", OpWrite: "write", OpSync: "sync",
	OpTruncate: "truncate", OpSize: "size", OpMap: "map", OpClose: "close",
	OpRemove: "remove", OpRename: "rename", OpReadDir: "readdir",
	OpMkdir: "mkdir", OpSyncDir: "syncdir", OpAllocate: "allocate",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("op(%#x)", uint16(o))
}

// Injected errors commonly used by tests.
var (
	ErrIO      error = syscall.EIO
	ErrNoSpace error = syscall.ENOSPC
)

// Fault is an FS that passes every call to an inner FS, counts the calls
// whose Op is in its mask, and fails the Nth of them (and, if sticky, every
// one after it). A failing write may first write a prefix of its buffer (a
// short write). The zero Fault is not usable; call NewFault.
type Fault struct {
	inner FS

	mu     sync.Mutex
	mask   Op
	count  int
	failAt int // 1-based; 0 = never
	sticky bool
	short  bool
	err    error
	fired  []string
}

// NewFault wraps inner. It counts the operations in mask and injects nothing
// until FailAt is called.
func NewFault(inner FS, mask Op) *Fault {
	return &Fault{inner: inner, mask: mask}
}

// FailAt arranges for the nth counted operation from now (1-based) to fail
// with err. If sticky, every later counted operation fails too. If short, a
// failing write first writes half its buffer.
func (f *Fault) FailAt(n int, err error, sticky, short bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count = 0
	f.failAt = n
	f.err = err
	f.sticky = sticky
	f.short = short
	f.fired = nil
}

// Disarm stops injecting; counting goes on.
func (f *Fault) Disarm() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAt = 0
	f.sticky = false
}

// Count is the number of counted operations since the last FailAt (or since
// NewFault).
func (f *Fault) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// Fired lists the operations that failed, as "op path".
func (f *Fault) Fired() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.fired...)
}

// check counts op and says whether it must fail, and whether short.
func (f *Fault) check(op Op, name string) (error, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mask&op == 0 {
		return nil, false
	}
	f.count++
	if f.failAt == 0 || f.count < f.failAt || (f.count > f.failAt && !f.sticky) {
		return nil, false
	}
	f.fired = append(f.fired, op.String()+" "+name)
	return &os.PathError{Op: op.String(), Path: name, Err: f.err}, f.short
}

// OpenFile implements FS.
func (f *Fault) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if err, _ := f.check(OpOpen, name); err != nil {
		return nil, err
	}
	file, err := f.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{f: f, inner: file}, nil
}

// Remove implements FS.
func (f *Fault) Remove(name string) error {
	if err, _ := f.check(OpRemove, name); err != nil {
		return err
	}
	return f.inner.Remove(name)
}

// Rename implements FS.
func (f *Fault) Rename(oldpath, newpath string) error {
	if err, _ := f.check(OpRename, newpath); err != nil {
		return err
	}
	return f.inner.Rename(oldpath, newpath)
}

// ReadDir implements FS.
func (f *Fault) ReadDir(dir string) ([]string, error) {
	if err, _ := f.check(OpReadDir, dir); err != nil {
		return nil, err
	}
	return f.inner.ReadDir(dir)
}

// MkdirAll implements FS.
func (f *Fault) MkdirAll(dir string, perm os.FileMode) error {
	if err, _ := f.check(OpMkdir, dir); err != nil {
		return err
	}
	return f.inner.MkdirAll(dir, perm)
}

// SyncDir implements FS.
func (f *Fault) SyncDir(dir string) error {
	if err, _ := f.check(OpSyncDir, dir); err != nil {
		return err
	}
	return f.inner.SyncDir(dir)
}

// Lock implements Locker if the inner FS does; it is never failed.
func (f *Fault) Lock(path string) (io.Closer, error) {
	if lk, ok := f.inner.(Locker); ok {
		return lk.Lock(path)
	}
	return io.NopCloser(nil), nil
}

type faultFile struct {
	f     *Fault
	inner File
}

func (ff *faultFile) Name() string { return ff.inner.Name() }

func (ff *faultFile) ReadAt(p []byte, off int64) (int, error) {
	if err, _ := ff.f.check(OpRead, ff.inner.Name()); err != nil {
		return 0, err
	}
	return ff.inner.ReadAt(p, off)
}

func (ff *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err, short := ff.f.check(OpWrite, ff.inner.Name()); err != nil {
		if short && len(p) > 1 {
			n, werr := ff.inner.WriteAt(p[:len(p)/2], off)
			if werr != nil {
				return n, werr
			}
			return n, err
		}
		return 0, err
	}
	return ff.inner.WriteAt(p, off)
}

func (ff *faultFile) Sync() error {
	if err, _ := ff.f.check(OpSync, ff.inner.Name()); err != nil {
		return err
	}
	return ff.inner.Sync()
}

func (ff *faultFile) Truncate(size int64) error {
	if err, _ := ff.f.check(OpTruncate, ff.inner.Name()); err != nil {
		return err
	}
	return ff.inner.Truncate(size)
}

func (ff *faultFile) Allocate(off, length int64) error {
	if err, _ := ff.f.check(OpAllocate, ff.inner.Name()); err != nil {
		return err
	}
	return ff.inner.Allocate(off, length)
}

func (ff *faultFile) Size() (int64, error) {
	if err, _ := ff.f.check(OpSize, ff.inner.Name()); err != nil {
		return 0, err
	}
	return ff.inner.Size()
}

func (ff *faultFile) Map(length int) (Mapping, error) {
	if err, _ := ff.f.check(OpMap, ff.inner.Name()); err != nil {
		return nil, err
	}
	return ff.inner.Map(length)
}

func (ff *faultFile) Close() error {
	// The file is closed even when the error is injected, as close(2) does.
	err, _ := ff.f.check(OpClose, ff.inner.Name())
	cerr := ff.inner.Close()
	if err != nil {
		return err
	}
	return cerr
}
