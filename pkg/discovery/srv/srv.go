// Package srv looks up DNS SRV records against one chosen DNS server (such
// as Consul's DNS interface on 127.0.0.1:8600), with the standard library's
// resolver and nothing else: /etc/resolv.conf plays no part, though
// /etc/hosts may answer the address lookups of the targets.
package srv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// ErrNotFound says the name has no SRV records, or none whose target
// resolves.
var ErrNotFound = errors.New("srv: no instances")

// Resolver asks one DNS server, over UDP and, for truncated answers, TCP.
type Resolver struct {
	server string
	res    *net.Resolver
}

// NewResolver returns a Resolver that asks server (host:port).
func NewResolver(server string) (*Resolver, error) {
	if _, _, err := net.SplitHostPort(server); err != nil {
		return nil, fmt.Errorf("srv: DNS server %q is not host:port", server)
	}
	return &Resolver{server: server, res: &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}}, nil
}

// Lookup returns host:port for every address of every target of name's
// SRV records, in the answer's order (by priority, shuffled by weight),
// without repeats. An unknown name is ErrNotFound.
func (r *Resolver) Lookup(ctx context.Context, name string) ([]string, error) {
	_, srvs, err := r.res.LookupSRV(ctx, "", "", name)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return nil, fmt.Errorf("%w: %s (asked %s)", ErrNotFound, name, r.server)
		}
		return nil, fmt.Errorf("srv: resolve %s (asked %s): %w", name, r.server, err)
	}
	var out []string
	seen := map[string]bool{}
	for _, s := range srvs {
		port := strconv.Itoa(int(s.Port))
		ips, err := r.res.LookupIPAddr(ctx, s.Target)
		if err != nil {
			return nil, fmt.Errorf("srv: resolve %s (for %s): %w", s.Target, name, err)
		}
		for _, ip := range ips {
			a := net.JoinHostPort(ip.IP.String(), port)
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s (asked %s)", ErrNotFound, name, r.server)
	}
	return out, nil
}
