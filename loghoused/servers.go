package main

import (
	"context"
	"io"
)

// runServers lists the cluster's servers: the same as
// `operator raft list-peers`, under the shorter name.
func runServers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return listPeers(ctx, "servers", args, stdout, stderr)
}
