package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// runProduce appends records: the arguments, or one per line of stdin. It
// prints each record's offset on its own line, in order. Requests go to the
// leader, wherever -addr points; a request whose outcome is unknown is not
// retried (the error says so).
func runProduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("produce", stderr)
	var cf clientFlags
	cf.register(fs)
	key := fs.String("key", "", "key for every record")
	batch := fs.Int("batch", 100, "records per request when reading stdin (each request is atomic)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *batch < 1 {
		return usageError{fmt.Sprintf("-batch must be positive, got %d", *batch)}
	}
	cl, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	send := func(values [][]byte) error {
		recs := make([]*loghousev1.Record, len(values))
		for i, v := range values {
			recs[i] = &loghousev1.Record{Value: v}
			if *key != "" {
				recs[i].Key = []byte(*key)
			}
		}
		cctx, cancel := cf.ctx(ctx)
		defer cancel()
		resp, err := cl.Produce(cctx, recs...)
		if err != nil {
			return rpcError(err)
		}
		for i := range values {
			fmt.Fprintln(stdout, resp.BaseOffset+uint64(i))
		}
		return nil
	}
	if fs.NArg() > 0 {
		values := make([][]byte, fs.NArg())
		for i, a := range fs.Args() {
			values[i] = []byte(a)
		}
		return closeClient(cl, send(values))
	}
	if stdin == nil {
		stdin = os.Stdin
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var pending [][]byte
	for sc.Scan() {
		pending = append(pending, append([]byte(nil), sc.Bytes()...))
		if len(pending) == *batch {
			if err := send(pending); err != nil {
				return closeClient(cl, err)
			}
			pending = pending[:0]
		}
	}
	if err := sc.Err(); err != nil {
		return closeClient(cl, fmt.Errorf("read stdin: %w", err))
	}
	if len(pending) > 0 {
		return closeClient(cl, send(pending))
	}
	return closeClient(cl, nil)
}
