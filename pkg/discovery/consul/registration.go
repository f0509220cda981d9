package consul

import (
	"fmt"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults of Registration.
const (
	DefaultServiceName    = "loghouse"
	DefaultLeaderTag      = "leader"
	DefaultCheckTTL       = 15 * time.Second
	DefaultSyncInterval   = 30 * time.Second
	DefaultRetryMin       = time.Second
	DefaultRetryMax       = 30 * time.Second
	DefaultRequestTimeout = 5 * time.Second
)

// Service meta keys a node registers.
const (
	MetaNodeName = "node_name" // the node's name (raft server ID)
	MetaVersion  = "version"   // the binary's version
	MetaRaftRole = "raft_role" // RoleLeader or RoleFollower
	MetaSerfAddr = "serf_addr" // gossip host:port, for joiners
)

// Values of MetaRaftRole. A node that does not lead (a follower, a
// candidate, a node without a cluster yet) is a "follower" here; health
// says whether it can serve.
const (
	RoleLeader   = "leader"
	RoleFollower = "follower"
)

// Registration describes this node's instance of the service and how the
// Registrar keeps it in Consul.
type Registration struct {
	// ServiceName is the Consul service name (a DNS label). Default:
	// DefaultServiceName.
	ServiceName string
	// ServiceID is the instance's ID, unique among the local Consul
	// agent's services. Default: ServiceName + "-" + NodeName.
	ServiceID string
	// NodeName is the node's name (its raft ID). Required.
	NodeName string
	// Address is the host (normally the IP) clients reach the RPC port at:
	// the advertise address. Required.
	Address string
	// Port is the RPC port (gRPC and raft). Required.
	Port int
	// SerfAddr is the advertised gossip address, host:port, put in
	// MetaSerfAddr so that joiners find it in the catalog. Empty: this
	// node is not offered to joiners.
	SerfAddr string
	// Version is the binary's version. Default: the main module's version
	// from the build information.
	Version string
	// Tags are extra tags on every registration.
	Tags []string
	// LeaderTag is the tag the instance carries while its node leads
	// (LeaderTag.ServiceName.service.consul then resolves the leader).
	// Default: DefaultLeaderTag.
	LeaderTag string
	// Health reports the node's health; the Registrar passes it on to
	// Consul's TTL check every CheckTTL/3. Required (GRPCHealth).
	Health HealthFunc
	// CheckTTL is the TTL of the check: Consul marks the instance critical
	// if the node does not report within it (the node is hung or gone).
	// Default: DefaultCheckTTL.
	CheckTTL time.Duration
	// DeregisterCriticalAfter makes Consul remove the instance once its
	// check has been critical this long (Consul's minimum is 1m). Zero:
	// never; a crashed node's instance stays, critical, until the node
	// comes back or an operator removes it.
	DeregisterCriticalAfter time.Duration
	// SyncInterval is how often the Registrar checks that the local Consul
	// agent still has the instance as registered, and registers it again
	// if not (Consul restarted without its state, or someone removed or
	// changed it). Default: DefaultSyncInterval.
	SyncInterval time.Duration
	// RetryMin and RetryMax bound the back-off between failed
	// registrations: the wait doubles from RetryMin to RetryMax, with
	// jitter, and attempts go on until Close. Defaults: DefaultRetryMin,
	// DefaultRetryMax.
	RetryMin time.Duration
	RetryMax time.Duration
	// RequestTimeout bounds each request to Consul and each health probe.
	// At most CheckTTL/3, so that a report is never late. Default:
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Logger is the registrar's logger. Default: discard.
	Logger hclog.Logger
}

// CheckID is the ID of the instance's TTL check.
func (r *Registration) CheckID() string { return "service:" + r.ServiceID }

// withDefaults fills in the defaults.
func (r Registration) withDefaults() Registration {
	if r.ServiceName == "" {
		r.ServiceName = DefaultServiceName
	}
	if r.ServiceID == "" && r.NodeName != "" {
		r.ServiceID = r.ServiceName + "-" + r.NodeName
	}
	if r.Version == "" {
		r.Version = buildVersion()
	}
	if r.LeaderTag == "" {
		r.LeaderTag = DefaultLeaderTag
	}
	if r.CheckTTL == 0 {
		r.CheckTTL = DefaultCheckTTL
	}
	if r.SyncInterval == 0 {
		r.SyncInterval = DefaultSyncInterval
	}
	if r.RetryMin == 0 {
		r.RetryMin = DefaultRetryMin
	}
	if r.RetryMax == 0 {
		r.RetryMax = max(DefaultRetryMax, r.RetryMin)
	}
	if r.RequestTimeout == 0 {
		r.RequestTimeout = min(DefaultRequestTimeout, r.CheckTTL/3)
	}
	if r.Logger == nil {
		r.Logger = hclog.NewNullLogger()
	}
	return r
}

// validate checks a Registration with its defaults filled in, and reports
// every problem at once.
func (r *Registration) validate() error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if !isDNSLabel(r.ServiceName) {
		add("service name %q is not a DNS label (letters, digits and inner '-')", r.ServiceName)
	}
	if r.NodeName == "" {
		add("node name is required")
	}
	if net.ParseIP(r.Address) == nil && !isHostName(r.Address) {
		add("address %q is not an IP address or host name (the port goes in Port)", r.Address)
	}
	if r.Port < 1 || r.Port > 65535 {
		add("port %d is not 1-65535", r.Port)
	}
	if r.SerfAddr != "" {
		if _, _, err := net.SplitHostPort(r.SerfAddr); err != nil {
			add("serf address %q is not host:port", r.SerfAddr)
		}
	}
	if !isDNSLabel(r.LeaderTag) {
		add("leader tag %q is not a DNS label", r.LeaderTag)
	}
	for _, t := range r.Tags {
		if t == "" || t == r.LeaderTag {
			add("tag %q is empty or the leader tag", t)
		}
	}
	if r.Health == nil {
		add("a health function is required")
	}
	if r.CheckTTL < 0 || r.SyncInterval <= 0 || r.RetryMin <= 0 || r.RetryMax < r.RetryMin || r.RequestTimeout <= 0 || r.DeregisterCriticalAfter < 0 {
		add("durations must be positive, and the retry maximum at least its minimum")
	}
	if r.RequestTimeout > r.CheckTTL/3 {
		add("request timeout %s is above a third of the check TTL %s: a slow report would let the check expire", r.RequestTimeout, r.CheckTTL)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(errs, "; "))
	}
	return nil
}

// tags are the tags of a registration, leader or not.
func (r *Registration) tags(leader bool) []string {
	t := slices.Clone(r.Tags)
	if leader {
		t = append(t, r.LeaderTag)
	}
	return t
}

// meta is the service meta of a registration, leader or not.
func (r *Registration) meta(leader bool) map[string]string {
	role := RoleFollower
	if leader {
		role = RoleLeader
	}
	m := map[string]string{MetaNodeName: r.NodeName, MetaVersion: r.Version, MetaRaftRole: role}
	if r.SerfAddr != "" {
		m[MetaSerfAddr] = r.SerfAddr
	}
	return m
}

// isDNSLabel reports whether s is a DNS label: 1-63 letters, digits and
// inner '-'.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isHostName reports whether s is a DNS host name: dot-separated labels.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

// buildVersion is the main module's version from the build information.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}
