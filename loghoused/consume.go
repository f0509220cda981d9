package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// runConsume prints committed records, one per line: the value, or with
// -json an object with offset, timestamp, key, value and headers. Without
// -f it stops at the end of the log (or after -n records); with -f it
// waits for new records until interrupted. Reads go to the leader, which
// has every acknowledged record, wherever -addr points; with -stale they go
// to the followers, which spreads the load but may miss the latest records
// (as Consul's -stale reads do).
func runConsume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("consume", stderr)
	var cf clientFlags
	cf.register(fs)
	offset := fs.Uint64("offset", 0, "first offset to read")
	fromTime := fs.String("from-time", "", "start at the first record at or after this RFC 3339 time (instead of -offset)")
	n := fs.Uint64("n", 0, "stop after this many records (0: no limit)")
	follow := fs.Bool("f", false, "follow: wait for new records")
	asJSON := fs.Bool("json", false, "print JSON objects instead of values")
	fs.BoolVar(&cf.stale, "stale", false, "read from followers, which may lag the leader by a moment (default: read from the leader)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	req := &loghousev1.ConsumeRequest{Start: &loghousev1.ConsumeRequest_Offset{Offset: *offset}}
	if *fromTime != "" {
		t, err := time.Parse(time.RFC3339Nano, *fromTime)
		if err != nil {
			return usageError{fmt.Sprintf("-from-time: %v", err)}
		}
		req.Start = &loghousev1.ConsumeRequest_FromTimeUnixNano{FromTimeUnixNano: t.UnixNano()}
	}
	cl, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	var printed uint64
	print := func(recs []*loghousev1.Record) bool {
		for _, r := range recs {
			if *asJSON {
				b, _ := json.Marshal(jsonRecord(r)) // a struct of strings and numbers cannot fail
				fmt.Fprintln(stdout, string(b))
			} else {
				fmt.Fprintln(stdout, string(r.Value))
			}
			printed++
			if *n > 0 && printed >= *n {
				return false
			}
		}
		return true
	}
	if *follow {
		// The stream goes on from the next offset on another server if
		// its server fails, without repeating or skipping a record.
		stream := cl.ConsumeStream(ctx, req)
		for {
			resp, err := stream.Recv()
			if err != nil {
				if ctx.Err() != nil || status.Code(err) == codes.Canceled {
					return closeClient(cl, nil)
				}
				return closeClient(cl, rpcError(err))
			}
			if !print(resp.Records) {
				return closeClient(cl, stream.Close())
			}
		}
	}
	for {
		cctx, cancel := cf.ctx(ctx)
		resp, err := cl.Consume(cctx, req)
		cancel()
		if err != nil {
			return closeClient(cl, rpcError(err))
		}
		if !print(resp.Records) || len(resp.Records) == 0 || resp.NextOffset >= resp.CommittedOffset {
			return closeClient(cl, nil)
		}
		req.Start = &loghousev1.ConsumeRequest_Offset{Offset: resp.NextOffset}
	}
}

type jsonHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type jsonRec struct {
	Offset    uint64       `json:"offset"`
	Timestamp string       `json:"timestamp"`
	Key       string       `json:"key,omitempty"`
	Value     string       `json:"value"`
	Headers   []jsonHeader `json:"headers,omitempty"`
}

func jsonRecord(r *loghousev1.Record) jsonRec {
	out := jsonRec{
		Offset:    r.Offset,
		Timestamp: time.Unix(0, r.TimestampUnixNano).UTC().Format(time.RFC3339Nano),
		Key:       string(r.Key),
		Value:     string(r.Value),
	}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, jsonHeader{Key: h.Key, Value: string(h.Value)})
	}
	return out
}
