package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-sockaddr/template"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/loghouse/loghouse/pkg/commitlog"
)

// Default ports.
const (
	DefaultRPCPort  = 8400
	DefaultSerfPort = 8401
	DefaultHTTPPort = 8402
)

// Config is the agent's configuration. Load order: Default(), then each
// file in turn (later files override what they set), then command-line
// flags; Validate runs last.
type Config struct {
	// NodeName is the node's unique name in the cluster (its raft ID).
	// Default: the host name.
	NodeName string
	// DataDir holds the log and raft's state. Required outside -dev.
	DataDir string
	// BindAddr is the address the RPC port listens on. Default: 0.0.0.0.
	BindAddr string
	// AdvertiseAddr is the address other nodes and clients reach this
	// node at. Default: BindAddr, unless that is a wildcard address, in
	// which case it must be set.
	AdvertiseAddr string
	// Ports are the listening ports.
	Ports Ports
	// Bootstrap makes this node bootstrap a new cluster of itself and
	// Peers if it has no raft state; ignored once state exists.
	Bootstrap bool
	// Peers are the other servers of a statically configured cluster.
	Peers []Peer
	// BootstrapExpect makes the node bootstrap a new cluster, once, when
	// this many servers (itself included) have met through gossip and none
	// of them has raft state. Zero: off. Exclusive with Bootstrap.
	BootstrapExpect int
	// RetryJoin are gossip addresses (host or host:port, default port the
	// Serf port) to join, retried with back-off until one answers.
	RetryJoin []string
	// RetryInterval is the longest wait between join attempts; the wait
	// doubles from 1s up to it. Default: 30s.
	RetryInterval time.Duration
	// RetryMax is how many join attempts to make before the agent gives up
	// and stops. Zero: retry forever.
	RetryMax int
	// Encrypt is the gossip encryption key, base64 of 16, 24 or 32 bytes
	// (`loghoused keygen`). Empty: gossip is not encrypted.
	Encrypt string
	// LeaveOnTerminate makes a graceful stop leave the cluster (the leader
	// then removes the node from raft). Default false: a stopped server
	// stays a voter, as a restart expects.
	LeaveOnTerminate bool
	// ReconnectTimeout is how long a failed node stays a member (and a raft
	// voter) before it is reaped. Default: 72h.
	ReconnectTimeout time.Duration
	// ReconcileInterval is how often the leader compares raft's servers
	// with gossip membership even without an event. Default: 30s.
	ReconcileInterval time.Duration
	// TLS names the node's certificate files. Required outside -dev.
	TLS TLS
	// ACL names the Casbin model and policy files. Empty: the built-in
	// defaults (root may do everything, anyone else nothing).
	ACL ACL
	// Log configures logging.
	Log Log
	// EnableDebug serves Go's profiler (net/http/pprof) under /debug/pprof/
	// on the HTTP port. Off by default: profiles reveal internals and cost
	// CPU while taken.
	EnableDebug bool
	// Storage configures the commit log.
	Storage Storage
	// Raft tunes raft.
	Raft Raft
	// Limits bound requests and time.
	Limits Limits
	// Consul registers the node in Consul and, optionally, joins through
	// its catalog.
	Consul Consul
}

// Consul configures the Consul integration (pkg/discovery/consul).
type Consul struct {
	// Enabled turns it on. Default: off.
	Enabled bool
	// Address of the local Consul agent. Empty: CONSUL_HTTP_ADDR, else
	// 127.0.0.1:8500.
	Address string
	// Token and TokenFile are the ACL token (TokenFile wins). Empty:
	// CONSUL_HTTP_TOKEN / CONSUL_HTTP_TOKEN_FILE.
	Token     string
	TokenFile string
	// Datacenter for catalog queries. Empty: the agent's own.
	Datacenter string
	// ServiceName is the service (a DNS label). Default: loghouse.
	ServiceName string
	// Tags are extra service tags; LeaderTag is added on the leader only.
	Tags      []string
	LeaderTag string
	// CheckTTL is the TTL of the health check the node feeds. Default: 15s.
	CheckTTL time.Duration
	// DeregisterCriticalAfter lets Consul drop a node critical this long
	// (0: never; Consul's minimum is 1m).
	DeregisterCriticalAfter time.Duration
	// SyncInterval is how often the registration is checked and repaired.
	// Default: 30s.
	SyncInterval time.Duration
	// Join finds the other servers through the catalog (as retry_join
	// does through addresses).
	Join bool
	// TLS to the Consul agent.
	TLS ConsulTLS
}

