package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/loghouse/loghouse/pkg/auth"
	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/config"
	"github.com/loghouse/loghouse/pkg/discovery/consul"
	"github.com/loghouse/loghouse/pkg/membership"
	"github.com/loghouse/loghouse/pkg/replication"
	"github.com/loghouse/loghouse/pkg/sdnotify"
	"github.com/loghouse/loghouse/pkg/server"
	"github.com/loghouse/loghouse/pkg/telemetry"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// Options are what the command line adds to the configuration.
type Options struct {
	// Dev runs a single node with generated certificates: bound to
	// 127.0.0.1, bootstrapping itself, data in DataDir or a temporary
	// directory that Shutdown removes.
	Dev bool
	// Logger overrides the logger built from the configuration (tests).
	Logger hclog.Logger
	// HandshakeTimeout, if set, overrides limits.handshake_timeout.
	HandshakeTimeout time.Duration
	// ShutdownTimeout, if set, overrides limits.shutdown_timeout.
	ShutdownTimeout time.Duration
	// LocalGossip uses memberlist's local-network timings (fast failure
	// detection), for tests and single-host clusters.
	LocalGossip bool
	// Notify tells systemd how the agent is doing (STATUS=, WATCHDOG=1,
	// STOPPING=1); READY=1 and RELOADING=1 are the caller's, who knows
	// when the node serves and when it reloads. Nil: nothing is sent.
	Notify *sdnotify.Notifier
}

// Agent is a running Loghouse node.
type Agent struct {
	cfg    config.Config
	opts   Options
	logger hclog.Logger

	certs   *tlsutil.Store
	authz   *auth.Authorizer
	ln      net.Listener
	mux     *replication.Mux
	node    *replication.Node
	members *membership.Membership
	server  *server.Server
	http    *http.Server
	httpLn  net.Listener

	consul    *consul.Client // nil unless consul.enabled
	registrar *consul.Registrar
	fatal     chan error
	status    string // the last STATUS= sent; owned by clusterLoop
	grpc      *grpc.Server

	devDir     string // temporary data dir to remove, in -dev without one
	devClients tlsutil.Files

	stop chan struct{}
	// ctx ends with stop, for the loops that take a context.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
}

