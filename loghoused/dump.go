package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/loghouse/loghouse/pkg/commitlog"
)

// runDump prints a log directory's bounds and entries. Opening the log runs
// recovery, so the dump shows what the daemon would serve.
func runDump(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("log dump", stderr)
	showData := fs.Bool("data", false, "print each entry's data (quoted)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"usage: loghoused log dump [-data] DIR"}
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "commitlog", Output: stderr, Level: hclog.Info})
	l, err := commitlog.Open(fs.Arg(0), commitlog.Options{Logger: logger})
	if err != nil {
		return err
	}
	st := l.Stats()
	fmt.Fprintf(stdout, "dir %s: %d segments, %d bytes, indexes [%d, %d], offsets [%d, %d)\n",
		l.Dir(), st.Segments, st.Bytes, l.FirstIndex(), l.LastIndex(), l.FirstOffset(), l.NextOffset())
	if r := l.Recovery(); r.TruncatedAt >= 0 {
		fmt.Fprintf(stdout, "recovery: cut %s at %d (%d bytes, %d entries): %s\n", r.Segment, r.TruncatedAt, r.DroppedBytes, r.DroppedEntries, r.Reason)
	}
	it := l.NewIterator(l.FirstIndex())
	for it.Next() {
		e := it.Entry()
		fmt.Fprintf(stdout, "index=%d term=%d type=%d offset=%d count=%d time=%s bytes=%d",
			e.Index, e.Term, e.Type, e.Offset, e.Count, time.Unix(0, e.Time).UTC().Format(time.RFC3339Nano), len(e.Data))
		if *showData {
			fmt.Fprintf(stdout, " data=%q", e.Data)
		}
		fmt.Fprintln(stdout)
	}
	return closeWith(l, it.Err())
}
