package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// runServers lists the cluster's servers.
func runServers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("servers", stderr)
	var cf clientFlags
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	conn, client, err := cf.dial()
	if err != nil {
		return err
	}
	cctx, cancel := cf.ctx(ctx)
	defer cancel()
	resp, err := client.GetServers(cctx, &loghousev1.GetServersRequest{})
	if err != nil {
		return closeConn(conn, rpcError(err))
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tLEADER\tVOTER")
	for _, s := range resp.Servers {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%v\n", s.Id, s.RpcAddr, s.IsLeader, s.Voter)
	}
	return closeConn(conn, tw.Flush())
}