// New starts an agent: it binds the RPC port, starts raft over the commit
// log, and serves gRPC. If a step fails, the earlier ones are undone.
func New(cfg config.Config, opts Options) (a *Agent, err error) {
	if opts.HandshakeTimeout == 0 {
		opts.HandshakeTimeout = cmp.Or(cfg.Limits.HandshakeTimeout, 10*time.Second)
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = cmp.Or(cfg.Limits.ShutdownTimeout, 10*time.Second)
	}
	a = &Agent{cfg: cfg, opts: opts, stop: make(chan struct{}), fatal: make(chan error, 1)}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			err = errors.Join(err, a.Shutdown())
			a = nil
		}
	}()
	if opts.Dev {
		if err := a.setUpDev(); err != nil {
			return a, err
		}
	}
	if err := a.cfg.ResolveAddrs(); err != nil {
		return a, err
	}
	if err := a.cfg.Validate(opts.Dev); err != nil {
		return a, err
	}
	a.logger = opts.Logger
	if a.logger == nil {
		a.logger = hclog.New(&hclog.LoggerOptions{
			Name:       "loghoused",
			Level:      hclog.LevelFromString(a.cfg.Log.Level),
			JSONFormat: a.cfg.Log.JSON,
			Output:     os.Stderr,
		})
	}
	if a.certs == nil {
		if a.certs, err = tlsutil.NewStore(tlsutil.Files{CAFile: a.cfg.TLS.CAFile, CertFile: a.cfg.TLS.CertFile, KeyFile: a.cfg.TLS.KeyFile}); err != nil {
			return a, err
		}
	}
	if a.authz, err = auth.New(a.cfg.ACL.ModelFile, a.cfg.ACL.PolicyFile, a.logger.Named("auth")); err != nil {
		return a, err
	}
	if a.ln, err = net.Listen("tcp", a.cfg.RPCAddr()); err != nil {
		return a, fmt.Errorf("agent: listen on %s: %w", a.cfg.RPCAddr(), err)
	}
	advertise := a.cfg.AdvertiseRPC()
	if a.cfg.Ports.RPC == 0 { // an ephemeral port: advertise the one we got
		_, port, _ := net.SplitHostPort(a.ln.Addr().String())
		host, _, _ := net.SplitHostPort(advertise)
		advertise = net.JoinHostPort(host, port)
	}
	a.mux = replication.NewMux(a.ln, opts.HandshakeTimeout, a.logger.Named("mux"))

	peers := make([]replication.Peer, len(a.cfg.Peers))
	for i, p := range a.cfg.Peers {
		peers[i] = replication.Peer{ID: p.Name, Addr: p.Address}
	}
	a.node, err = replication.NewNode(replication.NodeConfig{
		ID:           a.cfg.NodeName,
		DataDir:      a.cfg.DataDir,
		Advertise:    advertise,
		RaftListener: a.mux.RaftListener(),
		TLS:          a.certs,
		Bootstrap:    a.cfg.Bootstrap,
		Peers:        peers,
		Log: commitlog.Options{
			Sync:            a.cfg.Storage.Sync,
			MaxSegmentBytes: a.cfg.Storage.SegmentBytes,
			MaxEntryBytes:   int(a.cfg.Storage.MaxEntryBytes),
			Preallocate:     preallocate(a.cfg.Storage.Preallocate),
			RetentionBytes:  a.cfg.Storage.RetentionBytes,
			RetentionAge:    a.cfg.Storage.RetentionAge,
		},
		Raft: replication.RaftTiming{
			HeartbeatTimeout:   a.cfg.Raft.HeartbeatTimeout,
			ElectionTimeout:    a.cfg.Raft.ElectionTimeout,
			LeaderLeaseTimeout: a.cfg.Raft.LeaderLeaseTimeout,
			CommitTimeout:      a.cfg.Raft.CommitTimeout,
			SnapshotInterval:   a.cfg.Raft.SnapshotInterval,
			SnapshotThreshold:  a.cfg.Raft.SnapshotThreshold,
			TrailingLogs:       a.cfg.Raft.TrailingLogs,
			MaxAppendEntries:   a.cfg.Raft.MaxAppendEntries,
		},
		HandshakeTimeout: opts.HandshakeTimeout,
		Logger:           a.logger,
	})
	if err != nil {
		return a, err
	}
	if err := a.startMembership(advertise); err != nil {
		return a, err
	}
	// A group-commit batch becomes one log entry; config.Validate keeps
	// limits.max_batch_bytes inside the log's entry limit (raft steps down
	// if the log refuses an entry).
	l := a.cfg.Limits
	if a.server, err = server.New(server.Config{
		Node:               a.node,
		Authorizer:         a.authz,
		TLS:                a.certs,
		Members:            a.members.Members,
		Logger:             a.logger.Named("server"),
		MaxRecordBytes:     int(l.MaxRecordBytes),
		MaxRequestRecords:  l.MaxRequestRecords,
		MaxBatchBytes:      int(l.MaxBatchBytes),
		ConsumeMaxRecords:  l.ConsumeMaxRecords,
		ConsumeMaxBytes:    int(l.ConsumeMaxBytes),
		ProduceStreamDepth: l.ProduceStreamDepth,
		ApplyTimeout:       l.ApplyTimeout,
	}); err != nil {
		return a, err
	}
	a.grpc = grpc.NewServer(append([]grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(a.certs.ServerConfig())),
		// First in the chains, so that refused calls are counted too.
		grpc.ChainUnaryInterceptor(telemetry.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(telemetry.StreamServerInterceptor()),
	}, a.server.GRPCServerOptions()...)...)
	a.server.Register(a.grpc)
	if err := a.startHTTP(); err != nil {
		return a, err
	}
	if a.cfg.Consul.Enabled {
		if err := a.startConsul(advertise); err != nil {
			return a, err
		}
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		select {
		case err := <-a.members.Fatal():
			a.fail(err)
		case <-a.stop:
		}
	}()
	if a.opts.Notify.WatchdogInterval() > 0 {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.opts.Notify.Watchdog(a.ctx, a.logger.Named("sdnotify"))
		}()
	}
	a.wg.Add(4)
	go func() {
		defer a.wg.Done()
		a.clusterLoop()
	}()
	go func() {
		defer a.wg.Done()
		a.gaugeLoop()
	}()
	go func() {
		defer a.wg.Done()
		if err := a.grpc.Serve(a.mux.GRPCListener()); err != nil && !errors.Is(err, replication.ErrMuxClosed) {
			a.logger.Error("gRPC server stopped", "error", err)
		}
	}()
	go func() {
		defer a.wg.Done()
		a.retentionLoop()
	}()
	a.logger.Info("agent started", "node", a.cfg.NodeName, "rpc", a.ln.Addr().String(), "advertise", advertise,
		"gossip", a.members.Addr(), "http", a.HTTPAddr(), "data_dir", a.cfg.DataDir)
	return a, nil
}

