package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"
)

// pretouch writes size bytes (at most half of the available memory) to a
// scratch file at path and deletes it, so that the page cache pages the
// systems write into later are memory the guest has already used.
//
// On a virtual machine the hypervisor backs guest memory on first touch.
// Copying into never-touched pages is several times slower than into pages
// used before: on the 2-core VM this was measured with perf as
// copy_folio_from_iter_atomic taking 21% of a sync = none node's CPU on
// fresh memory and 2.4% on reused memory (578k against 871k records/s).
// Without this, whichever system writes first into untouched memory pays.
// It is no more than that: the 2-core VM also hands freed memory back to
// the hypervisor within seconds (free page reporting), so the pages this
// frees, and each system's data deleted after its run, are cold again
// before long, and a system that runs later pays as the first would have.
//
// Writing that much starts the kernel's background writeback; deleting the
// file drops what is still dirty, and a sync then waits out the writes
// already under way, so that they do not delay the first system's fsyncs.
func pretouch(path string, size int64, log io.Writer) error {
	if avail := availableMemory(); avail > 0 && size > avail/2 {
		size = avail / 2
	}
	if size <= 0 {
		return nil
	}
	t0 := time.Now()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		_ = os.Remove(path) // scratch; a failure to write says more
		syscall.Sync()
	}()
	buf := bytes.Repeat([]byte{0xa5}, 1<<20)
	for n := int64(0); n < size; n += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			_ = f.Close()
			return fmt.Errorf("pretouch: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pretouch: %w", err)
	}
	fmt.Fprintf(log, "compare: cycled %d MiB of page cache in %s\n", size>>20, time.Since(t0).Round(time.Millisecond))
	return nil
}

// availableMemory returns MemAvailable from /proc/meminfo in bytes, or 0
// if it cannot be read.
func availableMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }() // read only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		line := sc.Bytes()
		if rest, ok := bytes.CutPrefix(line, []byte("MemAvailable:")); ok {
			fields := bytes.Fields(rest)
			if len(fields) > 0 {
				kb, _ = strconv.ParseInt(string(fields[0]), 10, 64)
			}
			return kb << 10
		}
	}
	return 0
}
