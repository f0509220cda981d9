package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bbBuild builds the loghoused binary once per test.
func bbBuild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "loghoused")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func bbFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// bbAgent runs `loghoused agent -dev` and waits for its export lines.
type bbAgent struct {
	cmd *exec.Cmd
	env []string
	log *bytes.Buffer
}

func bbStart(t *testing.T, bin, dataDir string, port int) *bbAgent {
	t.Helper()
	cmd := exec.Command(bin, "agent", "-dev", "-data-dir", dataDir, "-rpc-port", fmt.Sprint(port), "-node", "dev1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &bbAgent{cmd: cmd, log: &logs}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill() // the test failed before stopping it; best effort
			_ = cmd.Wait()
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	for len(a.env) < 4 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("agent exited before printing its exports; logs:\n%s", logs.String())
			}
			if v, found := strings.CutPrefix(l, "export "); found {
				a.env = append(a.env, v)
			}
		case <-deadline:
			t.Fatalf("agent not ready in time; logs:\n%s", logs.String())
		}
	}
	go func() {
		for range lines { // drain
		}
	}()
	return a
}

func (a *bbAgent) stop(t *testing.T) {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent exited with %v; logs:\n%s", err, a.log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not stop on SIGTERM; logs:\n%s", a.log.String())
	}
	if !strings.Contains(a.log.String(), "agent stopped") {
		t.Fatalf("no orderly shutdown in the logs:\n%s", a.log.String())
	}
}

func (a *bbAgent) run(t *testing.T, bin, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), a.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// TestBinaryDevAgent is the black-box test of the built binary: agent -dev,
// produce, consume, SIGTERM, restart on the same data dir, records still
// there; then kill -9 and restart, records still there.
func TestBinaryDevAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := bbBuild(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	port := bbFreePort(t)
	a := bbStart(t, bin, dataDir, port)

	out, err := a.run(t, bin, "", "produce", "hello", "world")
	if err != nil || out != "0\n1\n" {
		t.Fatalf("produce args = %q, %v", out, err)
	}
	out, err = a.run(t, bin, "line one\nline two\nline three\n", "produce")
	if err != nil || out != "2\n3\n4\n" {
		t.Fatalf("produce stdin = %q, %v", out, err)
	}
	want := "hello\nworld\nline one\nline two\nline three\n"
	out, err = a.run(t, bin, "", "consume")
	if err != nil || out != want {
		t.Fatalf("consume = %q, %v; want %q", out, err, want)
	}
	out, err = a.run(t, bin, "", "consume", "-offset", "3", "-n", "1")
	if err != nil || out != "line two\n" {
		t.Fatalf("consume -offset 3 -n 1 = %q, %v", out, err)
	}
	out, err = a.run(t, bin, "", "servers")
	if err != nil || !strings.Contains(out, "dev1") || !strings.Contains(out, "true") {
		t.Fatalf("servers = %q, %v", out, err)
	}
	// Errors a script can rely on: a non-zero exit and the gRPC code.
	out, err = a.run(t, bin, "", "consume", "-offset", "99")
	if err == nil || !strings.Contains(out, "OutOfRange") {
		t.Fatalf("consume past the end = %q, %v; want an OutOfRange failure", out, err)
	}
	a.stop(t)

	a = bbStart(t, bin, dataDir, port)
	out, err = a.run(t, bin, "", "consume")
	if err != nil || out != want {
		t.Fatalf("consume after restart = %q, %v; want %q", out, err, want)
	}
	out, err = a.run(t, bin, "", "produce", "after restart")
	if err != nil || out != "5\n" {
		t.Fatalf("produce after restart = %q, %v", out, err)
	}

	// kill -9: every acknowledged record survives, with no duplicate, and
	// the node comes back without a re-bootstrap error.
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = a.cmd.Wait() // "signal: killed" is the expected exit
	a = bbStart(t, bin, dataDir, port)
	want += "after restart\n"
	out, err = a.run(t, bin, "", "consume")
	if err != nil || out != want {
		t.Fatalf("consume after kill -9 = %q, %v; want %q", out, err, want)
	}
	out, err = a.run(t, bin, "", "produce", "after kill")
	if err != nil || out != "6\n" {
		t.Fatalf("produce after kill -9 = %q, %v", out, err)
	}
	a.stop(t)
}
