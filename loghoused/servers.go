package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
)

// runServers lists the cluster's servers.
func runServers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("servers", stderr)
	var cf clientFlags
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
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
	fmt.Fprintln(tw, "ID\tADDRESS\tLEADER\tVOTER")
	for _, s := range servers {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%v\n", s.Id, s.RpcAddr, s.IsLeader, s.Voter)
	}
	return closeClient(cl, tw.Flush())
}
