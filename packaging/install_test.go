package packaging_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bounds of the container test's waits.
const (
	execTimeout  = 2 * time.Minute // one command in the container
	startTimeout = 6 * time.Minute // systemctl start: above the unit's TimeoutStartSec=5min
	waitTimeout  = 60 * time.Second
)

// hostName is the container's host name: the node name postinstall makes
// the server certificate for, and the agent's default node_name.
const hostName = "loghouse-pkg-1"

const tlsDir = "/etc/loghouse/tls"

// cliEnv points the CLI at the packaged server as root.
var cliEnv = []string{
	"LOGHOUSE_ADDR=127.0.0.1:8400",
	"LOGHOUSE_CACERT=" + tlsDir + "/loghouse-agent-ca.pem",
	"LOGHOUSE_CLIENT_CERT=" + tlsDir + "/client-root.pem",
	"LOGHOUSE_CLIENT_KEY=" + tlsDir + "/client-root-key.pem",
}

// container is a Debian container running systemd as PID 1.
type container struct {
	t    *testing.T
	name string
}

// startContainer runs image with what systemd needs in Docker: its own
// /run and /tmp, the cgroup file system writable, and every capability
// but CAP_SYS_RESOURCE (--privileged asks for all, and an engine that
// lacks one, as in some sandboxes, refuses to start the container; the
// unit's LimitNOFILE is then clamped to the container's hard limit). No
// network: the test talks to the agent over the container's loopback.
func startContainer(t *testing.T, image string) *container {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	c := &container{t: t, name: "loghouse-pkgtest-" + hex.EncodeToString(b)}
	out, err := run(execTimeout, "docker", "run", "--detach", "--name", c.name, "--hostname", hostName,
		"--label", "loghouse-test=packaging", "--network", "none",
		"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		"--cgroupns", "host", "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
		"--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
		image)
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, diag := range [][]string{
				{"systemctl", "status", "--no-pager", "--full", "loghoused"},
				{"journalctl", "--no-pager", "-u", "loghoused", "-n", "300"},
				{"systemctl", "--failed", "--no-pager"},
			} {
				out, err := c.run(execTimeout, diag...)
				t.Logf("%s (%v):\n%s", strings.Join(diag, " "), err, out)
			}
		}
		if out, err := run(execTimeout, "docker", "rm", "--force", "--volumes", c.name); err != nil {
			t.Errorf("docker rm %s: %v\n%s", c.name, err, out)
		}
	})
	return c
}

// run runs a command in the container.
func (c *container) run(timeout time.Duration, args ...string) (string, error) {
	return run(timeout, "docker", append([]string{"exec", c.name}, args...)...)
}

