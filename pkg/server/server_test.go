package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/replication"
)

// TestConfig checks defaults and validation, with its cross-field checks.
func TestConfig(t *testing.T) {
	node := &replication.Node{}
	authz := authorizerFunc(func(string, string) error { return nil })
	cases := []struct {
		name  string
		cfg   Config
		wants string // "" for valid
	}{
		{"defaults", Config{Node: node, Authorizer: authz}, ""},
		{"no node", Config{Authorizer: authz}, "Node is required"},
		{"no authorizer", Config{Node: node}, "Authorizer is required"},
		{"negative", Config{Node: node, Authorizer: authz, ConsumeMaxBytes: -1}, "ConsumeMaxBytes -1 must not be negative"},
		{"negative timeout", Config{Node: node, Authorizer: authz, ApplyTimeout: -time.Second}, "ApplyTimeout"},
		{"record larger than a batch", Config{Node: node, Authorizer: authz, MaxRecordBytes: 2 << 20}, "MaxRecordBytes 2097152 exceeds MaxBatchBytes 1048576"},
		{"too many records", Config{Node: node, Authorizer: authz, MaxRequestRecords: 1<<20 + 1}, "MaxRequestRecords"},
		{"batch beyond the format", Config{Node: node, Authorizer: authz, MaxBatchBytes: 1 << 30}, "MaxBatchBytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg.withDefaults()
			err := cfg.validate()
			switch {
			case tc.wants == "" && err != nil:
				t.Fatal(err)
			case tc.wants != "" && (!errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wants)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.wants)
			}
		})
	}
	d := Config{}.withDefaults()
	if d.MaxRecordBytes != 1<<20 || d.MaxRequestRecords != 10_000 || d.MaxBatchBytes != 1<<20 || d.ConsumeMaxRecords != 1000 ||
		d.ConsumeMaxBytes != 1<<20 || d.ApplyTimeout != 10*time.Second || d.MaxInflightApplies != 2 || d.ProduceStreamDepth != 128 {
		t.Fatalf("defaults: %+v", d)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New with an empty config: %v", err)
	}
}

type authorizerFunc func(subject, action string) error

func (f authorizerFunc) Authorize(subject, action string) error { return f(subject, action) }

// TestClusterAdmin covers GetServers, Status and health on a three-node
// cluster, and health following raft when the cluster loses its quorum.
func TestClusterAdmin(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{})
	leader, f := c.leader(t), c.follower(t)
	produce(t, client(t, leader, "root"), values("x", 3, 0))

	for _, n := range c.nodes {
		for _, id := range []string{"reader", "writer"} {
			resp, err := client(t, n, id).GetServers(testCtx(t), &loghousev1.GetServersRequest{})
			if err != nil {
				t.Fatalf("%s as %s: %v", n.id, id, err)
			}
			if len(resp.Servers) != 3 {
				t.Fatalf("%s: %d servers", n.id, len(resp.Servers))
			}
			leaders := 0
			for i, s := range resp.Servers {
				want := c.nodes[i]
				if s.Id != want.id || s.RpcAddr != want.addr || !s.Voter {
					t.Fatalf("%s: server %d is %v, want %s at %s", n.id, i, s, want.id, want.addr)
				}
				if s.IsLeader {
					leaders++
					if s.Id != leader.id {
						t.Fatalf("%s says %s leads, not %s", n.id, s.Id, leader.id)
					}
				}
			}
			if leaders != 1 {
				t.Fatalf("%s: %d leaders", n.id, leaders)
			}
		}
	}

	st, err := client(t, leader, "root").Status(testCtx(t), &loghousev1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeId != leader.id || st.RaftState != "Leader" || st.LeaderId != leader.id || st.LeaderAddr != leader.addr || st.Term == 0 ||
		st.CommitIndex == 0 || st.AppliedIndex == 0 || st.CommittedOffset != 3 || st.FirstOffset != 0 || st.FirstIndex != 1 ||
		st.LastIndex < 2 || st.Segments != 1 || st.LogBytes == 0 {
		t.Fatalf("leader status %v", st)
	}
	waitFor(t, "the follower to commit", func() bool { c, _ := f.node.FSM.Committed(); return c == 3 })
	st, err = client(t, f, "root").Status(testCtx(t), &loghousev1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeId != f.id || st.RaftState != "Follower" || st.LeaderId != leader.id || st.CommittedOffset != 3 {
		t.Fatalf("follower status %v", st)
	}

	health := func(n *tnode) healthpb.HealthCheckResponse_ServingStatus {
		h := healthpb.NewHealthClient(dial(t, n, "nobody"))
		r, err := h.Check(testCtx(t), &healthpb.HealthCheckRequest{Service: "loghouse.v1.Log"})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status
	}
	for _, n := range c.nodes {
		if s := health(n); s != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("%s: health %s", n.id, s)
		}
	}
	// Without a quorum the last node loses its leader and stops serving.
	var last *tnode
	for _, n := range c.nodes {
		if n != leader && last == nil {
			last = n
			continue
		}
		c.stopNode(n)
	}
	waitFor(t, "the lone node to report NOT_SERVING", func() bool { return health(last) == healthpb.HealthCheckResponse_NOT_SERVING })
}

// TestClose checks that Close ends waiting streams and reads and refuses new writes
// with Unavailable, reports NOT_SERVING, and is idempotent.
func TestClose(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	n := c.nodes[0]
	cl := client(t, n, "root")
	stream, err := cl.ConsumeStream(testCtx(t), atOffset(0))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream to wait", func() bool { return n.srv.streamWaits.Load() > 0 })
	// A read waiting for an offset that will never be committed, with no
	// deadline.
	waiting := make(chan error, 1)
	go func() {
		_, err := cl.Consume(context.Background(), &loghousev1.ConsumeRequest{MinCommitted: 1 << 40})
		waiting <- err
	}()
	if err := n.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.srv.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.Unavailable, "shutting down")
	wantCode(t, <-waiting, codes.Unavailable, "shutting down")
	_, err = cl.Produce(testCtx(t), &loghousev1.ProduceRequest{Records: values("x", 1, 0)})
	wantCode(t, err, codes.Unavailable, "shutting down")
	h, err := healthpb.NewHealthClient(dial(t, n, "root")).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health after close: %v %v", h, err)
	}
}
