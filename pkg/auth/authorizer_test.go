package auth

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestDefaultPolicy checks the embedded defaults: root may do everything,
// nobody and unknown subjects nothing, and an empty subject is refused with
// ErrNoIdentity.
func TestDefaultPolicy(t *testing.T) {
	a, err := New("", "", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		subject string
		allow   bool
		wantErr error // for a refusal that is not a *DeniedError
	}{
		{name: "root", subject: "root", allow: true},
		{name: "nobody", subject: "nobody"},
		{name: "unknown", subject: "mallory"},
		{name: "root lookalike", subject: "Root"},
		{name: "empty subject", subject: "", wantErr: ErrNoIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, act := range allActions {
				if tt.wantErr != nil {
					err := a.Authorize(tt.subject, act)
					if !errors.Is(err, tt.wantErr) || errors.Is(err, ErrPermissionDenied) {
						t.Errorf("Authorize(%q, %q) = %v, want only %v", tt.subject, act, err, tt.wantErr)
					}
					continue
				}
				checkDecisions(t, a, []decision{{tt.subject, act, tt.allow}})
			}
		})
	}
}

// TestDeniedMessage checks the wording of a denial.
func TestDeniedMessage(t *testing.T) {
	a, err := New("", "", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	err = a.Authorize("nobody", ActionProduce)
	if want := `auth: "nobody" may not produce`; err == nil || err.Error() != want {
		t.Fatalf("Authorize(nobody, produce) = %v, want %s", err, want)
	}
}

// TestUnknownAction checks that Authorize refuses actions it does not
// know, even for a subject the policy allows everything, and even "*".
func TestUnknownAction(t *testing.T) {
	a, err := New("", "", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, act := range []string{"", Wildcard, "delete", "Produce", "produce "} {
		err := a.Authorize("root", act)
		if !errors.Is(err, ErrUnknownAction) || errors.Is(err, ErrPermissionDenied) {
			t.Errorf("Authorize(root, %q) = %v, want ErrUnknownAction", act, err)
		}
	}
}

// TestPolicies checks decisions under policies that use roles, wildcards,
// comments and CSV quoting.
func TestPolicies(t *testing.T) {
	tests := []struct {
		name      string
		policy    string
		decisions []decision
	}{
		{
			name: "role grouping",
			policy: `
g, alice, producers
g, bob, consumers
p, producers, produce
p, consumers, consume
`,
			decisions: []decision{
				{"alice", ActionProduce, true},
				{"alice", ActionConsume, false},
				{"alice", ActionAdmin, false},
				{"bob", ActionConsume, true},
				{"bob", ActionProduce, false},
				{"carol", ActionProduce, false},
				// A role name used as an identity has the role's permissions.
				{"producers", ActionProduce, true},
			},
		},
		{
			name: "role of a role",
			policy: `
g, alice, writers
g, writers, producers
p, producers, produce
`,
			decisions: []decision{
				{"alice", ActionProduce, true},
				{"writers", ActionProduce, true},
				{"alice", ActionConsume, false},
			},
		},
		{
			name: "a user with two roles",
			policy: `
g, alice, producers
g, alice, consumers
p, producers, produce
p, consumers, consume
`,
			decisions: []decision{
				{"alice", ActionProduce, true},
				{"alice", ActionConsume, true},
				{"alice", ActionAdmin, false},
			},
		},
		{
			name:   "wildcard subject",
			policy: "p, *, consume\n",
			decisions: []decision{
				{"alice", ActionConsume, true},
				{"nobody", ActionConsume, true},
				{"alice", ActionProduce, false},
				{"alice", ActionAdmin, false},
			},
		},
		{
			name:   "wildcard action",
			policy: "p, ops, *\n",
			decisions: []decision{
				{"ops", ActionProduce, true},
				{"ops", ActionConsume, true},
				{"ops", ActionAdmin, true},
				{"alice", ActionProduce, false},
			},
		},
		{
			name:   "wildcard action for a role",
			policy: "g, alice, ops\np, ops, *\n",
			decisions: []decision{
				{"alice", ActionProduce, true},
				{"alice", ActionAdmin, true},
				{"bob", ActionAdmin, false},
			},
		},
		{
			name:   "wildcard subject and action",
			policy: "p, *, *\n",
			decisions: []decision{
				{"anyone", ActionProduce, true},
				{"anyone", ActionAdmin, true},
			},
		},
		{
			name:   "empty policy denies everything",
			policy: "# nothing allowed\n\n",
			decisions: []decision{
				{"root", ActionProduce, false},
				{"root", ActionAdmin, false},
			},
		},
		{
			name: "comments, spaces, CRLF, quotes and duplicates",
			policy: "# comment\r\n" +
				"   # indented comment\r\n" +
				"\r\n" +
				"  p ,  alice  ,  produce  \r\n" +
				"p, \"o'brien, jr\", consume\r\n" +
				"p, alice, produce\r\n",
			decisions: []decision{
				{"alice", ActionProduce, true},
				{"o'brien, jr", ActionConsume, true},
				{"o'brien", ActionConsume, false},
				{"alice", ActionConsume, false},
			},
		},
		{
			name:   "names are case sensitive",
			policy: "p, Alice, produce\n",
			decisions: []decision{
				{"Alice", ActionProduce, true},
				{"alice", ActionProduce, false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newAuthorizer(t, tt.policy)
			checkDecisions(t, a, tt.decisions)
			for _, act := range allActions {
				if err := a.Authorize("", act); !errors.Is(err, ErrNoIdentity) {
					t.Errorf("Authorize(\"\", %q) = %v, want ErrNoIdentity", act, err)
				}
			}
		})
	}
}

// TestReload checks that a successful Reload changes decisions, and that a
// failed one returns an error naming the file and keeps the old policy.
func TestReload(t *testing.T) {
	const before = "p, alice, produce\n"
	beforeDecisions := []decision{
		{"alice", ActionProduce, true},
		{"alice", ActionConsume, false},
		{"bob", ActionConsume, false},
	}
	tests := []struct {
		name      string
		policy    string // new policy file contents; "" removes the file
		model     string // new model file contents, if not ""
		wantLine  int    // with wantErr: the line the error names
		wantErr   bool
		decisions []decision // after the reload
	}{
		{
			name:   "new policy",
			policy: "g, bob, readers\np, readers, consume\n",
			decisions: []decision{
				{"alice", ActionProduce, false},
				{"bob", ActionConsume, true},
			},
		},
		{
			name:   "new model",
			policy: before,
			// Exact matching only: no roles, no wildcards.
			model: "[request_definition]\nr = sub, act\n[policy_definition]\np = sub, act\n" +
				"[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub == p.sub && r.act == p.act\n",
			decisions: beforeDecisions,
		},
		{name: "bad action", policy: before + "p, bob, write\n", wantErr: true, wantLine: 2},
		{name: "bad syntax", policy: before + "p, \"bob, consume\n", wantErr: true, wantLine: 2},
		{name: "missing file", policy: "", wantErr: true},
		{name: "bad model", policy: before, model: "[request_definition]\nr = sub, obj, act\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			modelPath := writeFile(t, dir, "model.conf", string(defaultModel))
			policyPath := writeFile(t, dir, "policy.csv", before)
			a, err := New(modelPath, policyPath, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			checkDecisions(t, a, beforeDecisions)

			changed := policyPath
			if tt.policy == "" {
				if err := os.Remove(policyPath); err != nil {
					t.Fatal(err)
				}
			} else {
				writeFile(t, dir, "policy.csv", tt.policy)
			}
			if tt.model != "" {
				writeFile(t, dir, "model.conf", tt.model)
				changed = modelPath
			}

			err = a.Reload()
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Reload: %v", err)
				}
				checkDecisions(t, a, tt.decisions)
				return
			}
			fe, ok := errors.AsType[*FileError](err)
			if !ok || !errors.Is(err, ErrLoad) || fe.File != changed || fe.Line != tt.wantLine {
				t.Fatalf("Reload = %v, want a *FileError for %s line %d", err, changed, tt.wantLine)
			}
			checkDecisions(t, a, beforeDecisions)
		})
	}
}

// TestReloadEmbedded checks that reloading the embedded defaults works and
// changes nothing.
func TestReloadEmbedded(t *testing.T) {
	a, err := New("", "", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	checkDecisions(t, a, []decision{{"root", ActionAdmin, true}, {"nobody", ActionConsume, false}})
}

// TestConcurrentReload runs Authorize from several goroutines while the
// policy file flips between two versions and is reloaded, with some
// reloads failing. Run it with -race. Decisions that both versions agree on
// must never change; the rest must be a plain allow or deny.
func TestConcurrentReload(t *testing.T) {
	const (
		policyA = "p, root, *\np, alice, produce\n"
		policyB = "p, root, *\ng, alice, readers\np, readers, consume\n"
		broken  = "p, root, *\np, alice, write\n"
		workers = 4
		reloads = 60
	)
	a, path := newAuthorizer(t, policyA)
	dir := filepath.Dir(path)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				if err := a.Authorize("root", ActionAdmin); err != nil {
					errs <- err
					return
				}
				if err := a.Authorize("nobody", ActionConsume); !errors.Is(err, ErrPermissionDenied) {
					errs <- err
					return
				}
				for _, act := range []string{ActionProduce, ActionConsume} {
					if err := a.Authorize("alice", act); err != nil && !errors.Is(err, ErrPermissionDenied) {
						errs <- err
						return
					}
				}
			}
		})
	}

	failed, inForce := 0, policyA
	for i := range reloads {
		text := policyA
		switch i % 3 {
		case 1:
			text = policyB
		case 2:
			text = broken
		}
		writeFile(t, dir, "policy.csv", text)
		if err := a.Reload(); err != nil {
			if text != broken || !errors.Is(err, ErrLoad) {
				t.Errorf("reload %d: %v", i, err)
			}
			failed++
		} else {
			if text == broken {
				t.Errorf("reload %d of a broken policy succeeded", i)
			}
			inForce = text
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Authorize during reload: %v", err)
		}
	}
	if failed == 0 {
		t.Error("no reload failed; the test did not cover failures")
	}
	// The last successful reload decides.
	b := inForce == policyB
	checkDecisions(t, a, []decision{{"alice", ActionConsume, b}, {"alice", ActionProduce, !b}})
}