// ConsulTLS configures HTTPS to the Consul agent.
type ConsulTLS struct {
	Enabled            bool
	CAFile             string
	CertFile           string
	KeyFile            string
	ServerName         string
	InsecureSkipVerify bool
}

// Limits bound what one request may ask for, and how long things may
// take. Default sets each to the value listed; zero means the same.
type Limits struct {
	// MaxRecordBytes bounds one record (key, value and headers). Default:
	// 1MiB, and at most max_batch_bytes.
	MaxRecordBytes int64
	// MaxRequestRecords bounds the records of one produce request.
	// Default: 10000.
	MaxRequestRecords int
	// MaxBatchBytes bounds one group-commit batch, and so one produce
	// request. Default: 1MiB, and at most half of storage.max_entry_bytes.
	MaxBatchBytes int64
	// ConsumeMaxRecords and ConsumeMaxBytes bound one consume response.
	// Defaults: 1000 and 1MiB.
	ConsumeMaxRecords int
	ConsumeMaxBytes   int64
	// ProduceStreamDepth bounds the unanswered requests of one produce
	// stream. Default: 128.
	ProduceStreamDepth int
	// ApplyTimeout bounds how long a write waits for raft to take it, and a
	// forwarded write for a leader. Default: 10s.
	ApplyTimeout time.Duration
	// HandshakeTimeout bounds the first byte and TLS handshake of every
	// connection. Default: 10s.
	HandshakeTimeout time.Duration
	// ShutdownTimeout bounds the graceful stop of client calls. Default:
	// 10s.
	ShutdownTimeout time.Duration
}

// Ports are the agent's TCP ports.
type Ports struct {
	// RPC serves gRPC and raft (one port). Default 8400.
	RPC int
	// Serf is gossip (TCP and UDP). Default 8401.
	Serf int
	// HTTP serves metrics, status and health (plain HTTP). Default 8402.
	HTTP int
}

// Peer is another server.
type Peer struct {
	// Name is its node name.
	Name string
	// Address is its RPC address, host:port.
	Address string
}

// TLS names certificate files (PEM).
type TLS struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// ACL names the authorization files.
type ACL struct {
	ModelFile  string
	PolicyFile string
}

// Log configures logging.
type Log struct {
	// Level is trace, debug, info, warn or error. Default: info.
	Level string
	// JSON makes log lines JSON objects.
	JSON bool
}

// Storage configures the commit log.
type Storage struct {
	// Sync is "always" (fsync before acknowledging) or "none".
	Sync commitlog.SyncPolicy
	// SegmentBytes rolls segments at this size. Default: 64 MiB.
	SegmentBytes int64
	// MaxEntryBytes bounds one log entry (a batch of records). Default:
	// 8 MiB.
	MaxEntryBytes int64
	// Preallocate is how far ahead of its writes the active segment's
	// store is extended with reserved, zeroed space, which makes each
	// fsync cheaper (commitlog.Options.Preallocate; with sync = "always"
	// the space is also zeroed on disk in the background, ahead of the
	// writes). Zero: never.
	// Default: 8 MiB.
	Preallocate int64
	// RetentionBytes deletes the oldest segments beyond this total. Zero:
	// no limit.
	RetentionBytes int64
	// RetentionAge deletes segments whose newest record is older. Zero: no
	// limit.
	RetentionAge time.Duration
	// RetentionCheckInterval is how often retention runs. Default: 1m.
	RetentionCheckInterval time.Duration
}

// Raft tunes raft. Zero values mean raft's own defaults, which Default
// spells out.
type Raft struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	// TrailingLogs is how many entries raft keeps behind a snapshot for
	// followers that lag a little (only retention deletes records).
	TrailingLogs uint64
	// MaxAppendEntries bounds the entries per replication message.
	MaxAppendEntries int
}

