package client

import (
	"context"

	"google.golang.org/grpc"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// Produce appends recs atomically, on the leader: they get consecutive
// offsets from the response's base offset, or none is stored. It returns
// once they are committed. It is retried only when the failure shows that
// nothing was stored; an error wrapping ErrIndeterminate means the records
// may or may not have been committed (see the package doc). A call
// without records, or with a header name that is not UTF-8, is refused
// with InvalidArgument before anything is sent.
func (c *Client) Produce(ctx context.Context, recs ...*loghousev1.Record) (*loghousev1.ProduceResponse, error) {
	// A header name that is not UTF-8 cannot be marshalled; gRPC finds
	// that out only once the call has a transport stream, which would
	// make the failure look indeterminate.
	if _, err := callSize(recs); err != nil {
		return nil, err
	}
	req := &loghousev1.ProduceRequest{Records: recs}
	var resp *loghousev1.ProduceResponse
	err := c.call(ctx, "Produce", route{kind: toLeader}, true, func(ctx context.Context, lc loghousev1.LogClient, opts ...grpc.CallOption) error {
		var err error
		resp, err = lc.Produce(ctx, req, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}
