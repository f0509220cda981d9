package client

import (
	"context"

	"google.golang.org/grpc"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// Servers asks the cluster (the leader, if one is known) for its servers,
// and makes the answer the Client's view of the cluster.
func (c *Client) Servers(ctx context.Context) ([]*loghousev1.Server, error) {
	var resp *loghousev1.GetServersResponse
	err := c.call(ctx, "GetServers", route{kind: toAny}, false, func(ctx context.Context, lc loghousev1.LogClient, opts ...grpc.CallOption) error {
		var err error
		resp, err = lc.GetServers(ctx, &loghousev1.GetServersRequest{}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(resp.Servers) > 0 {
		c.apply(resp, "Servers")
	}
	return resp.Servers, nil
}

// Status describes the server at addr (its raft state and its log); with
// addr "", the leader's. It is not retried on another server.
func (c *Client) Status(ctx context.Context, addr string) (*loghousev1.StatusResponse, error) {
	r := route{kind: toAddr, addr: addr}
	if addr == "" {
		r = route{kind: toLeader}
	}
	var resp *loghousev1.StatusResponse
	err := c.call(ctx, "Status", r, false, func(ctx context.Context, lc loghousev1.LogClient, opts ...grpc.CallOption) error {
		var err error
		resp, err = lc.Status(ctx, &loghousev1.StatusRequest{}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// Members lists the gossip members a server (the leader, if one is known)
// knows, with their status and tags. It needs the admin permission.
func (c *Client) Members(ctx context.Context) ([]*loghousev1.Member, error) {
	var resp *loghousev1.MembersResponse
	err := c.call(ctx, "Members", route{kind: toAny}, false, func(ctx context.Context, lc loghousev1.LogClient, opts ...grpc.CallOption) error {
		var err error
		resp, err = lc.Members(ctx, &loghousev1.MembersRequest{}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Members, nil
}

// RemovePeer removes the server with raft ID id from the cluster's raft
// configuration, on the leader. Removing is idempotent, so it is retried
// like a read. It needs the admin permission.
func (c *Client) RemovePeer(ctx context.Context, id string) error {
	return c.call(ctx, "RemovePeer", route{kind: toLeader}, false, func(ctx context.Context, lc loghousev1.LogClient, opts ...grpc.CallOption) error {
		_, err := lc.RemovePeer(ctx, &loghousev1.RemovePeerRequest{Id: id}, opts...)
		return err
	})
}
