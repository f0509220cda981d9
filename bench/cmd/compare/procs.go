package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs owns every long-running child process (servers): it starts them
// in their own process group, with SIGKILL as their parent-death signal
// (so that a crash of this program takes them along), and stops them all
// at the end, also after a failure or an interrupt.
type procs struct {
	logDir       string
	startTimeout time.Duration
	stopTimeout  time.Duration

	mu  sync.Mutex
	all []*proc
}

// proc is one running child.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	ready   chan struct{} // closed when it has printed its ready line
	exited  chan struct{} // closed when Wait returns
	err     error         // Wait's result, after exited
	stopped sync.Once
}

// sysProcAttr puts a child in its own process group and kills it if this
// process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// start runs bin args as name, logging its output to logDir/name.log.
// Its ready channel is closed when a line of its standard output contains
// ready; see waitReady.
func (p *procs) start(name, ready, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(p.logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		_ = logFile.Close() // failing anyway
		return nil, err
	}
	fmt.Fprintf(logFile, "=== %s %s %q\n", time.Now().Format(time.RFC3339), bin, args)
	if err := cmd.Start(); err != nil {
		_ = logFile.Close() // failing anyway
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pr := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{}), ready: make(chan struct{})}
	p.mu.Lock()
	p.all = append(p.all, pr)
	p.mu.Unlock()
	copied := make(chan struct{})
	go func() {
		// Copies stdout into the log, noticing the ready line; ends
		// when the child closes stdout (exits).
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			if !seen && strings.Contains(sc.Text(), ready) {
				seen = true
				close(pr.ready)
			}
		}
	}()
	go func() {
		<-copied
		pr.err = cmd.Wait()
		_ = logFile.Close() // the log is best effort
		close(pr.exited)
	}()
	return pr, nil
}

// waitReady waits until every one of ps has printed its ready line, within
// startTimeout; it fails if one exits first or ctx ends.
func (p *procs) waitReady(ctx context.Context, ps ...*proc) error {
	t := time.NewTimer(p.startTimeout)
	defer t.Stop()
	for _, pr := range ps {
		select {
		case <-pr.ready:
		case <-pr.exited:
			return fmt.Errorf("%s exited before it was ready (%w); its log:\n%s", pr.name, pr.err, tail(pr.logPath))
		case <-t.C:
			return fmt.Errorf("%s not ready after %s; its log:\n%s", pr.name, p.startTimeout, tail(pr.logPath))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// stop sends SIGTERM to the child's process group, waits up to timeout,
// then sends SIGKILL. It is idempotent; it reports an exit other than by
// those signals or status 0.
func (pr *proc) stop(timeout time.Duration) error {
	var err error
	pr.stopped.Do(func() {
		pgid := -pr.cmd.Process.Pid
		_ = syscall.Kill(pgid, syscall.SIGTERM) // it may be gone already; Wait tells
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-pr.exited:
		case <-t.C:
			_ = syscall.Kill(pgid, syscall.SIGKILL) // as above
			<-pr.exited
			err = fmt.Errorf("%s did not stop within %s after SIGTERM; killed", pr.name, timeout)
			return
		}
		var ee *exec.ExitError
		if errors.As(pr.err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				return
			}
			err = fmt.Errorf("%s: %w; its log: %s", pr.name, pr.err, pr.logPath)
		}
	})
	return err
}

// stopAll stops every child still running, in reverse order of start.
func (p *procs) stopAll() error {
	p.mu.Lock()
	all := p.all
	p.all = nil
	p.mu.Unlock()
	var errs []error
	for i := len(all) - 1; i >= 0; i-- {
		errs = append(errs, all[i].stop(p.stopTimeout))
	}
	return errors.Join(errs...)
}

// stopThese stops the given children (one system's servers) and forgets
// them.
func (p *procs) stopThese(these []*proc) error {
	var errs []error
	for i := len(these) - 1; i >= 0; i-- {
		errs = append(errs, these[i].stop(p.stopTimeout))
	}
	p.mu.Lock()
	kept := p.all[:0]
	for _, pr := range p.all {
		stopped := false
		for _, t := range these {
			stopped = stopped || t == pr
		}
		if !stopped {
			kept = append(kept, pr)
		}
	}
	p.all = kept
	p.mu.Unlock()
	return errors.Join(errs...)
}

// runOutput runs a short-lived child to completion (ctx ends it) and
// returns its standard output; its standard error goes to logDir/log.
func runOutput(ctx context.Context, logPath string, env []string, bin string, args ...string) ([]byte, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }() // the log is best effort
	fmt.Fprintf(logFile, "=== %s %s %q\n", time.Now().Format(time.RFC3339), bin, args)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = logFile
	err = cmd.Run()
	fmt.Fprintf(logFile, "--- stdout:\n%s\n", out.String())
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w; log %s:\n%s", filepath.Base(bin), strings.Join(args, " "), err, logPath, tail(logPath))
	}
	return out.Bytes(), nil
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. (Another
// process could take one before it is used; the start then fails
// clearly.)
func freePorts(n int) ([]int, error) {
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			_ = ln.Close() // only probing
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
