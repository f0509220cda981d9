// Command loghoused is the Loghouse daemon and its command-line client.
//
// Run "loghoused help" for the commands: the agent (the daemon), the client
// commands (produce, consume, servers, members, operator), a load
// generator (bench), configuration, certificate and key tools (validate,
// tls, keygen), and storage tools (demo, log dump).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loghoused:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a mistake in the command line; it exits with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `Usage: loghoused <command> [flags]

Commands:
  agent       run the daemon: -config FILE and -config-dir DIR
              (repeatable), or -dev for a single-node development server
              with generated certificates; SIGHUP reloads TLS files, ACL
              policy and log level
  produce     append records (arguments, or one per line of stdin); prints
              their offsets
  consume     print committed records (-offset, -from-time, -n, -f, -json;
              -stale reads from followers)
  servers     list the cluster's servers and its leader
  members     list the gossip members: name, addresses, status, role
              (-detailed: every tag)
  operator    "operator raft list-peers" (the raft servers and their
              state), "operator raft remove-peer -id NODE"
  keygen      print a new gossip encryption key (32 random bytes, base64)
  validate    check config files (and the TLS and ACL files they name)
              without starting: loghoused validate FILE...
  tls         make certificates: "tls ca create", "tls cert create
              -server|-client -name NAME"
  bench       load generator: "bench produce", "bench consume" print
              throughput and latency percentiles (-json for machines)
  demo        exercise the storage engine alone in a temporary directory
  log dump    print the segments and entries of a log directory
  help        show this text

Client commands read LOGHOUSE_ADDR (any servers of the cluster,
comma-separated; requests go to the leader),
LOGHOUSE_CACERT, LOGHOUSE_CLIENT_CERT and LOGHOUSE_CLIENT_KEY (or the
matching flags). Exit status: 0 success, 1 failure (the message names the
gRPC code), 2 usage error.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if err := dispatch(ctx, args, stdout, stderr); !errors.Is(err, errHelpShown) {
		return err
	}
	return nil
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "agent":
		return runAgent(ctx, args[1:], stdout, stderr)
	case "produce":
		return runProduce(ctx, args[1:], nil, stdout, stderr)
	case "consume":
		return runConsume(ctx, args[1:], stdout, stderr)
	case "servers":
		return runServers(ctx, args[1:], stdout, stderr)
	case "members":
		return runMembers(ctx, args[1:], stdout, stderr)
	case "operator":
		return runOperator(ctx, args[1:], stdout, stderr)
	case "keygen":
		return runKeygen(ctx, args[1:], stdout, stderr)
	case "validate":
		return runValidate(ctx, args[1:], stdout, stderr)
	case "tls":
		return runTLS(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "log":
		if len(args) < 2 || args[1] != "dump" {
			return usageError{"usage: loghoused log dump [-data] DIR"}
		}
		return runDump(ctx, args[2:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// errHelpShown ends a command whose -h printed its help: run returns nil
// for it, so the command does nothing else and exits 0.
var errHelpShown = errors.New("help shown")

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelpShown
		}
		return usageError{err.Error()}
	}
	return nil
}
