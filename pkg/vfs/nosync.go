package vfs

import (
	"io"
	"os"
)

// NoSync wraps an FS and makes file and directory syncs do nothing, for
// tests that create thousands of files and do not test durability. Locking
// passes through to the inner FS.
type NoSync struct{ FS }

// OpenFile implements FS.
func (f NoSync) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{file}, nil
}

// SyncDir implements FS and does nothing.
func (NoSync) SyncDir(string) error { return nil }

// Lock implements Locker if the inner FS does.
func (f NoSync) Lock(path string) (io.Closer, error) {
	if lk, ok := f.FS.(Locker); ok {
		return lk.Lock(path)
	}
	return io.NopCloser(nil), nil
}

type noSyncFile struct{ File }

func (noSyncFile) Sync() error { return nil }
