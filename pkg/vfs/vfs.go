// Package vfs is the small file-system seam that Loghouse's storage code goes
// through, so that tests can inject faults (EIO, ENOSPC, short writes, failed
// fsyncs) at any call and check that nothing acknowledged is lost.
//
// OS is the real implementation. Fault wraps any FS and fails the N-th
// matching operation, or every one after it, as a test asks.
package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// File is an open file. Positional reads and writes only: no code in Loghouse
// depends on a shared file offset.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	// Name is the path the file was opened with.
	Name() string
	// Sync makes the file's data (and the metadata needed to read it back,
	// such as its size) durable: fdatasync(2).
	Sync() error
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Allocate reserves disk blocks for bytes [off, off+length) and
	// extends the file's size to cover them; they read as zeros
	// (fallocate(2), mode 0). Writing into allocated blocks later changes
	// no block map or size, so an fdatasync after it has less metadata to
	// commit. A file system that cannot allocate ahead returns an error
	// that matches errors.ErrUnsupported.
	Allocate(off, length int64) error
	// Size is the file's current size in bytes.
	Size() (int64, error)
	// Map maps the first length bytes of the file read-only and shared, so
	// that WriteAt on the same file is visible through the mapping.
	Map(length int) (Mapping, error)
}

// Mapping is a read-only shared memory mapping of a file.
type Mapping interface {
	// Bytes is the mapped memory. It must not be used after Unmap.
	Bytes() []byte
	Unmap() error
}

// FS is the set of file-system operations storage code may use.
type FS interface {
	// OpenFile opens or creates a file, as os.OpenFile.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Remove removes a file.
	Remove(name string) error
	// Rename renames a file, replacing the target atomically.
	Rename(oldpath, newpath string) error
	// ReadDir lists a directory's entry names, sorted.
	ReadDir(dir string) ([]string, error)
	// MkdirAll creates a directory and its parents.
	MkdirAll(dir string, perm os.FileMode) error
	// SyncDir makes the directory's entries (creations, renames, removals)
	// durable.
	SyncDir(dir string) error
}

// Locker is implemented by file systems that can take an exclusive,
// advisory lock on a file, so that two processes never open the same log.
// The lock is held until the returned Closer is closed or the process
// exits.
type Locker interface {
	Lock(path string) (io.Closer, error)
}

// ZeroFiller is implemented by file systems that can write zeros over part
// of an existing file through a handle of their own and make them durable.
// The storage code uses it to turn space it reserved with Allocate into
// written blocks ahead of its appends (see pkg/commitlog, "Zeroing ahead").
// A handle of its own keeps the two writers' fsync errors apart: Linux
// reports a failed writeback once to each open file description, so a
// zero filler syncing the appender's handle could swallow the error the
// appender's own fsync must see. Test file systems that wrap an FS do not
// pass it on unless they mean to.
type ZeroFiller interface {
	// ZeroFill writes zeros over bytes [off, off+length) of the file
	// name, never past its current size, and fdatasyncs them. It never
	// creates a file.
	ZeroFill(name string, off, length int64) error
}

// zeros is what ZeroFill writes from; nothing ever writes into it.
var zeros = make([]byte, 1<<20)

// ZeroFill implements ZeroFiller.
func (OS) ZeroFill(name string, off, length int64) (err error) {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	end := min(off+length, fi.Size())
	for p := off; p < end; {
		n, err := f.WriteAt(zeros[:min(int64(len(zeros)), end-p)], p)
		if err != nil {
			return err
		}
		p += int64(n)
	}
	if end <= off {
		return nil
	}
	return osFile{f}.Sync()
}

// WritebackStarter is implemented by files that can start writing their
// dirty pages in a range back to the disk without waiting for it
// (sync_file_range(2) with SYNC_FILE_RANGE_WRITE only). It makes nothing
// durable and reports no writeback error: a later Sync still must, and
// does, since starting writeback does not consume the error the file's
// next fdatasync reports. The storage code uses it, when it does not sync
// each append, so that the sync that seals a segment finds little left to
// write. Files of test file systems that wrap another do not implement it
// unless they mean to.
type WritebackStarter interface {
	StartWriteback(off, length int64) error
}

// ErrLocked means another process holds the lock.
var ErrLocked = errors.New("vfs: locked by another process")

// OS is the FS of the operating system.
type OS struct{}

var _ FS = OS{}

// OpenFile implements FS.
func (OS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// Remove implements FS.
func (OS) Remove(name string) error { return os.Remove(name) }

// Rename implements FS.
func (OS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// ReadDir implements FS.
func (OS) ReadDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

// MkdirAll implements FS.
func (OS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

// SyncDir implements FS.
func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// Lock implements Locker with flock(2) on path, creating it if needed.
func (OS) Lock(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		cerr := f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errors.Join(fmt.Errorf("%w: %s", ErrLocked, path), cerr)
		}
		return nil, errors.Join(&os.PathError{Op: "flock", Path: path, Err: err}, cerr)
	}
	return f, nil
}

type osFile struct{ f *os.File }

func (o osFile) ReadAt(p []byte, off int64) (int, error)  { return o.f.ReadAt(p, off) }
func (o osFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }
func (o osFile) Close() error                             { return o.f.Close() }
func (o osFile) Name() string                             { return o.f.Name() }
func (o osFile) Truncate(size int64) error                { return o.f.Truncate(size) }

func (o osFile) Allocate(off, length int64) error {
	for {
		err := unix.Fallocate(int(o.f.Fd()), 0, off, length)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EOPNOTSUPP {
			return fmt.Errorf("vfs: fallocate %s: %w (%w)", o.f.Name(), errors.ErrUnsupported, err)
		}
		if err != nil {
			return &os.PathError{Op: "fallocate", Path: o.f.Name(), Err: err}
		}
		return nil
	}
}

func (o osFile) Sync() error {
	for {
		err := unix.Fdatasync(int(o.f.Fd()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "fdatasync", Path: o.f.Name(), Err: err}
		}
		return nil
	}
}

// StartWriteback implements WritebackStarter.
func (o osFile) StartWriteback(off, length int64) error {
	for {
		err := unix.SyncFileRange(int(o.f.Fd()), off, length, unix.SYNC_FILE_RANGE_WRITE)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "sync_file_range", Path: o.f.Name(), Err: err}
		}
		return nil
	}
}

func (o osFile) Size() (int64, error) {
	fi, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (o osFile) Map(length int) (Mapping, error) {
	if length <= 0 {
		return nil, fmt.Errorf("vfs: map %s: invalid length %d", o.f.Name(), length)
	}
	b, err := unix.Mmap(int(o.f.Fd()), 0, length, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, &os.PathError{Op: "mmap", Path: o.f.Name(), Err: err}
	}
	return &osMapping{b: b}, nil
}

type osMapping struct{ b []byte }

func (m *osMapping) Bytes() []byte { return m.b }

func (m *osMapping) Unmap() error {
	if m.b == nil {
		return nil
	}
	err := unix.Munmap(m.b)
	m.b = nil
	return err
}
