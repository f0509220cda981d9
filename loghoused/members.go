package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// roleTag is the Serf tag that names a member's role (e.g. "server").
const roleTag = "role"

// runMembers lists the gossip members a server knows, like `consul
// members`: name, gossip address, RPC address, status and role; with
// -detailed, every tag. It needs the admin permission.
func runMembers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("members", stderr)
	var cf clientFlags
	cf.register(fs)
	detailed := fs.Bool("detailed", false, "print every tag of each member")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("members takes no arguments, got %q", fs.Args())}
	}
	cl, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	cctx, cancel := cf.ctx(ctx)
	defer cancel()
	members, err := cl.Members(cctx)
	if err != nil {
		return closeClient(cl, rpcError(err))
	}
	slices.SortFunc(members, func(a, b *loghousev1.Member) int { return strings.Compare(a.Name, b.Name) })
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	header := "NODE\tGOSSIP ADDRESS\tRPC ADDRESS\tSTATUS\tROLE"
	if *detailed {
		header += "\tTAGS"
	}
	fmt.Fprintln(tw, header)
	for _, m := range members {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", m.Name, m.GossipAddr, m.RpcAddr, m.Status, m.Tags[roleTag])
		if *detailed {
			var tags []string
			for _, k := range slices.Sorted(maps.Keys(m.Tags)) {
				tags = append(tags, k+"="+m.Tags[k])
			}
			line += "\t" + strings.Join(tags, ",")
		}
		fmt.Fprintln(tw, line)
	}
	return closeClient(cl, tw.Flush())
}
