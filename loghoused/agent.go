package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/loghouse/loghouse/pkg/agent"
	"github.com/loghouse/loghouse/pkg/config"
	"github.com/loghouse/loghouse/pkg/sdnotify"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// runAgent runs the daemon until ctx ends (SIGINT/SIGTERM), then shuts it
// down in order. SIGHUP reloads what can change while it runs (TLS files,
// ACL policy, log level).
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("agent", stderr)
	var files stringList
	fs.Var(&files, "config", "HCL config file (repeatable; later files override earlier ones)")
	var dirs stringList
	fs.Var(&dirs, "config-dir", "directory whose *.hcl files are loaded in lexical order, after the -config files (repeatable)")
	dev := fs.Bool("dev", false, "run a single-node development server with generated certificates on 127.0.0.1")
	dataDir := fs.String("data-dir", "", "data directory (overrides the config; with -dev: keep data here instead of a temporary directory)")
	node := fs.String("node", "", "node name (overrides the config)")
	bind := fs.String("bind", "", "bind address (overrides the config)")
	advertise := fs.String("advertise", "", "advertise address (overrides the config)")
	rpcPort := fs.Int("rpc-port", -1, "RPC port, gRPC and raft (overrides the config; 0 picks a free port)")
	bootstrap := fs.Bool("bootstrap", false, "bootstrap a new cluster if there is no raft state (overrides the config when set)")
	var join stringList
	fs.Var(&join, "retry-join", "gossip address host[:port] to join, retried until it answers (repeatable; replaces the config's retry_join)")
	expect := fs.Int("bootstrap-expect", -1, "bootstrap once this many servers have met (overrides the config)")
	serfPort := fs.Int("serf-port", -1, "gossip port (overrides the config; 0 picks a free port)")
	logLevel := fs.String("log-level", "", "trace, debug, info, warn or error (overrides the config)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("agent takes no arguments, got %q", fs.Args())}
	}
	if len(files) == 0 && len(dirs) == 0 && !*dev {
		return usageError{"agent needs -config FILE or -config-dir DIR (or -dev)"}
	}
	// load builds the configuration: defaults, then files, then the
	// environment, then flags. SIGHUP runs it again.
	load := func() (config.Config, error) {
		cfg := config.Default()
		for _, f := range files {
			if err := cfg.LoadFile(f); err != nil {
				return cfg, err
			}
		}
		for _, d := range dirs {
			if err := cfg.LoadDir(d); err != nil {
				return cfg, err
			}
		}
		cfg.ApplyEnv()
		set := func(dst *string, v string) {
			if v != "" {
				*dst = v
			}
		}
		set(&cfg.DataDir, *dataDir)
		set(&cfg.NodeName, *node)
		set(&cfg.BindAddr, *bind)
		set(&cfg.AdvertiseAddr, *advertise)
		set(&cfg.Log.Level, *logLevel)
		if *rpcPort >= 0 {
			cfg.Ports.RPC = *rpcPort
		}
		if *bootstrap {
			cfg.Bootstrap = true
		}
		if len(join) > 0 {
			cfg.RetryJoin = join
		}
		if *expect >= 0 {
			cfg.BootstrapExpect = *expect
		}
		if *serfPort >= 0 {
			cfg.Ports.Serf = *serfPort
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	notify, err := sdnotify.New()
	if err != nil {
		return err
	}
	// SIGHUP is caught from here on: during start-up too, where its
	// default action would kill the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	a, err := agent.New(cfg, agent.Options{Dev: *dev, Notify: notify})
	if err != nil {
		return err
	}
	if err := a.WaitReady(ctx); err != nil {
		return closeAgent(a, err)
	}
	// READY=1 only now: systemctl start returns once the node serves
	// (a lone bootstrapping node too, once it has elected itself).
	if err := notify.Ready(); err != nil {
		fmt.Fprintln(stderr, "loghoused: cannot tell systemd the agent is ready:", err)
	}
	if *dev {
		fmt.Fprintf(stdout, "Loghouse dev agent ready on %s. Point the CLI at it with:\n\n%s\n", a.Addr(), a.DevExports())
	} else {
		fmt.Fprintf(stdout, "Loghouse agent %s ready on %s\n", cfg.NodeName, a.Addr())
	}
	for {
		select {
		case <-ctx.Done():
			return a.Shutdown()
		case err := <-a.Fatal():
			return closeAgent(a, err)
		case <-hup:
			// A bad file keeps the running configuration; the agent
			// logs what failed either way. systemd hears READY=1 after
			// every reload, failed or not, or it would wait forever.
			if err := notify.Reloading(); err != nil {
				fmt.Fprintln(stderr, "loghoused:", err)
			}
			if next, err := load(); err != nil {
				a.ReloadFailed(err)
			} else {
				_ = a.Reload(next)
			}
			if err := notify.Ready(); err != nil {
				fmt.Fprintln(stderr, "loghoused:", err)
			}
		}
	}
}

func closeAgent(a *agent.Agent, err error) error {
	if serr := a.Shutdown(); serr != nil {
		return fmt.Errorf("%w (and shutting down: %w)", err, serr)
	}
	return err
}
