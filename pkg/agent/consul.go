package agent

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/loghouse/loghouse/pkg/discovery/consul"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// startConsul registers the node in Consul (in the background: a Consul
// that is down never stops the agent) and, with consul.join, joins the
// servers the catalog lists.
func (a *Agent) startConsul(advertiseRPC string) error {
	c := a.cfg.Consul
	var err error
	a.consul, err = consul.NewClient(consul.ClientConfig{
		Address: c.Address, Token: c.Token, TokenFile: c.TokenFile, Datacenter: c.Datacenter,
		TLS: consul.ClientTLS{
			Enabled: c.TLS.Enabled, CAFile: c.TLS.CAFile, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile,
			ServerName: c.TLS.ServerName, InsecureSkipVerify: c.TLS.InsecureSkipVerify,
		},
		Logger: a.logger.Named("consul"),
	})
	if err != nil {
		return err
	}
	host, p, err := net.SplitHostPort(advertiseRPC)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return err
	}
	// The health probe dials this node itself: its listener, with a
	// wildcard bind replaced by loopback (the advertised address may not
	// be reachable from the node behind NAT).
	probeHost, probePort, _ := net.SplitHostPort(a.ln.Addr().String())
	if ip := net.ParseIP(probeHost); ip != nil && ip.IsUnspecified() {
		probeHost = "127.0.0.1"
	}
	a.registrar, err = consul.NewRegistrar(a.consul, consul.Registration{
		ServiceName: c.ServiceName,
		NodeName:    a.cfg.NodeName,
		Address:     host,
		Port:        port,
		SerfAddr:    a.members.Addr(),
		Tags:        c.Tags,
		LeaderTag:   c.LeaderTag,
		Health: consul.GRPCHealth(net.JoinHostPort(probeHost, probePort),
			a.certs.ClientConfig(tlsutil.ServerRole), ""),
		CheckTTL:                c.CheckTTL,
		DeregisterCriticalAfter: c.DeregisterCriticalAfter,
		SyncInterval:            c.SyncInterval,
		RetryMin:                min(time.Second, a.cfg.RetryInterval),
		RetryMax:                a.cfg.RetryInterval,
		Logger:                  a.logger.Named("consul"),
	})
	if err != nil {
		return err
	}
	a.registrar.SetLeader(a.node.IsLeader())
	if c.Join {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			err := a.consul.RetryJoin(a.ctx, c.ServiceName, a.cfg.NodeName, a.members.Join,
				min(time.Second, a.cfg.RetryInterval), a.cfg.RetryInterval, a.cfg.RetryMax, a.logger.Named("consul"))
			if err != nil && !errors.Is(err, context.Canceled) {
				a.fail(err)
			}
		}()
	}
	return nil
}

// fail reports an error that should stop the agent (on Fatal).
func (a *Agent) fail(err error) {
	a.logger.Error("the agent cannot go on", "error", err)
	select {
	case a.fatal <- err:
	default: // one is enough
	}
}