// Default returns the defaults.
func Default() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "loghouse"
	}
	return Config{
		NodeName: host,
		BindAddr: "0.0.0.0",
		Ports:    Ports{RPC: DefaultRPCPort, Serf: DefaultSerfPort, HTTP: DefaultHTTPPort},
		Log:      Log{Level: "info"},

		Raft: Raft{
			HeartbeatTimeout:   time.Second,
			ElectionTimeout:    time.Second,
			LeaderLeaseTimeout: 500 * time.Millisecond,
			CommitTimeout:      50 * time.Millisecond,
			SnapshotInterval:   30 * time.Second,
			SnapshotThreshold:  1024,
			TrailingLogs:       10240,
			MaxAppendEntries:   64,
		},
		Limits: Limits{
			MaxRecordBytes:     1 << 20,
			MaxRequestRecords:  10_000,
			MaxBatchBytes:      1 << 20,
			ConsumeMaxRecords:  1000,
			ConsumeMaxBytes:    1 << 20,
			ProduceStreamDepth: 128,
			ApplyTimeout:       10 * time.Second,
			HandshakeTimeout:   10 * time.Second,
			ShutdownTimeout:    10 * time.Second,
		},

		Consul: Consul{
			ServiceName:  "loghouse",
			LeaderTag:    "leader",
			CheckTTL:     15 * time.Second,
			SyncInterval: 30 * time.Second,
		},

		RetryInterval:     30 * time.Second,
		ReconnectTimeout:  72 * time.Hour,
		ReconcileInterval: 30 * time.Second,
		Storage: Storage{
			Sync:          commitlog.SyncAlways,
			SegmentBytes:  commitlog.DefaultMaxSegmentBytes,
			MaxEntryBytes: commitlog.DefaultMaxEntryBytes,
			Preallocate:   commitlog.DefaultPreallocate,

			RetentionCheckInterval: time.Minute,
		},
	}
}

// RPCAddr is the address to listen on.
func (c *Config) RPCAddr() string {
	return net.JoinHostPort(c.BindAddr, strconv.Itoa(c.Ports.RPC))
}

// AdvertiseRPC is the RPC address other nodes and clients use.
func (c *Config) AdvertiseRPC() string {
	host := c.AdvertiseAddr
	if host == "" {
		host = c.BindAddr
	}
	return net.JoinHostPort(host, strconv.Itoa(c.Ports.RPC))
}

