package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// faultKind is one of the harness's faults (doc.go describes each).
type faultKind string

const (
	faultKill    faultKind = "kill"    // SIGKILL; started again at heal
	faultPause   faultKind = "pause"   // docker pause; unpaused at heal
	faultIsolate faultKind = "isolate" // cut from every other node
	faultSplit   faultKind = "split"   // a random minority cut from the majority
	faultRestart faultKind = "restart" // graceful stop and start, at once
	faultWipe    faultKind = "wipe"    // container and data removed, a fresh one started
)

// targetKind says which node a fault hits.
type targetKind string

const (
	targetLeader   targetKind = "leader"
	targetFollower targetKind = "follower"
	targetAny      targetKind = "any"
)

// currentLeader is the running node that says it leads in the highest
// term, or nil; unlike WaitLeader it does not wait for agreement.
func (c *Cluster) currentLeader(ctx context.Context) *Node {
	var best *Node
	var term uint64
	for _, n := range c.up() {
		st, err := n.Status(ctx)
		if err == nil && st.GetRaftState() == "Leader" && st.GetTerm() >= term {
			best, term = n, st.GetTerm()
		}
	}
	return best
}

// pick chooses a running node of the kind asked for; busy nodes (already
// hit by a fault) are not chosen.
func (c *Cluster) pick(ctx context.Context, which targetKind, rng *rand.Rand, busy map[*Node]bool) (*Node, error) {
	leader := c.currentLeader(ctx)
	if which == targetLeader && leader != nil && !busy[leader] {
		return leader, nil
	}
	var cands []*Node
	for _, n := range c.up() {
		if !busy[n] && (which != targetFollower || n != leader) {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("e2e: no running node to hit as %s", which)
	}
	return cands[rng.IntN(len(cands))], nil
}

// WaitCaughtUp waits until each of nodes has committed what the leader
// had committed when the wait began (writes may go on meanwhile).
func (c *Cluster) WaitCaughtUp(ctx context.Context, nodes ...*Node) error {
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		return err
	}
	st, err := leader.Status(ctx)
	if err != nil {
		return err
	}
	target := st.GetCommittedOffset()
	return waitFor(ctx, convergeTimeout, 100*time.Millisecond, func(ctx context.Context) (bool, string) {
		for _, n := range nodes {
			st, err := n.Status(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.Name, err)
			}
			if st.GetCommittedOffset() < target {
				return false, fmt.Sprintf("%s has committed %d of %d (%s, leader %q)", n.Name, st.GetCommittedOffset(), target, st.GetRaftState(), st.GetLeaderId())
			}
		}
		return true, ""
	})
}

// inject starts a fault and returns how to heal it and what it did.
// Instantaneous faults (restart, wipe) heal by waiting for the node to
// catch up.
func (c *Cluster) inject(ctx context.Context, kind faultKind, which targetKind, rng *rand.Rand, busy map[*Node]bool) (func(context.Context) error, string, error) {
	if kind == faultSplit {
		var free []*Node
		for _, n := range c.nodes {
			if !busy[n] {
				free = append(free, n)
			}
		}
		rng.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
		k := (len(c.nodes) - 1) / 2
		if k == 0 || len(free) < k {
			return nil, "", fmt.Errorf("e2e: no minority to split off")
		}
		minority := free[:k]
		var majority []*Node
		for _, n := range c.nodes {
			if !nodeIn(n, minority) {
				majority = append(majority, n)
			}
		}
		for _, n := range minority {
			busy[n] = true
		}
		desc := fmt.Sprintf("split %v | %v", minority, majority)
		return c.Heal, desc, c.Partition(ctx, minority, majority)
	}
	n, err := c.pick(ctx, which, rng, busy)
	if err != nil {
		return nil, "", err
	}
	busy[n] = true
	desc := fmt.Sprintf("%s %s (%s)", kind, n.Name, which)
	caughtUp := func(ctx context.Context) error { return c.WaitCaughtUp(ctx, n) }
	switch kind {
	case faultKill:
		return n.Start, desc, n.Kill(ctx)
	case faultPause:
		return n.Unpause, desc, n.Pause(ctx)
	case faultIsolate:
		return c.Heal, desc, c.Isolate(ctx, n)
	case faultRestart:
		return caughtUp, desc, n.Restart(ctx)
	case faultWipe:
		return caughtUp, desc, n.Wipe(ctx)
	}
	return nil, "", fmt.Errorf("e2e: unknown fault %q", kind)
}

// logged logs a heal as it begins.
func logged(logf func(string, ...any), desc string, heal func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		logf("heal %s", desc)
		return heal(ctx)
	}
}

func nodeIn(n *Node, ns []*Node) bool {
	for _, m := range ns {
		if m == n {
			return true
		}
	}
	return false
}

// schedule is a fault schedule: it runs while the workload runs, and
// returns with every fault it made healed (or an error).
type schedule func(ctx context.Context, c *Cluster, rng *rand.Rand, logf func(string, ...any)) error

