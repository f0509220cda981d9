package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
)

const operatorUsage = "usage: loghoused operator raft list-peers [flags] | loghoused operator raft remove-peer -id NODE [flags]"

// runOperator runs the cluster operations, like `consul operator`:
//
//	loghoused operator raft list-peers
//	loghoused operator raft remove-peer -id NODE
func runOperator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "raft" {
		return usageError{operatorUsage}
	}
	switch args[1] {
	case "list-peers":
		return listPeers(ctx, "operator raft list-peers", args[2:], stdout, stderr)
	case "remove-peer":
		return raftRemovePeer(ctx, args[2:], stdout, stderr)
	}
	return usageError{operatorUsage}
}

// listPeers prints the raft configuration: each server's ID, address,
// state (leader or follower) and whether it votes.
func listPeers(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(name, stderr)
	var cf clientFlags
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s takes no arguments, got %q", name, fs.Args())}
	}
	cl, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	cctx, cancel := cf.ctx(ctx)
	defer cancel()
	servers, err := cl.Servers(cctx)
	if err != nil {
		return closeClient(cl, rpcError(err))
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSTATE\tVOTER")
	for _, s := range servers {
		state := "follower"
		if s.IsLeader {
			state = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", s.Id, s.RpcAddr, state, s.Voter)
	}
	return closeClient(cl, tw.Flush())
}

// raftRemovePeer removes a server that failed for good from the raft
// configuration. It needs the admin permission.
func raftRemovePeer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("operator raft remove-peer", stderr)
	var cf clientFlags
	cf.register(fs)
	id := fs.String("id", "", "raft ID (node name) of the server to remove")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("remove-peer takes no arguments, got %q (use -id NODE)", fs.Args())}
	}
	if *id == "" {
		return usageError{"remove-peer needs -id NODE"}
	}
	cl, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	cctx, cancel := cf.ctx(ctx)
	defer cancel()
	if err := cl.RemovePeer(cctx, *id); err != nil {
		return closeClient(cl, rpcError(err))
	}
	fmt.Fprintf(stdout, "Removed peer with id %q\n", *id)
	return closeClient(cl, nil)
}
