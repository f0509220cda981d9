package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/loghouse/loghouse/pkg/discovery/srv"
)

// Defaults of ResolverConfig.
const (
	DefaultDNSServer = "127.0.0.1:8600"
	DefaultDomain    = "consul"
)

// ResolverConfig says where and what the Resolver looks up.
type ResolverConfig struct {
	// Server is the DNS server, host:port: Consul's DNS interface.
	// Default: DefaultDNSServer.
	Server string
	// Service is the service name. Default: DefaultServiceName.
	Service string
	// Datacenter, if set, is put in the name
	// (SERVICE.service.DATACENTER.DOMAIN). Empty: the agent's own.
	Datacenter string
	// Domain is Consul's DNS domain. Default: DefaultDomain.
	Domain string
	// LeaderTag is the tag Leader asks for. Default: DefaultLeaderTag.
	LeaderTag string
}

// Resolver finds a service's instances through Consul's DNS interface
// with SRV lookups (Consul answers only for instances whose checks are
// not critical; with Loghouse's check, the nodes that serve). It asks the
// configured server directly, with the standard library's resolver, over
// UDP and, for truncated answers, TCP; /etc/resolv.conf plays no part,
// though /etc/hosts may answer the address lookups. A Resolver is safe
// for concurrent use.
type Resolver struct {
	cfg ResolverConfig
	res *srv.Resolver
}

// NewResolver makes a Resolver.
func NewResolver(cfg ResolverConfig) (*Resolver, error) {
	if cfg.Server == "" {
		cfg.Server = DefaultDNSServer
	}
	if cfg.Service == "" {
		cfg.Service = DefaultServiceName
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	if cfg.LeaderTag == "" {
		cfg.LeaderTag = DefaultLeaderTag
	}
	if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
		return nil, fmt.Errorf("%w: DNS server %q is not host:port", ErrInvalidConfig, cfg.Server)
	}
	for _, l := range []string{cfg.Service, cfg.LeaderTag} {
		if !isDNSLabel(l) {
			return nil, fmt.Errorf("%w: %q is not a DNS label", ErrInvalidConfig, l)
		}
	}
	if cfg.Datacenter != "" && !isDNSLabel(cfg.Datacenter) || !isHostName(strings.TrimSuffix(cfg.Domain, ".")) {
		return nil, fmt.Errorf("%w: datacenter %q or domain %q is not a DNS name", ErrInvalidConfig, cfg.Datacenter, cfg.Domain)
	}
	res, err := srv.NewResolver(cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &Resolver{cfg: cfg, res: res}, nil
}

// Name is the DNS name looked up for tag ("" for every instance): e.g.
// loghouse.service.consul. and leader.loghouse.service.consul.
func (r *Resolver) Name(tag string) string {
	n := r.cfg.Service + ".service."
	if tag != "" {
		n = tag + "." + n
	}
	if r.cfg.Datacenter != "" {
		n += r.cfg.Datacenter + "."
	}
	return n + strings.TrimSuffix(r.cfg.Domain, ".") + "."
}

// Lookup returns the host:port of each instance carrying tag ("" for
// all), in the order of the SRV answer (by priority, shuffled by weight).
// ErrNoInstances says DNS knew none.
func (r *Resolver) Lookup(ctx context.Context, tag string) ([]string, error) {
	name := r.Name(tag)
	out, err := r.res.Lookup(ctx, name)
	if errors.Is(err, srv.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoInstances, name)
	}
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	return out, nil
}

// Servers returns the host:port of every instance DNS offers.
func (r *Resolver) Servers(ctx context.Context) ([]string, error) { return r.Lookup(ctx, "") }

// Leader returns the host:port of the instance carrying the leader tag.
// Right after an election DNS may offer none (ErrNoInstances) or, briefly,
// two; the first is returned.
func (r *Resolver) Leader(ctx context.Context) (string, error) {
	addrs, err := r.Lookup(ctx, r.cfg.LeaderTag)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}
