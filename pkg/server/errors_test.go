package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"

	"github.com/loghouse/loghouse/pkg/commitlog"
)

// TestToStatus checks the one place that maps errors to codes.
func TestToStatus(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	s := c.nodes[0].srv
	cases := []struct {
		err   error
		code  codes.Code
		wants string
	}{
		{fmt.Errorf("read: %w", commitlog.ErrOutOfRange), codes.OutOfRange, "this node holds offsets [0, 0)"},
		{fmt.Errorf("apply: %w", raft.ErrNotLeader), codes.Unavailable, "not the leader; the leader is node0 at " + c.nodes[0].addr},
		{fmt.Errorf("apply: %w", raft.ErrLeadershipLost), codes.Unavailable, "may or may not have been committed"},
		{errServerClosed, codes.Unavailable, "shutting down"},
		{context.DeadlineExceeded, codes.DeadlineExceeded, "deadline"},
		{fmt.Errorf("wait: %w", context.Canceled), codes.Canceled, "canceled"},
		{errors.New("disk on fire at /secret/path"), codes.Internal, "internal error (logged by the server)"},
	}
	for _, tc := range cases {
		t.Run(tc.code.String(), func(t *testing.T) {
			st := wantCode(t, s.toStatus(context.Background(), tc.err), tc.code, tc.wants)
			if tc.code == codes.Internal && st.Message() != "server: internal error (logged by the server)" {
				t.Fatalf("internal error leaked: %q", st.Message())
			}
		})
	}
	already := s.notLeader(context.Background(), "x")
	if got := s.toStatus(context.Background(), already); got.Error() != already.Error() {
		t.Fatalf("a status error was remapped: %v", got)
	}
}
