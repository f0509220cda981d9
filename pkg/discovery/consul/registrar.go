package consul

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// Registrar keeps this node's service instance registered with the local
// Consul agent, with a TTL check fed from the node's health and the
// leader tag following SetLeader, until Close deregisters it. It never
// blocks on Consul: failures are logged and retried with back-off.
type Registrar struct {
	c      *Client
	cfg    Registration
	logger hclog.Logger

	leader atomic.Bool
	kick   chan struct{} // has room for one: leadership changed

	ctx    context.Context // ends on Close; bounds every request of run
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// NewRegistrar validates cfg and starts keeping the instance registered
// through c, in the background: it returns at once, whether Consul is up
// or not. The instance starts as a non-leader; call SetLeader with the
// node's current state right after.
func NewRegistrar(c *Client, cfg Registration) (*Registrar, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registrar{
		c:      c,
		cfg:    cfg,
		logger: cfg.Logger,
		kick:   make(chan struct{}, 1),
		ctx:    ctx,
		cancel: cancel,
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.run()
	}()
	return r, nil
}

// Registration is the configuration in force, defaults filled in.
func (r *Registrar) Registration() Registration { return r.cfg }

// SetLeader says whether this node leads; the instance is registered
// again, at once, with or without the leader tag. Call it on every change
// of leadership; it does not block.
func (r *Registrar) SetLeader(leader bool) {
	if r.leader.Swap(leader) == leader {
		return
	}
	select {
	case r.kick <- struct{}{}:
	default: // a kick is pending; it will read the latest value
	}
}

// Close stops the background work and deregisters the instance (a request
// bounded by RequestTimeout). It is idempotent; the error is the
// deregistration's, if it failed: the instance then stays in Consul, its
// check turning critical once the TTL runs out (so DNS stops offering it),
// until DeregisterCriticalAfter, an operator, or the node's next start
// replaces it.
func (r *Registrar) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		r.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.RequestTimeout)
		defer cancel()
		err := r.c.api.Agent().ServiceDeregisterOpts(r.cfg.ServiceID, (&api.QueryOptions{}).WithContext(ctx))
		if isStatus(err, http.StatusNotFound) {
			err = nil // not registered: nothing to undo
		}
		if err != nil {
			r.closeErr = fmt.Errorf("consul: deregister %s: %w", r.cfg.ServiceID, err)
			r.logger.Warn("cannot deregister from Consul", "service_id", r.cfg.ServiceID, "error", err)
			return
		}
		r.logger.Info("deregistered from Consul", "service_id", r.cfg.ServiceID)
	})
	return r.closeErr
}

// run is the registrar's loop. Registration is due at start, on a
// leadership change, and whenever the instance may be gone (a report or
// a sync failed, or found it missing or changed). While registered, it
// reports health every CheckTTL/3 and compares Consul's view with its own
// every SyncInterval.
//
// Back-off: a registration goes at once if the last cycle worked (a
// registration followed by an accepted health report), so that a Consul
// restart or a leadership change is repaired without delay. Otherwise —
// Consul down, or taking registrations but refusing reports — attempts
// wait RetryMin, doubling to RetryMax, with jitter; only an accepted
// report resets the wait.
func (r *Registrar) run() {
	retry := time.NewTimer(0) // armed: the first registration is due now
	defer retry.Stop()
	armed := true
	registered := false
	quick := false // the last cycle worked: the next registration may go at once
	wait := r.cfg.RetryMin
	failures := 0
	reason := "start"
	// schedule arms the retry timer, unless it is armed already (then its
	// back-off stands).
	schedule := func() {
		if armed {
			return
		}
		var d time.Duration
		if !quick {
			d = wait + rand.N(wait/4+1) // jitter keeps restarted nodes apart
			wait = min(2*wait, r.cfg.RetryMax)
		}
		quick = false
		retry.Reset(d)
		armed = true
	}
	lost := func(why string) {
		registered, reason = false, why
		schedule()
	}
	report := time.NewTicker(r.cfg.CheckTTL / 3)
	defer report.Stop()
	resync := time.NewTicker(r.cfg.SyncInterval)
	defer resync.Stop()
	healthy := -1 // unknown; then 0 or 1, to log changes only
	// reportNow reports health; an accepted report closes a working cycle.
	reportNow := func() {
		var ok bool
		if healthy, ok = r.report(healthy); ok {
			quick, wait, failures = true, r.cfg.RetryMin, 0
		} else if r.ctx.Err() == nil {
			lost("Consul refused a health report")
		}
	}
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-retry.C:
			armed = false
			leader := r.leader.Load()
			if err := r.register(leader); err != nil {
				if r.ctx.Err() != nil {
					return
				}
				failures++
				quick = false
				schedule()
				r.logger.Warn("cannot register with Consul; retrying", "attempt", failures, "error", err)
				continue
			}
			registered = true
			r.logger.Info("registered with Consul", "service_id", r.cfg.ServiceID, "leader", leader, "reason", reason, "failed_attempts", failures)
			reportNow()
		case <-r.kick:
			if registered {
				lost("leadership changed")
			}
		case <-report.C:
			if registered {
				reportNow()
			}
		case <-resync.C:
			if !registered {
				continue
			}
			ok, why, err := r.inSync()
			switch {
			case err != nil:
				if r.ctx.Err() != nil {
					return
				}
				r.logger.Warn("cannot read our registration from Consul; registering again", "error", err)
				lost("Consul did not answer a sync")
			case !ok:
				r.logger.Warn("Consul lost or changed our registration; registering again", "service_id", r.cfg.ServiceID, "found", why)
				lost("Consul lost or changed the registration")
			}
		}
	}
}