// setUpDev fills in what -dev provides: loopback address, bootstrap, data
// dir and certificates.
func (a *Agent) setUpDev() error {
	if a.cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "loghouse-dev-")
		if err != nil {
			return fmt.Errorf("agent: dev data dir: %w", err)
		}
		a.cfg.DataDir, a.devDir = dir, dir
	}
	if a.cfg.BindAddr == "0.0.0.0" {
		a.cfg.BindAddr = "127.0.0.1"
	}
	a.cfg.Bootstrap = true
	a.cfg.BootstrapExpect = 0
	if a.cfg.Ports.Serf == config.DefaultSerfPort {
		// A lone dev node gossips with nobody: any free port will do,
		// and two dev agents on one machine do not clash.
		a.cfg.Ports.Serf = 0
	}
	if a.cfg.Ports.HTTP == config.DefaultHTTPPort {
		a.cfg.Ports.HTTP = 0
	}
	tlsDir := filepath.Join(a.cfg.DataDir, "tls")
	var dev *tlsutil.DevCerts
	if _, err := os.Stat(filepath.Join(tlsDir, tlsutil.CACertFileName)); err == nil {
		// A dev data dir reused: keep its certificates.
		srvCert, srvKey, err := tlsutil.CertFileNames(tlsutil.ServerCert, a.cfg.NodeName)
		if err != nil {
			return err
		}
		cliCert, cliKey, err := tlsutil.CertFileNames(tlsutil.ClientCert, tlsutil.DevClientName)
		if err != nil {
			return err
		}
		ca := filepath.Join(tlsDir, tlsutil.CACertFileName)
		dev = &tlsutil.DevCerts{
			ServerFiles: tlsutil.Files{CAFile: ca, CertFile: filepath.Join(tlsDir, srvCert), KeyFile: filepath.Join(tlsDir, srvKey)},
			ClientFiles: tlsutil.Files{CAFile: ca, CertFile: filepath.Join(tlsDir, cliCert), KeyFile: filepath.Join(tlsDir, cliKey)},
		}
	} else {
		var gerr error
		if dev, gerr = tlsutil.GenerateDev(tlsDir, a.cfg.NodeName); gerr != nil {
			return gerr
		}
	}
	a.cfg.TLS = config.TLS{CAFile: dev.ServerFiles.CAFile, CertFile: dev.ServerFiles.CertFile, KeyFile: dev.ServerFiles.KeyFile}
	a.devClients = dev.ClientFiles
	return nil
}