// GossipAddr turns a retry_join entry (host or host:port) into host:port,
// with defaultPort when it names none.
func GossipAddr(s string, defaultPort int) (string, error) {
	if s == "" {
		return "", errors.New("an empty address")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port (or a bare IPv6 address).
		host, port = strings.Trim(s, "[]"), strconv.Itoa(defaultPort)
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return "", fmt.Errorf("%q is not host or host:port", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("%q has no valid port", s)
	}
	return net.JoinHostPort(host, port), nil
}

// ResolveAddrs evaluates go-sockaddr templates (such as
// "{{ GetPrivateIP }}") in BindAddr and AdvertiseAddr; each must yield
// exactly one IP address. Plain addresses are left as they are.
func (c *Config) ResolveAddrs() error {
	for _, f := range []struct {
		name string
		v    *string
	}{{"bind_addr", &c.BindAddr}, {"advertise_addr", &c.AdvertiseAddr}} {
		if !strings.Contains(*f.v, "{{") {
			continue
		}
		out, err := template.Parse(*f.v)
		if err != nil {
			return fmt.Errorf("%w: %s template %q: %w", ErrInvalid, f.name, *f.v, err)
		}
		ips := strings.Fields(out)
		if len(ips) != 1 || net.ParseIP(ips[0]) == nil {
			return fmt.Errorf("%w: %s template %q yields %q; it must yield exactly one IP address", ErrInvalid, f.name, *f.v, out)
		}
		*f.v = ips[0]
	}
	return nil
}

// EncryptKey decodes Encrypt: nil if it is empty.
func (c *Config) EncryptKey() ([]byte, error) {
	if c.Encrypt == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(c.Encrypt)
	if err != nil {
		return nil, fmt.Errorf("encrypt is not base64: %w", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("encrypt decodes to %d bytes; a key is 16, 24 or 32 bytes (`loghoused keygen` makes one)", len(k))
}

// batchHeadroom is what a batch leaves free of a log entry (the batch
// header takes 5 bytes; the rest is margin).
const batchHeadroom = 1 << 10

// ErrInvalid wraps every validation and parse error.
var ErrInvalid = errors.New("config: invalid")

// Validate checks the whole configuration, cross-field rules included, and
// reports every problem at once. dev relaxes the requirements that -dev
// fills in itself (data dir, TLS files).
func (c *Config) Validate(dev bool) error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.NodeName == "" {
		add("node_name must not be empty")
	}
	if !dev && c.DataDir == "" {
		add("data_dir is required")
	}
	if net.ParseIP(c.BindAddr) == nil {
		add("bind_addr %q is not an IP address", c.BindAddr)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		add("advertise_addr %q is not an IP address", c.AdvertiseAddr)
	}
	if c.AdvertiseAddr == "" {
		if ip := net.ParseIP(c.BindAddr); ip != nil && ip.IsUnspecified() {
			add("advertise_addr is required when bind_addr is %s (other nodes cannot dial a wildcard address)", c.BindAddr)
		}
	}
	ports := map[int]string{}
	for _, p := range []struct {
		name string
		v    int
	}{{"ports.rpc", c.Ports.RPC}, {"ports.serf", c.Ports.Serf}, {"ports.http", c.Ports.HTTP}} {
		if p.v < 0 || p.v > 65535 {
			add("%s %d is not a port (1-65535, or 0 for any free port)", p.name, p.v)
			continue
		}
		if p.v == 0 {
			continue
		}
		if other, dup := ports[p.v]; dup {
			add("%s and %s are both %d", other, p.name, p.v)
		}
		ports[p.v] = p.name
	}
	names := map[string]bool{c.NodeName: true}
	for _, p := range c.Peers {
		if p.Name == "" {
			add("a peer has no name")
		} else if names[p.Name] {
			add("peer %q is listed twice or is this node", p.Name)
		}
		names[p.Name] = true
		if _, _, err := net.SplitHostPort(p.Address); err != nil {
			add("peer %q address %q is not host:port", p.Name, p.Address)
		}
	}
	if len(c.Peers) > 0 && !c.Bootstrap {
		add("peers are only used to bootstrap: set bootstrap = true on the nodes that list them")
	}
	if c.BootstrapExpect < 0 {
		add("bootstrap_expect %d must not be negative", c.BootstrapExpect)
	}
	if c.BootstrapExpect > 0 && c.Bootstrap {
		add("bootstrap and bootstrap_expect exclude each other: bootstrap_expect forms the cluster through gossip, bootstrap from the peer list")
	}
	for _, j := range c.RetryJoin {
		if _, err := GossipAddr(j, c.Ports.Serf); err != nil {
			add("retry_join: %v", err)
		}
	}
	if c.RetryInterval < 100*time.Millisecond {
		add("retry_interval %s is below 100ms", c.RetryInterval)
	}
	if c.RetryMax < 0 {
		add("retry_max %d must not be negative", c.RetryMax)
	}
	if _, err := c.EncryptKey(); err != nil {
		add("%v", err)
	}
	if c.ReconnectTimeout < time.Second {
		add("reconnect_timeout %s is below 1s", c.ReconnectTimeout)
	}
	if c.ReconcileInterval < 100*time.Millisecond {
		add("reconcile_interval %s is below 100ms", c.ReconcileInterval)
	}
	if !dev {
		if c.TLS.CAFile == "" || c.TLS.CertFile == "" || c.TLS.KeyFile == "" {
			add("tls.ca_file, tls.cert_file and tls.key_file are required (mutual TLS is always on)")
		}
	}
	if (c.ACL.ModelFile == "") != (c.ACL.PolicyFile == "") && c.ACL.ModelFile != "" {
		// A model without a policy would deny everything; say so.
		add("acl.model_file is set without acl.policy_file")
	}
	switch strings.ToLower(c.Log.Level) {
	case "trace", "debug", "info", "warn", "error":
	default:
		add("log.level %q is not one of trace, debug, info, warn, error", c.Log.Level)
	}
	if c.Storage.SegmentBytes < 1<<20 {
		add("storage.segment_bytes %d is below 1MiB", c.Storage.SegmentBytes)
	}
	if c.Storage.MaxEntryBytes < 1<<10 || c.Storage.MaxEntryBytes > c.Storage.SegmentBytes {
		add("storage.max_entry_bytes %d must be between 1KiB and storage.segment_bytes (%d)", c.Storage.MaxEntryBytes, c.Storage.SegmentBytes)
	}
	if p := c.Storage.Preallocate; p != 0 && (p < 64<<10 || p > c.Storage.SegmentBytes) {
		add("storage.preallocate %d must be 0 (never) or between 64KiB and storage.segment_bytes (%d)", p, c.Storage.SegmentBytes)
	}
	if c.Storage.RetentionBytes < 0 || c.Storage.RetentionAge < 0 {
		add("storage retention must not be negative")
	}
	if c.Storage.RetentionCheckInterval < time.Second {
		add("storage.retention_check_interval %s is below 1s", c.Storage.RetentionCheckInterval)
	}
	l := c.Limits
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"limits.max_record_bytes", l.MaxRecordBytes}, {"limits.max_request_records", int64(l.MaxRequestRecords)},
		{"limits.max_batch_bytes", l.MaxBatchBytes}, {"limits.consume_max_records", int64(l.ConsumeMaxRecords)},
		{"limits.consume_max_bytes", l.ConsumeMaxBytes}, {"limits.produce_stream_depth", int64(l.ProduceStreamDepth)},
	} {
		if f.v < 0 {
			add("%s %d must not be negative", f.name, f.v)
		}
	}
	if l.MaxBatchBytes > c.Storage.MaxEntryBytes-batchHeadroom {
		add("limits.max_batch_bytes %d must be at least 1KiB below storage.max_entry_bytes (%d): a batch must fit one log entry", l.MaxBatchBytes, c.Storage.MaxEntryBytes)
	}
	if l.MaxRecordBytes > 0 && l.MaxBatchBytes > 0 && l.MaxRecordBytes > l.MaxBatchBytes {
		add("limits.max_record_bytes %d exceeds limits.max_batch_bytes %d", l.MaxRecordBytes, l.MaxBatchBytes)
	}
	if cs := c.Consul; cs.Enabled {
		if cs.CheckTTL < time.Second {
			add("consul.check_ttl %s is below 1s", cs.CheckTTL)
		}
		if cs.SyncInterval < time.Second {
			add("consul.sync_interval %s is below 1s", cs.SyncInterval)
		}
		if cs.DeregisterCriticalAfter != 0 && cs.DeregisterCriticalAfter < time.Minute {
			add("consul.deregister_critical_after %s: Consul's minimum is 1m (0 turns it off)", cs.DeregisterCriticalAfter)
		}
		if (cs.TLS.CertFile == "") != (cs.TLS.KeyFile == "") {
			add("consul.tls.cert_file and consul.tls.key_file go together")
		}
		if slices.Contains(cs.Tags, cs.LeaderTag) {
			add("consul.tags must not contain the leader tag %q", cs.LeaderTag)
		}
	}
	if c.Raft.MaxAppendEntries < 0 || c.Raft.MaxAppendEntries > 1024 {
		add("raft.max_append_entries %d must be between 1 and 1024", c.Raft.MaxAppendEntries)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// file is the HCL shape of a config file. Every field is optional; what a
// file sets overrides the configuration built so far.
type file struct {
	NodeName      *string `hcl:"node_name,optional"`
	DataDir       *string `hcl:"data_dir,optional"`
	BindAddr      *string `hcl:"bind_addr,optional"`
	AdvertiseAddr *string `hcl:"advertise_addr,optional"`
	Bootstrap     *bool   `hcl:"bootstrap,optional"`
	EnableDebug   *bool   `hcl:"enable_debug,optional"`

	BootstrapExpect   *int           `hcl:"bootstrap_expect,optional"`
	RetryJoin         *[]string      `hcl:"retry_join,optional"`
	RetryInterval     hcl.Expression `hcl:"retry_interval,optional"`
	RetryMax          *int           `hcl:"retry_max,optional"`
	Encrypt           *string        `hcl:"encrypt,optional"`
	LeaveOnTerminate  *bool          `hcl:"leave_on_terminate,optional"`
	ReconnectTimeout  hcl.Expression `hcl:"reconnect_timeout,optional"`
	ReconcileInterval hcl.Expression `hcl:"reconcile_interval,optional"`

	Ports   *filePorts   `hcl:"ports,block"`
	Peers   []filePeer   `hcl:"peer,block"`
	TLS     *fileTLS     `hcl:"tls,block"`
	ACL     *fileACL     `hcl:"acl,block"`
	Log     *fileLog     `hcl:"log,block"`
	Storage *fileStorage `hcl:"storage,block"`
	Raft    *fileRaft    `hcl:"raft,block"`
	Limits  *fileLimits  `hcl:"limits,block"`
	Consul  *fileConsul  `hcl:"consul,block"`
}

type fileConsul struct {
	Enabled                 *bool          `hcl:"enabled,optional"`
	Address                 *string        `hcl:"address,optional"`
	Token                   *string        `hcl:"token,optional"`
	TokenFile               *string        `hcl:"token_file,optional"`
	Datacenter              *string        `hcl:"datacenter,optional"`
	ServiceName             *string        `hcl:"service_name,optional"`
	Tags                    *[]string      `hcl:"tags,optional"`
	LeaderTag               *string        `hcl:"leader_tag,optional"`
	CheckTTL                hcl.Expression `hcl:"check_ttl,optional"`
	DeregisterCriticalAfter hcl.Expression `hcl:"deregister_critical_after,optional"`
	SyncInterval            hcl.Expression `hcl:"sync_interval,optional"`
	Join                    *bool          `hcl:"join,optional"`
	TLS                     *fileConsulTLS `hcl:"tls,block"`
}

type fileConsulTLS struct {
	Enabled            *bool   `hcl:"enabled,optional"`
	CAFile             *string `hcl:"ca_file,optional"`
	CertFile           *string `hcl:"cert_file,optional"`
	KeyFile            *string `hcl:"key_file,optional"`
	ServerName         *string `hcl:"server_name,optional"`
	InsecureSkipVerify *bool   `hcl:"insecure_skip_verify,optional"`
}

type fileLimits struct {
	MaxRecordBytes     hcl.Expression `hcl:"max_record_bytes,optional"`
	MaxRequestRecords  *int           `hcl:"max_request_records,optional"`
	MaxBatchBytes      hcl.Expression `hcl:"max_batch_bytes,optional"`
	ConsumeMaxRecords  *int           `hcl:"consume_max_records,optional"`
	ConsumeMaxBytes    hcl.Expression `hcl:"consume_max_bytes,optional"`
	ProduceStreamDepth *int           `hcl:"produce_stream_depth,optional"`
	ApplyTimeout       hcl.Expression `hcl:"apply_timeout,optional"`
	HandshakeTimeout   hcl.Expression `hcl:"handshake_timeout,optional"`
	ShutdownTimeout    hcl.Expression `hcl:"shutdown_timeout,optional"`
}

type filePorts struct {
	RPC  *int `hcl:"rpc,optional"`
	Serf *int `hcl:"serf,optional"`
	HTTP *int `hcl:"http,optional"`
}

type filePeer struct {
	Name    string `hcl:"name,label"`
	Address string `hcl:"address"`
}

type fileTLS struct {
	CAFile   *string `hcl:"ca_file,optional"`
	CertFile *string `hcl:"cert_file,optional"`
	KeyFile  *string `hcl:"key_file,optional"`
}

type fileACL struct {
	ModelFile  *string `hcl:"model_file,optional"`
	PolicyFile *string `hcl:"policy_file,optional"`
}

type fileLog struct {
	Level *string `hcl:"level,optional"`
	JSON  *bool   `hcl:"json,optional"`
}

type fileStorage struct {
	Sync           *string        `hcl:"sync,optional"`
	SegmentBytes   hcl.Expression `hcl:"segment_bytes,optional"`
	MaxEntryBytes  hcl.Expression `hcl:"max_entry_bytes,optional"`
	Preallocate    hcl.Expression `hcl:"preallocate,optional"`
	RetentionBytes hcl.Expression `hcl:"retention_bytes,optional"`
	RetentionAge   hcl.Expression `hcl:"retention_age,optional"`
	RetentionCheck hcl.Expression `hcl:"retention_check_interval,optional"`
}

type fileRaft struct {
	HeartbeatTimeout   hcl.Expression `hcl:"heartbeat_timeout,optional"`
	ElectionTimeout    hcl.Expression `hcl:"election_timeout,optional"`
	LeaderLeaseTimeout hcl.Expression `hcl:"leader_lease_timeout,optional"`
	CommitTimeout      hcl.Expression `hcl:"commit_timeout,optional"`
	SnapshotInterval   hcl.Expression `hcl:"snapshot_interval,optional"`
	SnapshotThreshold  *int64         `hcl:"snapshot_threshold,optional"`
	TrailingLogs       *int64         `hcl:"trailing_logs,optional"`
	MaxAppendEntries   *int           `hcl:"max_append_entries,optional"`
}

// LoadFile applies the HCL file at path on top of c. Errors carry
// file:line:column.
func (c *Config) LoadFile(path string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return c.LoadBytes(path, src)
}

// LoadBytes applies HCL source (named name in diagnostics) on top of c.
func (c *Config) LoadBytes(name string, src []byte) error {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, name)
	if diags.HasErrors() {
		return diagError(diags)
	}
	var raw file
	if diags := gohcl.DecodeBody(f.Body, nil, &raw); diags.HasErrors() {
		return diagError(diags)
	}
	var all hcl.Diagnostics
	setStr := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	setStr(&c.NodeName, raw.NodeName)
	if raw.DataDir != nil {
		c.DataDir = *raw.DataDir
		if c.DataDir != "" && !filepath.IsAbs(c.DataDir) {
			if abs, err := filepath.Abs(c.DataDir); err == nil {
				c.DataDir = abs
			}
		}
	}
	setStr(&c.BindAddr, raw.BindAddr)
	setStr(&c.AdvertiseAddr, raw.AdvertiseAddr)
	if raw.Bootstrap != nil {
		c.Bootstrap = *raw.Bootstrap
	}
	if raw.EnableDebug != nil {
		c.EnableDebug = *raw.EnableDebug
	}
	if raw.BootstrapExpect != nil {
		c.BootstrapExpect = *raw.BootstrapExpect
	}
	if raw.RetryJoin != nil {
		c.RetryJoin = *raw.RetryJoin
	}
	if raw.RetryMax != nil {
		c.RetryMax = *raw.RetryMax
	}
	setStr(&c.Encrypt, raw.Encrypt)
	if raw.LeaveOnTerminate != nil {
		c.LeaveOnTerminate = *raw.LeaveOnTerminate
	}
	all = append(all, decodeDuration(raw.RetryInterval, "retry_interval", &c.RetryInterval)...)
	all = append(all, decodeDuration(raw.ReconnectTimeout, "reconnect_timeout", &c.ReconnectTimeout)...)
	all = append(all, decodeDuration(raw.ReconcileInterval, "reconcile_interval", &c.ReconcileInterval)...)
	if p := raw.Ports; p != nil {
		for _, kv := range []struct {
			dst *int
			v   *int
		}{{&c.Ports.RPC, p.RPC}, {&c.Ports.Serf, p.Serf}, {&c.Ports.HTTP, p.HTTP}} {
			if kv.v != nil {
				*kv.dst = *kv.v
			}
		}
	}
	if len(raw.Peers) > 0 {
		c.Peers = nil
		for _, p := range raw.Peers {
			c.Peers = append(c.Peers, Peer(p))
		}
	}
	if t := raw.TLS; t != nil {
		setStr(&c.TLS.CAFile, t.CAFile)
		setStr(&c.TLS.CertFile, t.CertFile)
		setStr(&c.TLS.KeyFile, t.KeyFile)
	}
	if a := raw.ACL; a != nil {
		setStr(&c.ACL.ModelFile, a.ModelFile)
		setStr(&c.ACL.PolicyFile, a.PolicyFile)
	}
	if l := raw.Log; l != nil {
		setStr(&c.Log.Level, l.Level)
		if l.JSON != nil {
			c.Log.JSON = *l.JSON
		}
	}
	if s := raw.Storage; s != nil {
		if s.Sync != nil {
			p, err := commitlog.ParseSyncPolicy(*s.Sync)
			if err != nil {
				all = append(all, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid storage.sync",
					Detail: fmt.Sprintf("%q is not \"always\" or \"none\".", *s.Sync), Subject: attrRange(f.Body, "storage", "sync")})
			}
			c.Storage.Sync = p
		}
		all = append(all, decodeSize(s.SegmentBytes, "storage.segment_bytes", &c.Storage.SegmentBytes)...)
		all = append(all, decodeSize(s.MaxEntryBytes, "storage.max_entry_bytes", &c.Storage.MaxEntryBytes)...)
		all = append(all, decodeSize(s.Preallocate, "storage.preallocate", &c.Storage.Preallocate)...)
		all = append(all, decodeSize(s.RetentionBytes, "storage.retention_bytes", &c.Storage.RetentionBytes)...)
		all = append(all, decodeDuration(s.RetentionAge, "storage.retention_age", &c.Storage.RetentionAge)...)
		all = append(all, decodeDuration(s.RetentionCheck, "storage.retention_check_interval", &c.Storage.RetentionCheckInterval)...)
	}
	if r := raw.Raft; r != nil {
		all = append(all, decodeDuration(r.HeartbeatTimeout, "raft.heartbeat_timeout", &c.Raft.HeartbeatTimeout)...)
		all = append(all, decodeDuration(r.ElectionTimeout, "raft.election_timeout", &c.Raft.ElectionTimeout)...)
		all = append(all, decodeDuration(r.LeaderLeaseTimeout, "raft.leader_lease_timeout", &c.Raft.LeaderLeaseTimeout)...)
		all = append(all, decodeDuration(r.SnapshotInterval, "raft.snapshot_interval", &c.Raft.SnapshotInterval)...)
		all = append(all, decodeDuration(r.CommitTimeout, "raft.commit_timeout", &c.Raft.CommitTimeout)...)
		if r.TrailingLogs != nil {
			if *r.TrailingLogs < 1 {
				all = append(all, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid raft.trailing_logs",
					Detail: "It must be positive.", Subject: attrRange(f.Body, "raft", "trailing_logs")})
			} else {
				c.Raft.TrailingLogs = uint64(*r.TrailingLogs)
			}
		}
		if r.MaxAppendEntries != nil {
			c.Raft.MaxAppendEntries = *r.MaxAppendEntries
		}
		if r.SnapshotThreshold != nil {
			if *r.SnapshotThreshold < 1 {
				all = append(all, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid raft.snapshot_threshold",
					Detail: "It must be positive.", Subject: attrRange(f.Body, "raft", "snapshot_threshold")})
			} else {
				c.Raft.SnapshotThreshold = uint64(*r.SnapshotThreshold)
			}
		}
	}
	if l := raw.Limits; l != nil {
		all = append(all, decodeSize(l.MaxRecordBytes, "limits.max_record_bytes", &c.Limits.MaxRecordBytes)...)
		all = append(all, decodeSize(l.MaxBatchBytes, "limits.max_batch_bytes", &c.Limits.MaxBatchBytes)...)
		all = append(all, decodeSize(l.ConsumeMaxBytes, "limits.consume_max_bytes", &c.Limits.ConsumeMaxBytes)...)
		for _, kv := range []struct {
			dst *int
			v   *int
		}{{&c.Limits.MaxRequestRecords, l.MaxRequestRecords}, {&c.Limits.ConsumeMaxRecords, l.ConsumeMaxRecords}, {&c.Limits.ProduceStreamDepth, l.ProduceStreamDepth}} {
			if kv.v != nil {
				*kv.dst = *kv.v
			}
		}
		all = append(all, decodeDuration(l.ApplyTimeout, "limits.apply_timeout", &c.Limits.ApplyTimeout)...)
		all = append(all, decodeDuration(l.HandshakeTimeout, "limits.handshake_timeout", &c.Limits.HandshakeTimeout)...)
		all = append(all, decodeDuration(l.ShutdownTimeout, "limits.shutdown_timeout", &c.Limits.ShutdownTimeout)...)
	}
	if cs := raw.Consul; cs != nil {
		setBool := func(dst *bool, v *bool) {
			if v != nil {
				*dst = *v
			}
		}
		c2 := &c.Consul
		setBool(&c2.Enabled, cs.Enabled)
		setStr(&c2.Address, cs.Address)
		setStr(&c2.Token, cs.Token)
		setStr(&c2.TokenFile, cs.TokenFile)
		setStr(&c2.Datacenter, cs.Datacenter)
		setStr(&c2.ServiceName, cs.ServiceName)
		if cs.Tags != nil {
			c2.Tags = nil // an empty list is no tags, as in the default
			if len(*cs.Tags) > 0 {
				c2.Tags = *cs.Tags
			}
		}
		setStr(&c2.LeaderTag, cs.LeaderTag)
		setBool(&c2.Join, cs.Join)
		all = append(all, decodeDuration(cs.CheckTTL, "consul.check_ttl", &c2.CheckTTL)...)
		all = append(all, decodeDuration(cs.DeregisterCriticalAfter, "consul.deregister_critical_after", &c2.DeregisterCriticalAfter)...)
		all = append(all, decodeDuration(cs.SyncInterval, "consul.sync_interval", &c2.SyncInterval)...)
		if t := cs.TLS; t != nil {
			setBool(&c2.TLS.Enabled, t.Enabled)
			setStr(&c2.TLS.CAFile, t.CAFile)
			setStr(&c2.TLS.CertFile, t.CertFile)
			setStr(&c2.TLS.KeyFile, t.KeyFile)
			setStr(&c2.TLS.ServerName, t.ServerName)
			setBool(&c2.TLS.InsecureSkipVerify, t.InsecureSkipVerify)
		}
	}
	if all.HasErrors() {
		return diagError(all)
	}
	return nil
}

