package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/loghouse/loghouse/pkg/commitlog"
)

// runDemo shows the storage engine at work: batched appends, a reopen, and
// reads by offset and by time.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	dir := fs.String("dir", "", "log directory (default: a new temporary directory, removed afterwards)")
	records := fs.Int("records", 1_000_000, "records to append (256 bytes each, 64 per entry)")
	sync := fs.String("sync", "always", `durability: "always" or "none"`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	policy, err := commitlog.ParseSyncPolicy(*sync)
	if err != nil {
		return usageError{err.Error()}
	}
	if *records < 1 {
		return usageError{fmt.Sprintf("-records must be positive, got %d", *records)}
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "loghouse-demo-")
		if err != nil {
			return err
		}
		defer func() {
			if err := os.RemoveAll(tmp); err != nil {
				fmt.Fprintln(stderr, "loghoused: removing the demo directory:", err)
			}
		}()
		*dir = tmp
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "commitlog", Output: stderr, Level: hclog.Info})
	opts := commitlog.Options{Logger: logger, Sync: policy, MaxSegmentBytes: 16 << 20}
	l, err := commitlog.Open(*dir, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "log in %s (sync=%s), next index %d, next offset %d\n", *dir, policy, l.LastIndex()+1, l.NextOffset())

	const perEntry, size = 64, 256
	data := make([]byte, perEntry*size)
	start := time.Now()
	firstOffset := l.NextOffset()
	var midTime int64
	for n := 0; n < *records; n += perEntry {
		if err := ctx.Err(); err != nil {
			return closeWith(l, err)
		}
		count := min(perEntry, *records-n)
		for r := range count {
			binary.LittleEndian.PutUint64(data[r*size:], l.NextOffset()+uint64(r))
		}
		now := time.Now().UnixNano()
		if n <= *records/2 {
			midTime = now
		}
		e := []commitlog.Entry{{Index: l.LastIndex() + 1, Time: now, Count: uint32(count), Data: data[:count*size]}}
		if err := l.Append(e); err != nil {
			return closeWith(l, err)
		}
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "appended %d records in %v: %.0f records/s, %.1f MB/s\n",
		*records, took.Round(time.Millisecond), float64(*records)/took.Seconds(), float64(*records*size)/took.Seconds()/1e6)
	if err := l.Close(); err != nil {
		return err
	}

	start = time.Now()
	l, err = commitlog.Open(*dir, opts)
	if err != nil {
		return err
	}
	st := l.Stats()
	fmt.Fprintf(stdout, "reopened in %v: %d segments, %d bytes, indexes [%d, %d], offsets [%d, %d)\n",
		time.Since(start).Round(time.Microsecond), st.Segments, st.Bytes, l.FirstIndex(), l.LastIndex(), l.FirstOffset(), l.NextOffset())

	target := firstOffset + uint64(*records)/3
	e, err := l.ReadOffset(target)
	if err != nil {
		return closeWith(l, err)
	}
	rec := e.Data[(target-e.Offset)*size:]
	fmt.Fprintf(stdout, "record at offset %d: entry %d, record says offset %d\n", target, e.Index, binary.LittleEndian.Uint64(rec))

	i, err := l.SearchTime(midTime)
	if err != nil {
		return closeWith(l, err)
	}
	fmt.Fprintf(stdout, "first entry at or after %s: index %d\n", time.Unix(0, midTime).UTC().Format(time.RFC3339Nano), i)

	start = time.Now()
	it := l.NewIterator(l.FirstIndex())
	var n uint64
	for it.Next() {
		n += uint64(it.Entry().Count)
	}
	if err := it.Err(); err != nil {
		return closeWith(l, err)
	}
	took = time.Since(start)
	fmt.Fprintf(stdout, "read %d records sequentially in %v: %.0f records/s\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	return l.Close()
}

func closeWith(l *commitlog.Log, err error) error {
	if cerr := l.Close(); cerr != nil {
		return fmt.Errorf("%w (and closing the log: %w)", err, cerr)
	}
	return err
}