// TestAuthorizeAllocs checks that Authorize allocates nothing beyond what
// Casbin's Enforce does when it allows, and only the error when it denies.
func TestAuthorizeAllocs(t *testing.T) {
	a, _ := newAuthorizer(t, "g, alice, producers\np, producers, produce\n")
	e := a.current.Load().enforcer
	tests := []struct {
		name         string
		subject, act string
		extra        float64 // allocations Authorize may add
		wantAllowed  bool
	}{
		{name: "allowed", subject: "alice", act: ActionProduce, wantAllowed: true},
		{name: "denied", subject: "alice", act: ActionAdmin, extra: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var authErr, enfErr error
			var allowed bool
			casbinAllocs := testing.AllocsPerRun(100, func() {
				allowed, enfErr = e.Enforce(tt.subject, tt.act)
			})
			ours := testing.AllocsPerRun(100, func() {
				authErr = a.Authorize(tt.subject, tt.act)
			})
			if enfErr != nil || allowed != tt.wantAllowed || (authErr == nil) != tt.wantAllowed {
				t.Fatalf("Enforce = %v, %v; Authorize = %v", allowed, enfErr, authErr)
			}
			if ours > casbinAllocs+tt.extra {
				t.Errorf("Authorize: %v allocations, Enforce: %v; want at most %v more", ours, casbinAllocs, tt.extra)
			}
			t.Logf("Authorize: %v allocations, Enforce: %v", ours, casbinAllocs)
		})
	}
}

// BenchmarkAuthorize measures decisions under a small policy with roles:
// direct and role-based allows, a denial, and all of them in parallel.
func BenchmarkAuthorize(b *testing.B) {
	const policy = `
p, root, *
g, alice, producers
g, bob, consumers
p, producers, produce
p, consumers, consume
p, *, consume
`
	a, _ := newAuthorizer(b, policy)
	cases := []struct {
		name         string
		subject, act string
		allow        bool
	}{
		{"allow-direct", "root", ActionAdmin, true},
		{"allow-role", "alice", ActionProduce, true},
		{"allow-wildcard", "carol", ActionConsume, true},
		{"deny", "carol", ActionProduce, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if err := a.Authorize(c.subject, c.act); (err == nil) != c.allow {
				b.Fatalf("Authorize(%q, %q) = %v", c.subject, c.act, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				// The result is checked above; the benchmark measures the cost.
				_ = a.Authorize(c.subject, c.act)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				c := cases[i%len(cases)]
				// The results are checked above; this measures contention.
				_ = a.Authorize(c.subject, c.act)
				i++
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	})
}