// register registers the instance with its TTL check, replacing any
// previous definition and checks.
func (r *Registrar) register(leader bool) error {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
	defer cancel()
	check := &api.AgentServiceCheck{
		CheckID: r.cfg.CheckID(),
		Name:    "Loghouse health (reported by the node)",
		Notes: fmt.Sprintf("The node probes its own gRPC health over mutual TLS every %s and reports it here; "+
			"critical if no report arrives within %s.", r.cfg.CheckTTL/3, r.cfg.CheckTTL),
		TTL: r.cfg.CheckTTL.String(),
	}
	if r.cfg.DeregisterCriticalAfter > 0 {
		check.DeregisterCriticalServiceAfter = r.cfg.DeregisterCriticalAfter.String()
	}
	reg := &api.AgentServiceRegistration{
		ID:      r.cfg.ServiceID,
		Name:    r.cfg.ServiceName,
		Tags:    r.cfg.tags(leader),
		Port:    r.cfg.Port,
		Address: r.cfg.Address,
		Meta:    r.cfg.meta(leader),
		Check:   check,
	}
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := r.c.api.Agent().ServiceRegisterOpts(reg, opts); err != nil {
		return fmt.Errorf("consul: register %s: %w", r.cfg.ServiceID, err)
	}
	return nil
}

// report probes health and sets the TTL check from it; prev and the
// result are the last health seen (-1 unknown, 0 failing, 1 passing), to
// log changes only. ok says whether Consul took the report.
func (r *Registrar) report(prev int) (now int, ok bool) {
	pctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
	healthy, note := r.cfg.Health(pctx)
	cancel()
	if r.ctx.Err() != nil {
		return prev, false
	}
	status, now := api.HealthCritical, 0
	if healthy {
		status, now = api.HealthPassing, 1
	}
	if now != prev {
		r.logger.Info("health changed", "passing", healthy, "note", note)
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
	defer cancel()
	if err := r.c.api.Agent().UpdateTTLOpts(r.cfg.CheckID(), note, status, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		if r.ctx.Err() == nil {
			r.logger.Warn("cannot report health to Consul; registering again", "check_id", r.cfg.CheckID(), "error", err)
		}
		return now, false
	}
	return now, true
}

// inSync reports whether the local Consul agent has the instance as we
// last registered it; why describes the difference.
func (r *Registrar) inSync() (ok bool, why string, err error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
	defer cancel()
	svcs, err := r.c.api.Agent().ServicesWithFilterOpts("", (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return false, "", fmt.Errorf("consul: list agent services: %w", err)
	}
	s, found := svcs[r.cfg.ServiceID]
	if !found || s == nil {
		return false, "missing", nil
	}
	leader := r.leader.Load()
	want := r.cfg.tags(leader)
	got := slices.Clone(s.Tags)
	slices.Sort(want)
	slices.Sort(got)
	switch {
	case s.Service != r.cfg.ServiceName || s.Port != r.cfg.Port || s.Address != r.cfg.Address:
		return false, fmt.Sprintf("service %s at %s:%d", s.Service, s.Address, s.Port), nil
	case !slices.Equal(want, got):
		return false, fmt.Sprintf("tags %v", s.Tags), nil
	case !maps.Equal(s.Meta, r.cfg.meta(leader)):
		return false, fmt.Sprintf("meta %v", s.Meta), nil
	}
	return true, "", nil
}

// isStatus reports whether err is an HTTP status error with code from
// Consul.
func isStatus(err error, code int) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == code
}
