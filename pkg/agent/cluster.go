package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/config"
	"github.com/loghouse/loghouse/pkg/membership"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// startMembership starts gossip on the Serf port, advertising the RPC
// address.
func (a *Agent) startMembership(advertiseRPC string) error {
	key, err := a.cfg.EncryptKey()
	if err != nil {
		return err
	}
	var join []string
	for _, j := range a.cfg.RetryJoin {
		addr, err := config.GossipAddr(j, a.cfg.Ports.Serf)
		if err != nil {
			return fmt.Errorf("agent: retry_join: %w", err)
		}
		join = append(join, addr)
	}
	host, _, _ := net.SplitHostPort(advertiseRPC)
	a.members, err = membership.New(membership.Config{
		NodeName:         a.cfg.NodeName,
		BindAddr:         a.cfg.BindAddr,
		BindPort:         a.cfg.Ports.Serf,
		AdvertiseAddr:    host,
		RPCAddr:          advertiseRPC,
		BootstrapExpect:  a.cfg.BootstrapExpect,
		EncryptKey:       key,
		DataDir:          a.cfg.DataDir,
		RetryJoin:        join,
		RetryInterval:    a.cfg.RetryInterval,
		RetryMax:         a.cfg.RetryMax,
		ReconnectTimeout: a.cfg.ReconnectTimeout,
		Local:            a.opts.LocalGossip,
		Logger:           a.logger.Named("membership"),
	})
	return err
}

// clusterLoop bootstraps the cluster when bootstrap_expect servers have
// met, and, while this node leads, reconciles raft's servers with gossip
// on every membership change, on every leadership gain and every
// ReconcileInterval.
func (a *Agent) clusterLoop() {
	leaderCh := make(chan raft.Observation, 1)
	obs := raft.NewObserver(leaderCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	a.node.Raft.RegisterObserver(obs)
	defer a.node.Raft.DeregisterObserver(obs)
	tick := time.NewTicker(a.cfg.ReconcileInterval)
	defer tick.Stop()
	// Bootstrap checks run more often than reconciliation until they are
	// done, so a cluster forms soon after its servers meet.
	boot := time.NewTicker(time.Second)
	defer boot.Stop()
	bootstrapped := a.cfg.BootstrapExpect == 0
	for {
		if !bootstrapped {
			done, err := a.tryBootstrap()
			if err != nil {
				a.logger.Warn("not bootstrapping yet", "reason", err)
			}
			bootstrapped = done
		}
		if a.registrar != nil {
			a.registrar.SetLeader(a.node.IsLeader()) // a no-op unless it changed
		}
		a.setStatus()
		if a.node.IsLeader() {
			if err := a.reconcile(); err != nil {
				a.logger.Warn("reconciling raft with gossip failed; retrying on the next pass", "error", err)
			}
		}
		select {
		case <-a.stop:
			return
		case <-a.members.Changed():
		case <-leaderCh:
		case <-tick.C:
		case <-boot.C:
			if bootstrapped {
				boot.Stop()
			}
		}
	}
}

// setStatus tells systemd (STATUS=) what the node is doing, when that
// changed.
func (a *Agent) setStatus() {
	var st string
	addr, id := a.node.Leader()
	switch {
	case a.node.IsLeader():
		st = "leader"
	case addr != "":
		st = fmt.Sprintf("follower of %s (%s)", id, addr)
	case !a.hasRaftState() && a.cfg.BootstrapExpect > 0:
		n := 0
		for _, m := range a.members.Members() {
			if m.IsServer() && m.Status == membership.StatusAlive {
				n++
			}
		}
		st = fmt.Sprintf("waiting for %d servers to bootstrap (%d met)", a.cfg.BootstrapExpect, n)
	case !a.hasRaftState():
		st = "joining"
	default:
		st = "electing a leader"
	}
	if st == a.status {
		return
	}
	a.status = st
	if err := a.opts.Notify.Status(st); err != nil {
		a.logger.Warn("cannot send systemd a status", "error", err)
	}
}

// hasRaftState reports whether this node has ever been part of a cluster.
func (a *Agent) hasRaftState() bool {
	r := a.node.Raft
	return r.LastIndex() > 0 || r.CurrentTerm() > 0
}

// tryBootstrap bootstraps raft with the bootstrap_expect servers once they
// have met and none of them has raft state. It returns true when nothing
// is left to do: bootstrapped, or state found (here or on a peer).
func (a *Agent) tryBootstrap() (bool, error) {
	if a.hasRaftState() {
		return true, nil
	}
	servers, ok, err := membership.BootstrapServers(a.members.Members(), a.cfg.BootstrapExpect)
	if err != nil || !ok {
		return false, err
	}
	self := false
	for _, s := range servers {
		if s.ID == a.cfg.NodeName {
			self = true
			continue
		}
		has, err := a.peerHasState(s.Addr)
		if err != nil {
			return false, fmt.Errorf("ask %s whether it has raft state: %w", s.ID, err)
		}
		if has {
			a.logger.Info("a cluster exists already; waiting to be added to it", "peer", s.ID)
			return true, nil
		}
	}
	if !self {
		return false, errors.New("this node is not among the servers it sees")
	}
	conf := raft.Configuration{}
	for _, s := range servers {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Addr)})
	}
	if err := a.node.Raft.BootstrapCluster(conf).Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) {
			return true, nil
		}
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	a.logger.Info("bootstrapped a new cluster", "servers", len(servers), "expect", a.cfg.BootstrapExpect)
	return true, nil
}

// peerHasState asks the server at addr (with this node's server
// certificate) whether it has raft state.
func (a *Agent) peerHasState(addr string) (bool, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(a.certs.ClientConfig(tlsutil.ServerRole))))
	if err != nil {
		return false, err
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := loghousev1.NewLogClient(cc).Status(ctx, &loghousev1.StatusRequest{})
	if err != nil {
		return false, err
	}
	return st.GetTerm() > 0 || st.GetLastIndex() > 0, nil
}

// reconcile runs one pass: raft's servers are brought in line with gossip
// (membership.Plan).
func (a *Agent) reconcile() error {
	f := a.node.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	var servers []membership.Server
	for _, s := range f.Configuration().Servers {
		servers = append(servers, membership.Server{ID: string(s.ID), Addr: string(s.Address)})
	}
	reaped := a.members.TakeReaped()
	change := membership.Plan(a.members.Members(), servers, reaped, a.cfg.NodeName)
	var errs []error
	for _, s := range change.Add {
		a.logger.Info("adding a raft voter", "id", s.ID, "addr", s.Addr)
		if err := a.node.Raft.AddVoter(raft.ServerID(s.ID), raft.ServerAddress(s.Addr), 0, 10*time.Second).Error(); err != nil {
			errs = append(errs, fmt.Errorf("add voter %s: %w", s.ID, err))
		}
	}
	for _, id := range change.Remove {
		a.logger.Info("removing a raft server", "id", id)
		if err := a.node.Raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
			errs = append(errs, fmt.Errorf("remove server %s: %w", id, err))
			for _, r := range reaped {
				if r == id {
					a.members.PutReaped(id)
				}
			}
		}
	}
	return errors.Join(errs...)
}