// LoadDir applies every *.hcl file in dir, in lexical order (so "10-" files
// come before "20-" ones), as -config-dir does.
func (c *Config) LoadDir(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, "*.hcl"))
	if err != nil {
		return fmt.Errorf("%w: config dir %s: %w", ErrInvalid, dir, err)
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%w: config dir: %w", ErrInvalid, err)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := c.LoadFile(n); err != nil {
			return err
		}
	}
	return nil
}

// Environment variables that override the configuration, for secrets that
// should not sit in files.
const (
	EnvEncrypt = "LOGHOUSE_ENCRYPT" // gossip key (encrypt)
)

// ApplyEnv applies the environment overrides (files first, then the
// environment, then flags).
func (c *Config) ApplyEnv() {
	if v := os.Getenv(EnvEncrypt); v != "" {
		c.Encrypt = v
	}
}

// diagError turns HCL diagnostics into one error with file:line:column.
func diagError(diags hcl.Diagnostics) error {
	var parts []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		if d.Subject != nil {
			msg = fmt.Sprintf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, msg)
		}
		parts = append(parts, msg)
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(parts, "; "))
}

// attrRange finds the range of block.attr in body for a diagnostic.
func attrRange(body hcl.Body, block, attr string) *hcl.Range {
	content, _, _ := body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: block}}})
	for _, b := range content.Blocks {
		attrs, _ := b.Body.JustAttributes()
		if a, ok := attrs[attr]; ok {
			r := a.Expr.Range()
			return &r
		}
	}
	return nil
}
