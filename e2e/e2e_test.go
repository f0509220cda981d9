package e2e

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Schedules of the short (CI) mode; LOGHOUSE_E2E_LONG replaces the random
// ones' length.
const (
	shortRandom3 = 20 * time.Second
	shortRandom5 = 15 * time.Second
	defaultSoak  = 10 * time.Minute
)

// testSeed is LOGHOUSE_E2E_SEED or a fresh seed; it is logged so that a
// failure can be replayed (the choices replay; the timing cannot).
func testSeed(t *testing.T) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if v := os.Getenv(envSeed); v != "" {
		var err error
		if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", envSeed, v, err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", seed, envSeed, seed)
	return seed
}

// soak is the random schedules' length in long mode (LOGHOUSE_E2E_LONG:
// "1" for the default, or a duration such as "30m"); zero in short mode.
func soak(t *testing.T) time.Duration {
	t.Helper()
	switch v := os.Getenv(envLong); v {
	case "", "0", "false":
		return 0
	case "1", "true":
		return defaultSoak
	default:
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want 1 or a positive duration", envLong, v)
		}
		return d
	}
}

func nameHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s)) // a hash.Hash never fails to write
	return h.Sum64()
}

// artifactsDir is LOGHOUSE_E2E_ARTIFACTS, or a directory under the
// system's temporary directory that outlives the test (for porcupine's
// visualization of a failure).
func artifactsDir(t *testing.T) string {
	if d := os.Getenv(envKeep); d != "" {
		return filepath.Join(d, t.Name())
	}
	return filepath.Join(os.TempDir(), "loghouse-e2e-artifacts", t.Name())
}

// runScenario starts a cluster of n nodes and the workload, runs the
// fault schedule, heals everything, checks that writes resume, stops the
// workload, writes a sentinel, waits for the nodes to converge, reads
// every node's log and runs the checker.
func runScenario(t *testing.T, n int, seed int64, sched schedule, budget time.Duration) *Report {
	t.Helper()
	c := MakeCluster(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), budget+5*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(uint64(seed), nameHash(t.Name())))
	h := NewHistory()
	logf := func(format string, args ...any) {
		t.Logf("[%9v] "+format, append([]any{time.Duration(h.Now()).Round(time.Millisecond)}, args...)...)
	}
	w := StartWorkload(c, h, defaultWorkload(seed))
	defer w.Stop() // also on t.Fatal
	if err := waitFor(ctx, readyTimeout, 50*time.Millisecond, func(context.Context) (bool, string) {
		return w.Acks() >= 20, fmt.Sprintf("%d writes acknowledged", w.Acks())
	}); err != nil {
		t.Fatalf("the workload gets no writes through: %v", err)
	}
	logf("workload running: %d writes acknowledged", w.Acks())
	if err := sched(ctx, c, rng, logf); err != nil {
		t.Errorf("fault schedule: %v", err)
	}
	healed := time.Now()
	if err := c.HealAll(ctx); err != nil {
		t.Errorf("heal: %v", err)
	}
	acks := w.Acks()
	if err := waitFor(ctx, readyTimeout, 20*time.Millisecond, func(context.Context) (bool, string) {
		return w.Acks() >= acks+20, fmt.Sprintf("%d writes acknowledged since", w.Acks()-acks)
	}); err != nil {
		t.Errorf("writes did not resume after healing: %v", err)
	} else {
		logf("all healed; writes flowing again %v later", time.Since(healed).Round(time.Millisecond))
	}
	w.Stop()

	var minLen uint64
	if sentinel, err := w.Sentinel(ctx); err != nil {
		t.Errorf("sentinel write: %v", err)
	} else {
		minLen = sentinel.End()
	}
	logs := map[string][]rec{}
	length, err := c.WaitConverged(ctx, minLen)
	if err != nil {
		t.Errorf("nodes did not converge: %v", err)
	}
	for _, nd := range c.Nodes() {
		upTo := length
		if err != nil { // read what each node has
			st, serr := nd.Status(ctx)
			if serr != nil {
				t.Errorf("%s: %v", nd.Name, serr)
				continue
			}
			upTo = st.GetCommittedOffset()
		}
		recs, rerr := nd.ReadAll(ctx, upTo)
		if rerr != nil {
			t.Errorf("%v", rerr)
		}
		for _, r := range recs {
			logs[nd.Name] = append(logs[nd.Name], rec{Offset: r.GetOffset(), Value: string(r.GetValue())})
		}
	}
	ops := h.Ops()
	dir := artifactsDir(t)
	report := Check(ops, logs, checkOptions{LinearizeTimeout: 2 * time.Minute, VizDir: dir})
	report.Seed = seed
	t.Logf("checker: %s", report)
	if !report.OK() {
		t.Errorf("the checker found violations (seed %d)", seed)
	}
	if t.Failed() {
		saveHistory(t, dir, ops)
	}
	return report
}

// saveHistory writes the history, one operation a line.
func saveHistory(t *testing.T, dir string, ops []Op) {
	var b strings.Builder
	for i := range ops {
		b.WriteString(ops[i].String())
		b.WriteByte('\n')
	}
	path := filepath.Join(dir, "history.txt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("save history: %v", err)
		return
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Logf("save history: %v", err)
		return
	}
	t.Logf("history of %d operations in %s", len(ops), path)
}

// TestNoFaults runs the workload on a healthy three-node cluster: the
// baseline every fault test is compared with.
func TestNoFaults(t *testing.T) {
	seed := testSeed(t)
	runScenario(t, 3, seed, func(ctx context.Context, _ *Cluster, _ *rand.Rand, _ func(string, ...any)) error {
		return hold(ctx, 4*time.Second)
	}, time.Minute)
}

// TestSingleFaults runs each fault alone on a three-node cluster.
func TestSingleFaults(t *testing.T) {
	seed := testSeed(t)
	tests := []struct {
		name  string
		sched schedule
	}{
		{"kill leader", single(faultKill, targetLeader)},
		{"kill follower", single(faultKill, targetFollower)},
		{"pause leader", single(faultPause, targetLeader)},
		{"isolate leader", single(faultIsolate, targetLeader)},
		{"split minority", single(faultSplit, targetAny)},
		{"rolling restart", rollingRestart},
		{"restart leader with a follower down", restartLeaderWithFollowerDown},
		{"wipe and rejoin", wipeNodes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runScenario(t, 3, seed, tc.sched, time.Minute)
		})
	}
}

// TestRandomFaults runs a random mix of faults on three and on five
// nodes: 20s and 15s, or LOGHOUSE_E2E_LONG each.
func TestRandomFaults(t *testing.T) {
	seed := testSeed(t)
	long := soak(t)
	for _, tc := range []struct {
		nodes int
		d     time.Duration
	}{{3, shortRandom3}, {5, shortRandom5}} {
		d := tc.d
		if long > 0 {
			d = long
		}
		t.Run(fmt.Sprintf("%d nodes", tc.nodes), func(t *testing.T) {
			runScenario(t, tc.nodes, seed, randomFaults(d), d)
		})
	}
}
