package agent

import (
	"context"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/loghouse/loghouse/pkg/config"
)

func agLogger(t *testing.T) hclog.Logger {
	t.Helper()
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: agWriter{t}, Level: hclog.Info})
}

type agWriter struct{ t *testing.T }

func (w agWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func agFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// agSettle waits until cond holds, for counts that drop asynchronously
// (goroutines finishing after Shutdown returned their last channel send).
func agSettle(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
	return true
}

// TestDevAgentStartStopLeaksNothing starts and stops a dev agent twice on
// the same data dir and checks that goroutines and file descriptors return
// to where they were, and the port is free again.
func TestDevAgentStartStopLeaksNothing(t *testing.T) {
	dir := t.TempDir()
	baseG, baseFD := runtime.NumGoroutine(), agFDs(t)
	var addr string
	for round := range 2 {
		cfg := config.Default()
		cfg.DataDir, cfg.NodeName, cfg.Ports.RPC = dir, "dev1", 0
		a, err := New(cfg, Options{Dev: true, Logger: agLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = a.WaitReady(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if !a.Node().IsLeader() {
			t.Fatalf("round %d: a lone dev node is not the leader", round)
		}
		if ex := a.DevExports(); !strings.Contains(ex, "LOGHOUSE_ADDR="+a.Addr()) || !strings.Contains(ex, "LOGHOUSE_CLIENT_KEY=") {
			t.Fatalf("exports %q", ex)
		}
		addr = a.Addr()
		if err := a.Shutdown(); err != nil {
			t.Fatalf("round %d: shutdown: %v", round, err)
		}
		if err := a.Shutdown(); err != nil {
			t.Fatalf("round %d: second shutdown: %v", round, err)
		}
	}
	if !agSettle(func() bool { return runtime.NumGoroutine() <= baseG+2 }) {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after\n%s", baseG, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
	if !agSettle(func() bool { return agFDs(t) <= baseFD }) {
		t.Fatalf("file descriptors: %d before, %d after", baseFD, agFDs(t))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the RPC port is still bound after shutdown: %v", err)
	}
	ln.Close()
}

// TestNewUndoesOnFailure checks that a start-up failure after the port is
// bound releases it.
func TestNewUndoesOnFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := config.Default()
	cfg.DataDir, cfg.NodeName, cfg.Ports.RPC = t.TempDir(), "dev1", port
	cfg.ACL = config.ACL{ModelFile: "/nonexistent/model.conf", PolicyFile: "/nonexistent/policy.csv"}
	if _, err := New(cfg, Options{Dev: true, Logger: agLogger(t)}); err == nil || !strings.Contains(err.Error(), "/nonexistent/") {
		t.Fatalf("New with missing ACL files = %v, want an error naming them", err)
	}
	// A data dir that cannot hold the log fails after the port is bound
	// and the mux started.
	cfg.ACL = config.ACL{}
	cfg.DataDir = t.TempDir()
	if err := os.MkdirAll(cfg.DataDir+"/tls", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.DataDir+"/log", []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Options{Dev: true, Logger: agLogger(t)}); err == nil {
		t.Fatal("New with a file where the log directory goes succeeded")
	} else {
		t.Log(err)
	}
	ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
	if err != nil {
		t.Fatalf("port left bound after failed starts: %v", err)
	}
	ln.Close()
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestReload changes the log level and the ACL policy of a running agent;
// a policy file that does not parse keeps the running policy.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	policy := dir + "/policy.csv"
	if err := os.WriteFile(policy, []byte("p, root, *\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir, cfg.NodeName, cfg.Ports.RPC = t.TempDir(), "dev1", 0
	cfg.ACL.PolicyFile = policy
	a, err := New(cfg, Options{Dev: true, Logger: agLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Shutdown() }()
	if err := a.authz.Authorize("alice", "produce"); err == nil {
		t.Fatal("alice may produce before the policy says so")
	}
	next := a.Config()
	next.Log.Level = "debug"
	if err := os.WriteFile(policy, []byte("p, root, *\np, alice, produce\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(next); err != nil {
		t.Fatal(err)
	}
	if !a.logger.IsDebug() {
		t.Fatal("the log level did not change")
	}
	if err := a.authz.Authorize("alice", "produce"); err != nil {
		t.Fatalf("alice may produce after the reload: %v", err)
	}
	if err := os.WriteFile(policy, []byte("p, alice, fly\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(next); err == nil || !strings.Contains(err.Error(), "ACL policy") {
		t.Fatalf("a bad policy reloaded: %v", err)
	}
	if err := a.authz.Authorize("alice", "produce"); err != nil {
		t.Fatalf("a failed reload dropped the running policy: %v", err)
	}
}