// must runs a command in the container and fails the test if it fails.
func (c *container) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(execTimeout, args...)
	if err != nil {
		c.t.Fatalf("in the container: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// cli runs a loghoused client command as root, pointed at the server.
func (c *container) cli(args ...string) string {
	c.t.Helper()
	dargs := []string{"exec"}
	for _, e := range cliEnv {
		dargs = append(dargs, "--env", e)
	}
	dargs = append(dargs, c.name, "loghoused")
	out, err := run(execTimeout, "docker", append(dargs, args...)...)
	if err != nil {
		c.t.Fatalf("loghoused %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// show returns the service's properties, timestamps in UTC with
// microseconds.
func (c *container) show(props ...string) map[string]string {
	c.t.Helper()
	args := []string{"systemctl", "show", "--timestamp=us+utc"}
	for _, p := range props {
		args = append(args, "--property="+p)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(c.must(append(args, "loghoused.service")...)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		m[k] = v
	}
	return m
}

// journal is the service's journal as the agent wrote it.
func (c *container) journal() []string {
	c.t.Helper()
	return strings.Split(strings.TrimSpace(c.must("journalctl", "--no-pager", "--quiet", "-o", "cat", "-u", "loghoused")), "\n")
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s", what, waitTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *container) countLines(suffix string) int {
	n := 0
	for _, l := range c.journal() {
		if strings.HasSuffix(l, suffix) {
			n++
		}
	}
	return n
}

// hclogTime is the timestamp that starts each line the agent logs.
var hclogTime = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) \[`)

// checkReadyAfterLeader proves that the start job of the running process
// finished (READY=1) only after raft elected a leader: systemd's
// ActiveEnterTimestamp is not earlier than the agent's own log line for
// the election. With Type=simple the unit is active at once, about a
// second before the election, and this fails.
func (c *container) checkReadyAfterLeader() {
	c.t.Helper()
	const layout = "Mon 2006-01-02 15:04:05.000000 MST"
	p := c.show("ExecMainStartTimestamp", "ActiveEnterTimestamp", "StatusText")
	started, err1 := time.Parse(layout, p["ExecMainStartTimestamp"])
	active, err2 := time.Parse(layout, p["ActiveEnterTimestamp"])
	if err1 != nil || err2 != nil {
		c.t.Fatalf("timestamps %q: %v %v", p, err1, err2)
	}
	var leader time.Time
	waitFor(c.t, "the election in the journal", func() bool {
		for _, l := range c.journal() {
			m := hclogTime.FindStringSubmatch(l)
			if m == nil || !strings.Contains(l, "entering leader state") {
				continue
			}
			at, err := time.Parse("2006-01-02T15:04:05.000Z07:00", m[1])
			if err == nil && !at.Before(started.Truncate(time.Millisecond)) {
				leader = at
				return true
			}
		}
		return false
	})
	if active.Before(leader) {
		c.t.Errorf("the unit became active at %s, before the leader election at %s: READY=1 came too early",
			active.Format(time.StampMicro), leader.Format(time.StampMilli))
	}
	if p["StatusText"] == "" {
		c.t.Error("no STATUS= text once started")
	}
	c.t.Logf("started %s, leader %s, active %s, status %q", started.Format(time.StampMicro),
		leader.Format(time.StampMilli), active.Format(time.StampMicro), p["StatusText"])
}

// checkOpenFiles checks that LimitNOFILE=65536 applies, or as much of it
// as the container's own hard limit allows (systemd clamps it without
// CAP_SYS_RESOURCE).
func (c *container) checkOpenFiles() {
	c.t.Helper()
	openFiles := func(pid string) (soft, hard int) {
		for _, l := range strings.Split(c.must("cat", "/proc/"+pid+"/limits"), "\n") {
			if f := strings.Fields(strings.TrimPrefix(l, "Max open files")); len(f) == 3 && strings.HasPrefix(l, "Max open files") {
				s, err1 := strconv.Atoi(f[0])
				h, err2 := strconv.Atoi(f[1])
				if err1 == nil && err2 == nil {
					return s, h
				}
			}
		}
		c.t.Fatalf("no open files limit for pid %s", pid)
		return 0, 0
	}
	_, ceiling := openFiles("1")
	want := min(65536, ceiling)
	if soft, hard := openFiles(c.show("MainPID")["MainPID"]); soft != want || hard != want {
		c.t.Errorf("open files limit %d/%d, want %d (LimitNOFILE=65536, PID 1's hard limit %d)", soft, hard, want, ceiling)
	} else if want < 65536 {
		c.t.Logf("LimitNOFILE=65536 clamped to the container's hard limit %d", want)
	}
}

func TestDebInstallSystemd(t *testing.T) {
	deb, _ := packages(t)
	requireDocker(t)
	image := systemdImage(t)
	begin := time.Now()
	c := startContainer(t, image)

	step := func(s string) { t.Logf("== %s (%s)", s, time.Since(begin).Round(100*time.Millisecond)) }

	step("boot")
	// Until PID 1 has its socket, systemctl cannot connect; then the
	// state goes from "initializing"/"starting" to "running", or to
	// "degraded" if some unit failed in the container, fine for this test.
	state := ""
	waitFor(t, "systemd boots", func() bool {
		out, _ := c.run(execTimeout, "systemctl", "is-system-running") // non-zero until running; the state is in the output
		state = strings.TrimSpace(out)
		return state == "running" || state == "degraded"
	})
	if state == "degraded" {
		t.Logf("systemd is degraded:\n%s", c.must("systemctl", "--failed", "--no-pager"))
	}

	step("install")
	if out, err := run(execTimeout, "docker", "cp", deb, c.name+":/root/loghoused.deb"); err != nil {
		t.Fatalf("docker cp: %v\n%s", err, out)
	}
	out := c.must("dpkg", "-i", "/root/loghoused.deb")
	if !strings.Contains(out, "made a CA") {
		t.Errorf("first install did not make the certificates:\n%s", out)
	}
	checkInstalled(t, c)

	step("reinstall (the upgrade path) keeps the certificates")
	before := c.must("sh", "-c", "sha256sum "+tlsDir+"/*.pem")
	if out := c.must("dpkg", "-i", "/root/loghoused.deb"); strings.Contains(out, "made a CA") {
		t.Errorf("reinstall made new certificates:\n%s", out)
	}
	if after := c.must("sh", "-c", "sha256sum "+tlsDir+"/*.pem"); after != before {
		t.Errorf("reinstall changed the certificates:\n%s\nthen:\n%s", before, after)
	}

	step("start, then produce at once")
	if out, err := c.run(startTimeout, "systemctl", "start", "loghoused"); err != nil {
		t.Fatalf("systemctl start: %v\n%s", err, out)
	}
	if got := c.cli("produce", "hello", "world"); got != "0\n1\n" {
		t.Errorf("produce printed %q, want offsets 0 and 1", got)
	}
	c.checkReadyAfterLeader()
	c.checkOpenFiles()
	if got := c.cli("consume"); got != "hello\nworld\n" {
		t.Errorf("consume printed %q", got)
	}

	step("reload")
	pid := c.show("MainPID")["MainPID"]
	reloads := c.countLines("loghoused: reloaded")
	c.must("systemctl", "reload", "loghoused")
	waitFor(t, "the agent logs the reload", func() bool { return c.countLines("loghoused: reloaded") > reloads })
	waitFor(t, "the unit is running again", func() bool { return c.show("SubState")["SubState"] == "running" })
	if p := c.show("MainPID", "NRestarts"); p["MainPID"] != pid || p["NRestarts"] != "0" {
		t.Errorf("after reload: %v, want MainPID=%s and no restart", p, pid)
	}

	step("watchdog (WatchdogSec=2s in a drop-in), restart with data")
	c.must("sh", "-c", "mkdir -p /etc/systemd/system/loghoused.service.d && "+
		"printf '[Service]\\nWatchdogSec=2s\\n' >/etc/systemd/system/loghoused.service.d/50-test-watchdog.conf && "+
		"systemctl daemon-reload")
	if out, err := c.run(startTimeout, "systemctl", "restart", "loghoused"); err != nil {
		t.Fatalf("systemctl restart: %v\n%s", err, out)
	}
	c.checkReadyAfterLeader()
	pid = c.show("MainPID")["MainPID"]
	// Each WATCHDOG=1 moves WatchdogTimestamp; a watchdog kill would
	// change the PID or count a restart.
	var seen []int64
	waitFor(t, "three watchdog pings", func() bool {
		p := c.show("WatchdogTimestampMonotonic", "MainPID", "NRestarts")
		if p["MainPID"] != pid || p["NRestarts"] != "0" {
			t.Fatalf("the watchdog restarted the agent: %v (pid was %s)", p, pid)
		}
		ts, err := strconv.ParseInt(p["WatchdogTimestampMonotonic"], 10, 64)
		if err == nil && ts > 0 && (len(seen) == 0 || ts > seen[len(seen)-1]) {
			seen = append(seen, ts)
		}
		return len(seen) >= 3
	})
	if got := c.cli("produce", "after restart"); got != "2\n" {
		t.Errorf("produce printed %q, want offset 2", got)
	}
	if got := c.cli("consume"); got != "hello\nworld\nafter restart\n" {
		t.Errorf("consume after restart printed %q", got)
	}
	c.must("sh", "-c", "rm -r /etc/systemd/system/loghoused.service.d && systemctl daemon-reload")

	step("stop")
	if out, err := c.run(execTimeout, "systemctl", "stop", "loghoused"); err != nil {
		t.Fatalf("systemctl stop: %v\n%s", err, out)
	}
	p := c.show("ActiveState", "Result", "ExecMainStatus")
	if p["ActiveState"] != "inactive" || p["Result"] != "success" || p["ExecMainStatus"] != "0" {
		t.Errorf("after stop: %v, want inactive, success, status 0", p)
	}

	step("purge a running agent")
	if out, err := c.run(startTimeout, "systemctl", "start", "loghoused"); err != nil {
		t.Fatalf("systemctl start: %v\n%s", err, out)
	}
	c.must("dpkg", "--purge", "loghoused")
	if p := c.show("LoadState", "ActiveState"); p["LoadState"] != "not-found" || p["ActiveState"] != "inactive" {
		t.Errorf("after purge: %v, want not-found and inactive", p)
	}
	if out, err := c.run(execTimeout, "pgrep", "-x", "loghoused"); err == nil {
		t.Errorf("loghoused still runs after purge: %s", out)
	}
	if out, err := c.run(execTimeout, "test", "-e", tlsDir); err == nil {
		t.Errorf("purge left %s: %s", tlsDir, out)
	}
	c.must("test", "-d", "/var/lib/loghouse") // the data stays
	c.must("getent", "passwd", "loghouse")

	step("journal")
	if out := c.must("journalctl", "--no-pager", "--quiet", "-p", "err", "-u", "loghoused"); strings.TrimSpace(out) != "" {
		t.Errorf("error-priority journal entries:\n%s", out)
	}
	lines := c.journal()
	for _, l := range lines {
		if strings.Contains(l, "[ERROR]") {
			t.Errorf("error in the journal: %s", l)
		}
	}
	t.Logf("journal: %d lines, no errors", len(lines))
	step("done")
}

// checkInstalled checks the user, the files postinstall made and the
// installed unit.
func checkInstalled(t *testing.T, c *container) {
	t.Helper()
	pw := strings.Split(strings.TrimSpace(c.must("getent", "passwd", "loghouse")), ":")
	if len(pw) != 7 || pw[5] != "/var/lib/loghouse" || pw[6] != "/usr/sbin/nologin" {
		t.Errorf("user loghouse: %q, want home /var/lib/loghouse and shell /usr/sbin/nologin", pw)
	} else if uid, err := strconv.Atoi(pw[2]); err != nil || uid >= 1000 {
		t.Errorf("user loghouse has uid %s, want a system uid", pw[2])
	}
	want := map[string]string{
		"/etc/loghouse":                             "drwxr-x--- root loghouse",
		tlsDir:                                      "drwxr-x--- root loghouse",
		"/var/lib/loghouse":                         "drwxr-x--- loghouse loghouse",
		tlsDir + "/loghouse-agent-ca.pem":           "-rw-r--r-- root root",
		tlsDir + "/loghouse-agent-ca-key.pem":       "-rw------- root root",
		tlsDir + "/server-" + hostName + ".pem":     "-rw-r--r-- root root",
		tlsDir + "/server-" + hostName + "-key.pem": "-rw-r----- root loghouse",
		tlsDir + "/server.pem":                      "lrwxrwxrwx root root -> server-" + hostName + ".pem",
		tlsDir + "/server-key.pem":                  "lrwxrwxrwx root root -> server-" + hostName + "-key.pem",
		tlsDir + "/client-root.pem":                 "-rw-r--r-- root root",
		tlsDir + "/client-root-key.pem":             "-rw------- root root",
	}
	got := map[string]string{}
	out := c.must("sh", "-c", "stat -c '%A %U %G %N' /etc/loghouse /var/lib/loghouse "+tlsDir+" "+tlsDir+"/* "+tlsDir+"/.[!.]* 2>/dev/null; true")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) != 4 {
			t.Fatalf("stat line %q", line)
		}
		// %N quotes the name: 'name' or 'link' -> 'target'.
		name, target, link := strings.Cut(strings.ReplaceAll(f[3], "'", ""), " -> ")
		v := fmt.Sprintf("%s %s %s", f[0], f[1], f[2])
		if link {
			v += " -> " + target
		}
		got[name] = v
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %q, want %q", p, got[p], w)
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected %s (%s)", p, g)
		}
	}
	if out := c.must("systemd-analyze", "verify", "loghoused.service"); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify in the container is not clean:\n%s", out)
	}
	t.Logf("systemd-analyze security: %s", tail(c.must("systemd-analyze", "security", "--no-pager", "loghoused.service"), 1))
}