// DevExports returns the shell lines that point the CLI at a -dev agent.
func (a *Agent) DevExports() string {
	var b strings.Builder
	fmt.Fprintf(&b, "export LOGHOUSE_ADDR=%s\n", a.Addr())
	fmt.Fprintf(&b, "export LOGHOUSE_CACERT=%s\n", a.devClients.CAFile)
	fmt.Fprintf(&b, "export LOGHOUSE_CLIENT_CERT=%s\n", a.devClients.CertFile)
	fmt.Fprintf(&b, "export LOGHOUSE_CLIENT_KEY=%s\n", a.devClients.KeyFile)
	return b.String()
}

// Addr is the RPC address the agent listens on.
func (a *Agent) Addr() string { return a.ln.Addr().String() }

// GossipAddr is the gossip address the agent advertises.
func (a *Agent) GossipAddr() string { return a.members.Addr() }

// Members is the agent's gossip layer.
func (a *Agent) Members() *membership.Membership { return a.members }

// Fatal yields an error when the agent cannot go on and should be shut
// down (retry_join, or the Consul catalog join, gave up).
func (a *Agent) Fatal() <-chan error { return a.fatal }

// Node is the replicated node (for tests and status).
func (a *Agent) Node() *replication.Node { return a.node }

// Config is the configuration in force (after -dev filled it in).
func (a *Agent) Config() config.Config { return a.cfg }

// WaitReady blocks until the node knows a leader (for a lone bootstrapping
// node, itself) or ctx ends.
func (a *Agent) WaitReady(ctx context.Context) error {
	obs := make(chan raft.Observation, 8)
	o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	a.node.Raft.RegisterObserver(o)
	defer a.node.Raft.DeregisterObserver(o)
	for {
		if addr, _ := a.node.Leader(); addr != "" {
			return nil
		}
		select {
		case <-obs:
		case <-ctx.Done():
			return fmt.Errorf("agent: no leader yet: %w", ctx.Err())
		}
	}
}

// Reload applies what can change while the agent runs (call it from the
// goroutine that will call Shutdown, never at the same time), from a freshly
// loaded configuration: the log level, the TLS files (re-read from the
// same paths), the ACL model and policy, and new retry_join addresses
// (joined once). Settings that need a restart
// are named in a warning and otherwise ignored. A failure keeps the
// running state of that part; every failure is logged and returned.
func (a *Agent) Reload(next config.Config) error {
	var errs []error
	if lvl := hclog.LevelFromString(next.Log.Level); lvl == hclog.NoLevel {
		errs = append(errs, fmt.Errorf("agent: reload: log.level %q is not a level", next.Log.Level))
	} else if next.Log.Level != a.cfg.Log.Level {
		a.logger.SetLevel(lvl)
		a.logger.Info("log level changed", "level", next.Log.Level)
		a.cfg.Log.Level = next.Log.Level
	}
	if !a.opts.Dev {
		if next.TLS != a.cfg.TLS {
			a.logger.Warn("the TLS file paths changed; they take effect on restart (the files at the old paths are reloaded)")
		}
		if err := a.certs.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("agent: reload TLS: %w", err))
		}
	}
	if !slices.Equal(next.RetryJoin, a.cfg.RetryJoin) && len(next.RetryJoin) > 0 {
		// New addresses to join (a template re-rendered, say): try them
		// once, in the background; gossip spreads the rest.
		var addrs []string
		for _, j := range next.RetryJoin {
			if addr, err := config.GossipAddr(j, a.cfg.Ports.Serf); err == nil {
				addrs = append(addrs, addr)
			}
		}
		a.cfg.RetryJoin = next.RetryJoin
		if a.ctx.Err() != nil {
			return errors.New("agent: reload: the agent is shutting down")
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if n, err := a.members.Join(addrs...); err != nil {
				a.logger.Warn("joining the reloaded retry_join addresses failed", "error", err)
			} else {
				a.logger.Info("joined through the reloaded retry_join addresses", "answered", n)
			}
		}()
	}
	if next.ACL != a.cfg.ACL {
		a.logger.Warn("the ACL file paths changed; they take effect on restart (the files at the old paths are reloaded)")
	}
	if err := a.authz.Reload(); err != nil {
		errs = append(errs, fmt.Errorf("agent: reload ACL policy: %w", err))
	}
	err := errors.Join(errs...)
	if err != nil {
		a.logger.Error("reload failed in part; the running settings stay", "error", err)
	} else {
		a.logger.Info("reloaded")
	}
	return err
}

