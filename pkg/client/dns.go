package client

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/loghouse/loghouse/pkg/discovery/srv"
)

// DefaultConsulDNS is where a consul:// seed is looked up: the local
// Consul agent's DNS interface.
const DefaultConsulDNS = "127.0.0.1:8600"

// dnsSeed is a seed found through DNS SRV records.
type dnsSeed struct {
	name string // the SRV name
	res  *srv.Resolver
}

// parseDNSSeed parses the DNS seed forms, saying ok = false for any other
// seed:
//
//	srv://DNS-HOST:PORT/NAME   the SRV records of NAME, asked of that server
//	consul://SERVICE           SERVICE.service.consul at 127.0.0.1:8600
//	consul://NAME              NAME (containing a dot) at 127.0.0.1:8600
//	consul://NAME?dns=HOST:PORT  the same, asked of another server
//
// Consul answers SRV with the instances whose checks pass, so a client
// seeded with consul://loghouse finds the nodes that serve.
func parseDNSSeed(s string) (d dnsSeed, ok bool, err error) {
	s = strings.TrimSpace(s)
	var server, name string
	switch {
	case strings.HasPrefix(s, "srv://"):
		server, name, ok = strings.Cut(strings.TrimPrefix(s, "srv://"), "/")
		if !ok || name == "" {
			return d, true, fmt.Errorf("%w: seed %q: want srv://DNS-HOST:PORT/NAME", ErrInvalidConfig, s)
		}
	case strings.HasPrefix(s, "consul://"):
		rest := strings.TrimPrefix(s, "consul://")
		name, server = rest, DefaultConsulDNS
		if n, q, found := strings.Cut(rest, "?"); found {
			dns, ok := strings.CutPrefix(q, "dns=")
			if !ok || dns == "" {
				return d, true, fmt.Errorf("%w: seed %q: the only option is ?dns=HOST:PORT", ErrInvalidConfig, s)
			}
			name, server = n, dns
		}
		if name == "" {
			return d, true, fmt.Errorf("%w: seed %q names no service", ErrInvalidConfig, s)
		}
		if !strings.Contains(name, ".") {
			name += ".service.consul"
		}
	default:
		return d, false, nil
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		return d, true, fmt.Errorf("%w: seed %q: DNS server %q is not host:port", ErrInvalidConfig, s, server)
	}
	res, err := srv.NewResolver(server)
	if err != nil {
		return d, true, fmt.Errorf("%w: seed %q: %w", ErrInvalidConfig, s, err)
	}
	return dnsSeed{name: name, res: res}, true, nil
}

// lookupDNSSeeds returns the addresses the DNS seeds name now; a failed
// lookup is logged and skipped.
func (c *Client) lookupDNSSeeds(ctx context.Context) []string {
	var out []string
	for _, d := range c.cfg.dnsSeeds {
		ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
		addrs, err := d.res.Lookup(ctx, d.name)
		cancel()
		if err != nil {
			c.logger.Warn("DNS seed lookup failed", "name", d.name, "error", err)
			continue
		}
		out = append(out, addrs...)
	}
	return out
}