// hold waits d, or until ctx ends.
func hold(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// single is a schedule of one fault: a second of calm, the fault for
// three seconds, healed, then the cluster must agree on a leader.
func single(kind faultKind, which targetKind) schedule {
	return func(ctx context.Context, c *Cluster, rng *rand.Rand, logf func(string, ...any)) error {
		if err := hold(ctx, time.Second); err != nil {
			return err
		}
		heal, desc, err := c.inject(ctx, kind, which, rng, map[*Node]bool{})
		logf("inject %s", desc)
		if err != nil {
			return err
		}
		if err := hold(ctx, 3*time.Second); err != nil {
			return errors.Join(err, heal(ctx))
		}
		logf("heal %s", desc)
		if err := heal(ctx); err != nil {
			return err
		}
		_, err = c.WaitLeader(ctx)
		return err
	}
}

// rollingRestart restarts every node in turn (gracefully), waiting for
// each to catch up before the next.
func rollingRestart(ctx context.Context, c *Cluster, rng *rand.Rand, logf func(string, ...any)) error {
	order := rng.Perm(len(c.nodes))
	for _, i := range order {
		n := c.nodes[i]
		logf("restart %s", n.Name)
		if err := n.Restart(ctx); err != nil {
			return err
		}
		if err := c.WaitCaughtUp(ctx, n); err != nil {
			return fmt.Errorf("%s after its restart: %w", n.Name, err)
		}
		logf("%s caught up", n.Name)
	}
	return nil
}

// restartLeaderWithFollowerDown kills a follower, then restarts the leader
// gracefully, and starts the follower once a leader is agreed again: the
// leader hands leadership to the one node left, which cannot commit in its
// term until the old leader is back, and the restarted node may win the
// next election with a commit watermark still at its last snapshot.
func restartLeaderWithFollowerDown(ctx context.Context, c *Cluster, rng *rand.Rand, logf func(string, ...any)) error {
	if err := hold(ctx, time.Second); err != nil {
		return err
	}
	busy := map[*Node]bool{}
	leader, err := c.pick(ctx, targetLeader, rng, busy)
	if err != nil {
		return err
	}
	busy[leader] = true
	follower, err := c.pick(ctx, targetFollower, rng, busy)
	if err != nil {
		return err
	}
	logf("kill %s (follower)", follower.Name)
	if err := follower.Kill(ctx); err != nil {
		return err
	}
	logf("restart %s (leader)", leader.Name)
	if err := leader.Restart(ctx); err != nil {
		return err
	}
	if _, err := c.WaitLeader(ctx); err != nil {
		return err
	}
	logf("%s restarted; start %s", leader.Name, follower.Name)
	if err := hold(ctx, time.Second); err != nil {
		return err
	}
	return follower.Start(ctx)
}

// wipeNodes replaces a follower's disk, and once it has caught up, the
// leader's.
func wipeNodes(ctx context.Context, c *Cluster, rng *rand.Rand, logf func(string, ...any)) error {
	for _, which := range []targetKind{targetFollower, targetLeader} {
		if err := hold(ctx, time.Second); err != nil {
			return err
		}
		if err := c.WaitCaughtUp(ctx, c.nodes...); err != nil {
			return fmt.Errorf("before a wipe: %w", err)
		}
		heal, desc, err := c.inject(ctx, faultWipe, which, rng, map[*Node]bool{})
		logf("inject %s", desc)
		if err != nil {
			return err
		}
		if err := heal(ctx); err != nil {
			return fmt.Errorf("after %s: %w", desc, err)
		}
		logf("wiped node caught up")
	}
	return nil
}

// randomFaults is a random schedule for d: calm, then one fault or
// (a quarter of the time) two at once on different nodes, held for one to
// three seconds, healed; the cluster must then agree on a leader. A wipe
// is always alone, only when every node has caught up, and the wiped node
// must catch up before the next fault: with a wiped disk, a node no longer
// holds what it acknowledged to raft, so two wipes in a row (or a wipe
// and a crash of the only other up-to-date node) may legitimately lose
// committed records.
func randomFaults(d time.Duration) schedule {
	return func(ctx context.Context, c *Cluster, rng *rand.Rand, logf func(string, ...any)) error {
		menu := []struct {
			kind  faultKind
			which targetKind
		}{
			{faultKill, targetLeader}, {faultKill, targetAny},
			{faultPause, targetLeader}, {faultPause, targetAny},
			{faultIsolate, targetLeader}, {faultIsolate, targetAny},
			{faultSplit, targetAny}, {faultRestart, targetAny}, {faultWipe, targetAny},
		}
		end := time.Now().Add(d)
		for step := 0; step < 10000 && time.Now().Before(end); step++ {
			if err := hold(ctx, time.Duration(500+rng.IntN(1000))*time.Millisecond); err != nil {
				return err
			}
			first := menu[rng.IntN(len(menu))]
			faults := []struct {
				kind  faultKind
				which targetKind
			}{first}
			if first.kind == faultWipe {
				if err := c.WaitCaughtUp(ctx, c.nodes...); err != nil {
					return fmt.Errorf("before a wipe: %w", err)
				}
			} else if rng.IntN(4) == 0 {
				second := menu[rng.IntN(len(menu)-1)] // not a wipe
				if second.kind != faultSplit || first.kind != faultSplit {
					faults = append(faults, second)
				}
			}
			busy := map[*Node]bool{}
			var heals, settles []func(context.Context) error
			var descs []string
			var err error
			for _, f := range faults {
				var heal func(context.Context) error
				var desc string
				heal, desc, err = c.inject(ctx, f.kind, f.which, rng, busy)
				if err != nil {
					break
				}
				logf("inject %s", desc)
				descs = append(descs, desc)
				heal = logged(logf, desc, heal)
				// A restarted or wiped node's heal waits for it to catch
				// up, which needs the other fault healed first.
				if f.kind == faultRestart || f.kind == faultWipe {
					settles = append(settles, heal)
				} else {
					heals = append(heals, heal)
				}
			}
			if err == nil {
				err = hold(ctx, time.Duration(1000+rng.IntN(2000))*time.Millisecond)
			}
			for _, heal := range append(heals, settles...) {
				err = errors.Join(err, heal(ctx))
			}
			if err != nil {
				return fmt.Errorf("step %d (%s): %w", step, strings.Join(descs, ", "), err)
			}
			if _, err := c.WaitLeader(ctx); err != nil {
				return fmt.Errorf("after step %d (%s): %w", step, strings.Join(descs, ", "), err)
			}
		}
		return nil
	}
}
