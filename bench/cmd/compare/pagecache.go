package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// Page cache state. A log server that has run for a while has a full page
// cache: every page it writes into is one the kernel reclaims from older
// file data. A benchmark on a machine that has just booted, or that has
// just deleted the previous system's data, writes into free memory instead,
// and on a virtual machine that is not the same cost: a VM with free page
// reporting (virtio-balloon) hands free memory back to the hypervisor
// within seconds, and the first touch of such a page faults in the
// hypervisor. On the 2-core VM, dd of 2 GiB into the page cache took
// 3.6–4.9 s into free memory that had been handed back, 0.47–0.62 s with
// the page cache full, and 0.43 s into memory freed just before. A sync =
// none Loghouse node at 64 producers wrote 0.97M records/s into free
// memory and 1.55M with the page cache full (2026-11-27); the gRPC
// baseline, which writes nothing, did not move.
//
// So compare, by default, keeps the page cache full: before each system
// runs it tops the cache up with a sparse scratch file it reads (reading a
// hole caches zero pages without writing to the disk) until only
// pageCacheSlack of memory is free, and keeps that file until the end of
// the run. Every system then writes into memory reclaimed from that file,
// as a long-running server would. -page-cache free measures the other
// state.
const pageCacheSlack = 512 << 20

// checkPageCacheMode checks a -page-cache value.
func checkPageCacheMode(mode string) error {
	if mode != "full" && mode != "free" {
		return fmt.Errorf("-page-cache %q: want full or free", mode)
	}
	return nil
}

// pageCache is the scratch file that holds the page cache full.
type pageCache struct {
	path string
	f    *os.File
	size int64 // bytes of the file read so far
	log  io.Writer
}

// fillPageCache creates the scratch file at path and tops the page cache
// up once; for mode "free" it returns nil. The caller calls close at the
// end of the run.
func fillPageCache(mode, path string, log io.Writer) (*pageCache, error) {
	if mode == "free" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("page cache scratch file: %w", err)
	}
	fmt.Fprintf(log, "compare: filling the page cache (-page-cache full; about a minute on a VM that has handed its free memory back)\n")
	p := &pageCache{path: path, f: f, log: log}
	if err := p.topUp(); err != nil {
		return nil, errors.Join(err, p.close())
	}
	return p, nil
}

// topUp grows the scratch file by what is free beyond pageCacheSlack and
// reads the new part into the page cache. It does nothing when less than
// 64 MiB would be added, when /proc/meminfo cannot be read, or when p is
// nil (-page-cache free).
func (p *pageCache) topUp() error {
	if p == nil {
		return nil
	}
	add := memInfo("MemFree") - pageCacheSlack
	if add < 64<<20 {
		return nil
	}
	t0 := time.Now()
	end := p.size + add
	if err := p.f.Truncate(end); err != nil {
		return fmt.Errorf("page cache scratch file: %w", err)
	}
	buf := make([]byte, 1<<20)
	for off := p.size; off < end; {
		n, err := p.f.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		off += int64(n)
		if err != nil {
			return fmt.Errorf("page cache scratch file: reading at %d: %w", off, err)
		}
	}
	p.size = end
	fmt.Fprintf(p.log, "compare: page cache topped up by %d MiB in %s (%d MiB free)\n", add>>20, time.Since(t0).Round(time.Millisecond), memInfo("MemFree")>>20)
	return nil
}

// close deletes the scratch file, which frees what it holds of the page
// cache. A nil p does nothing.
func (p *pageCache) close() error {
	if p == nil {
		return nil
	}
	return errors.Join(p.f.Close(), os.Remove(p.path))
}

// memInfo returns the field of /proc/meminfo in bytes, or 0 if it cannot
// be read.
func memInfo(field string) int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }() // read only
	sc := bufio.NewScanner(f)
	prefix := []byte(field + ":")
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), prefix); ok {
			fields := bytes.Fields(rest)
			if len(fields) == 0 {
				return 0
			}
			kb, _ := strconv.ParseInt(string(fields[0]), 10, 64)
			return kb << 10
		}
	}
	return 0
}