// ReloadFailed logs a reload whose configuration could not be loaded.
func (a *Agent) ReloadFailed(err error) {
	a.logger.Error("reload failed: the configuration does not load; the running settings stay", "error", err)
}

// retentionLoop applies retention on the configured interval until stop.
func (a *Agent) retentionLoop() {
	t := time.NewTicker(a.cfg.Storage.RetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			res, err := a.node.Log.ApplyRetention()
			if err != nil {
				a.logger.Error("retention failed", "error", err)
			} else if res.Segments > 0 {
				a.logger.Info("retention deleted segments", "segments", res.Segments, "bytes", res.Bytes)
			}
		}
	}
}

// Shutdown stops the agent in the order the package doc gives: out of
// Consul, end the service's waiting streams and queued writes, stop HTTP
// and client calls (letting running ones finish within ShutdownTimeout),
// hand leadership off, leave gossip if configured, close the shared port,
// shut raft down and close the log. It is idempotent and returns every
// error joined.
func (a *Agent) Shutdown() error {
	a.shutdownOnce.Do(func() {
		var errs []error
		if err := a.opts.Notify.Stopping(); err != nil && a.logger != nil {
			a.logger.Warn("cannot tell systemd the agent is stopping", "error", err)
		}
		close(a.stop)
		a.cancel()
		// Out of Consul first, so DNS stops offering the node while it
		// drains. Consul being unreachable does not fail the shutdown.
		if a.registrar != nil {
			if err := a.registrar.Close(); err != nil {
				a.logger.Warn("could not deregister from Consul", "error", err)
			}
		}
		// The server first: it ends waiting consumer streams and queued
		// writes, which would otherwise hold GracefulStop to its timeout.
		if a.server != nil {
			errs = append(errs, a.server.Close())
		}
		if a.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), a.opts.ShutdownTimeout)
			errs = append(errs, a.stopHTTP(ctx))
			cancel()
		} else if a.httpLn != nil {
			errs = append(errs, ignoreClosed(a.httpLn.Close()))
		}
		if a.grpc != nil {
			done := make(chan struct{})
			go func() {
				a.grpc.GracefulStop()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(a.opts.ShutdownTimeout):
				a.grpc.Stop()
				<-done
			}
		}
		if a.node != nil && a.node.IsLeader() {
			if err := a.node.Raft.LeadershipTransfer().Error(); err != nil && !errors.Is(err, raft.ErrNotLeader) {
				a.logger.Info("no leadership hand-off", "reason", err)
			}
		}
		if a.members != nil {
			if a.cfg.LeaveOnTerminate {
				// The leader removes a server that left from raft.
				if err := a.members.Leave(); err != nil {
					errs = append(errs, err)
				}
			}
			errs = append(errs, a.members.Shutdown())
		}
		if a.mux != nil {
			errs = append(errs, ignoreClosed(a.mux.Close()))
		} else if a.ln != nil {
			errs = append(errs, ignoreClosed(a.ln.Close()))
		}
		if a.node != nil {
			errs = append(errs, a.node.Close())
			a.node.WaitStreams()
		}
		a.wg.Wait()
		if a.consul != nil {
			a.consul.Close()
		}
		if a.devDir != "" {
			errs = append(errs, os.RemoveAll(a.devDir))
		}
		a.shutdownErr = errors.Join(errs...)
		if a.logger != nil {
			a.logger.Info("agent stopped", "error", a.shutdownErr)
		}
	})
	return a.shutdownErr
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// preallocate maps storage.preallocate (0: never) to the commit log's
// option (0 there is its default, negative never).
func preallocate(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}
