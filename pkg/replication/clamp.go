package replication

import (
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// clampTransport is raft's transport with one change: the commit index a
// leader sends its followers is never beyond the last entry durable in its
// own log.
//
// The leader's LogStore syncs its command entries in the background
// (LogStore.StoreLogs), and raft counts the leader toward a commit as soon
// as StoreLogs returns. An index raft calls committed may thus rest on the
// followers' copies and a leader copy still in the page cache: with three
// servers, one durable copy. Followers apply up to the commit index they are
// sent, and readers on them would see such an entry; a power cut on the
// leader, and an election between it and the follower without the entry,
// could then take it back. Clamped, the index a follower hears was durable
// on the leader and on enough followers for raft's majority.
type clampTransport struct {
	*raft.NetworkTransport
	synced func() uint64
	// heldBack is the last commit index raft wanted to send and the
	// clamp lowered (tests wait for it).
	heldBack atomic.Uint64
}

func (t *clampTransport) clamp(args *raft.AppendEntriesRequest) {
	// Raft builds a new request for every send and reads only its entries
	// back (to advance the follower's match index), so it may be changed.
	if s := t.synced(); args.LeaderCommitIndex > s {
		t.heldBack.Store(args.LeaderCommitIndex)
		args.LeaderCommitIndex = s
	}
}

// AppendEntries implements raft.Transport.
func (t *clampTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	t.clamp(args)
	return t.NetworkTransport.AppendEntries(id, target, args, resp)
}

// AppendEntriesPipeline implements raft.Transport.
func (t *clampTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err // raft checks for ErrPipelineReplicationNotSupported
	}
	return &clampPipeline{AppendPipeline: p, t: t}, nil
}

type clampPipeline struct {
	raft.AppendPipeline
	t *clampTransport
}

// AppendEntries implements raft.AppendPipeline.
func (p *clampPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	p.t.clamp(args)
	return p.AppendPipeline.AppendEntries(args, resp)
}
