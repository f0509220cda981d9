package packaging_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
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

// containerOpts is what differs between the test's containers.
type containerOpts struct {
	hostname string
	// network is the Docker network to attach to; "none": loopback only.
	network string
}

// randomName is prefix and 12 random hex digits: names of the test's
// containers and networks.
func randomName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// startContainer runs image with what systemd needs in Docker: its own
// /run and /tmp, the cgroup file system writable, and every capability
// but CAP_SYS_RESOURCE (--privileged asks for all, and an engine that
// lacks one, as in some sandboxes, refuses to start the container; the
// unit's LimitNOFILE is then clamped to the container's hard limit).
func startContainer(t *testing.T, image string, opts containerOpts) *container {
	t.Helper()
	c := &container{t: t, name: randomName(t, "loghouse-pkgtest-")}
	out, err := run(execTimeout, "docker", "run", "--detach", "--name", c.name, "--hostname", opts.hostname,
		"--label", "loghouse-test=packaging", "--network", opts.network,
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
				t.Logf("%s: %s (%v):\n%s", opts.hostname, strings.Join(diag, " "), err, out)
			}
		}
		if out, err := run(execTimeout, "docker", "rm", "--force", "--volumes", c.name); err != nil {
			t.Errorf("docker rm %s: %v\n%s", c.name, err, out)
		}
	})
	return c
}

// privateNetwork creates a Docker network without a way out (--internal)
// for the cluster test's containers, removed when the test ends (after
// the containers, which were started later).
func privateNetwork(t *testing.T) string {
	t.Helper()
	name := randomName(t, "loghouse-pkgtest-")
	mustRun(t, execTimeout, "docker", "network", "create", "--internal", "--label", "loghouse-test=packaging", name)
	t.Cleanup(func() {
		if out, err := run(execTimeout, "docker", "network", "rm", name); err != nil {
			t.Errorf("docker network rm %s: %v\n%s", name, err, out)
		}
	})
	return name
}

// waitBoot waits until systemd has booted. Until PID 1 has its socket,
// systemctl cannot connect; then the state goes from "initializing" or
// "starting" to "running", or to "degraded" if some unit failed in the
// container, fine for these tests.
func (c *container) waitBoot() {
	c.t.Helper()
	state := ""
	waitFor(c.t, "systemd boots", func() bool {
		out, _ := c.run(execTimeout, "systemctl", "is-system-running") // non-zero until running; the state is in the output
		state = strings.TrimSpace(out)
		return state == "running" || state == "degraded"
	})
	if state == "degraded" {
		c.t.Logf("systemd is degraded:\n%s", c.must("systemctl", "--failed", "--no-pager"))
	}
}

// ip is the container's address on its network.
func (c *container) ip() string {
	c.t.Helper()
	out := mustRun(c.t, execTimeout, "docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", c.name)
	ip := strings.TrimSpace(out)
	if net.ParseIP(ip) == nil {
		c.t.Fatalf("container %s has no single IP address: %q", c.name, out)
	}
	return ip
}

// copyIn copies a host file or directory into the container.
func (c *container) copyIn(src, dst string) {
	c.t.Helper()
	mustRun(c.t, execTimeout, "docker", "cp", src, c.name+":"+dst)
}

// provisionDir holds the Vagrant testbed's provisioning scripts, which
// the container tests run as the VMs do, from guestProvision.
var provisionDir = filepath.Join(repo, "vagrant", "provision")

const guestProvision = "/root/provision"

// provision runs one of the provisioning scripts in the container (copied
// in by copyIn(provisionDir, guestProvision)) and returns its output.
func (c *container) provision(timeout time.Duration, script string, args ...string) string {
	c.t.Helper()
	out, err := c.run(timeout, append([]string{guestProvision + "/" + script}, args...)...)
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
	c.t.Logf("%s %s:\n%s", script, strings.Join(args, " "), strings.TrimRight(out, "\n"))
	return out
}

// smokeSection is what smoke.sh printed under its "== COMMAND" line for the
// first command that starts with prefix, or "" if none did.
func smokeSection(out, prefix string) string {
	var b strings.Builder
	in := false
	for _, l := range strings.SplitAfter(out, "\n") {
		switch {
		case strings.HasPrefix(l, "== "):
			if in {
				return b.String()
			}
			in = strings.HasPrefix(l, "== "+prefix)
		case strings.HasPrefix(l, "smoke.sh: "):
			if in {
				return b.String()
			}
		case in:
			b.WriteString(l)
		}
	}
	return b.String()
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

// TestDebInstallSystemd installs the .deb in a container running systemd
// with the Vagrant testbed's install-loghouse.sh, checks it with its
// smoke.sh, and then takes the agent through reinstall, reload, watchdog,
// restart, stop and purge.
func TestDebInstallSystemd(t *testing.T) {
	deb, _ := packages(t)
	requireDocker(t)
	image := systemdImage(t)
	begin := time.Now()
	// No network: the test talks to the agent over the container's
	// loopback.
	c := startContainer(t, image, containerOpts{hostname: hostName, network: "none"})

	step := func(s string) { t.Logf("== %s (%s)", s, time.Since(begin).Round(100*time.Millisecond)) }

	step("boot")
	c.waitBoot()

	step("install-loghouse.sh: install and start, then smoke.sh at once")
	c.copyIn(deb, "/root/loghoused.deb")
	c.copyIn(provisionDir, guestProvision)
	out := c.provision(startTimeout, "install-loghouse.sh", "/root/loghoused.deb")
	if !strings.Contains(out, "made a CA") {
		t.Errorf("first install did not make the certificates:\n%s", out)
	}
	// smoke.sh asks once (-wait 0 by default): a server that said it
	// was ready must answer with a leader.
	smoke := c.provision(execTimeout, "smoke.sh", "hello", "world")
	if got := smokeSection(smoke, "loghoused produce"); got != "0\n1\n" {
		t.Errorf("produce printed %q, want offsets 0 and 1", got)
	}
	c.checkReadyAfterLeader()
	c.checkOpenFiles()
	if got := c.cli("consume"); got != "hello\nworld\n" {
		t.Errorf("consume printed %q", got)
	}
	checkInstalled(t, c)

	step("install-loghouse.sh again (the upgrade path) keeps the certificates and the running agent")
	before := c.must("sh", "-c", "sha256sum "+tlsDir+"/*.pem")
	pid := c.show("MainPID")["MainPID"]
	if out := c.provision(startTimeout, "install-loghouse.sh", "/root/loghoused.deb"); strings.Contains(out, "made a CA") {
		t.Errorf("reinstall made new certificates:\n%s", out)
	}
	if after := c.must("sh", "-c", "sha256sum "+tlsDir+"/*.pem"); after != before {
		t.Errorf("reinstall changed the certificates:\n%s\nthen:\n%s", before, after)
	}
	if p := c.show("MainPID", "NRestarts", "ActiveState"); p["MainPID"] != pid || p["NRestarts"] != "0" || p["ActiveState"] != "active" {
		t.Errorf("after reinstall: %v, want the agent still running as MainPID=%s", p, pid)
	}

	step("reload")
	pid = c.show("MainPID")["MainPID"]
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

	step("configure-loghouse.sh refuses a server with a cluster of its own")
	c.provision(execTimeout, "make-cluster-secrets.sh", "/root/cluster", hostName+"=127.0.0.1")
	config := c.must("cat", "/etc/loghouse/config.hcl")
	if out, err := c.run(execTimeout, guestProvision+"/configure-loghouse.sh", "-secrets", "/root/cluster", hostName, "127.0.0.1"); err == nil || !strings.Contains(out, "empty /var/lib/loghouse") {
		t.Errorf("configure-loghouse.sh on a server with raft state: %v, want it refused:\n%s", err, out)
	}
	if got := c.must("cat", "/etc/loghouse/config.hcl"); got != config {
		t.Errorf("the refused configure-loghouse.sh changed config.hcl:\n%s", got)
	}
	if after := c.must("sh", "-c", "sha256sum "+tlsDir+"/*.pem"); after != before {
		t.Errorf("the refused configure-loghouse.sh changed the certificates:\n%s\nthen:\n%s", before, after)
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

// TestDebClusterSystemd provisions three containers running systemd, on a
// private network, as the Vagrant testbed provisions its VMs (without
// Consul, which needs the Internet): install-loghouse.sh -no-start,
// make-cluster-secrets.sh in the first (the Vagrantfile runs it on the
// host), configure-loghouse.sh with the others' addresses, and smoke.sh,
// which must see three voters. Then configuring a node again changes
// nothing, and the cluster serves with one server stopped.
func TestDebClusterSystemd(t *testing.T) {
	deb, _ := packages(t)
	requireDocker(t)
	image := systemdImage(t)
	begin := time.Now()
	step := func(s string) { t.Logf("== %s (%s)", s, time.Since(begin).Round(100*time.Millisecond)) }

	step("boot")
	network := privateNetwork(t)
	names := []string{"node1", "node2", "node3"}
	nodes := make([]*container, len(names))
	for i, name := range names {
		nodes[i] = startContainer(t, image, containerOpts{hostname: name, network: network})
	}
	// Docker assigns the addresses; they are known before anything is
	// configured, as the Vagrantfile's static ones are.
	ips := make([]string, len(nodes))
	pairs := make([]string, len(nodes))
	addrs := make([]string, len(nodes))
	for i, c := range nodes {
		c.waitBoot()
		ips[i] = c.ip()
		pairs[i] = names[i] + "=" + ips[i]
		addrs[i] = net.JoinHostPort(ips[i], "8400")
	}
	t.Logf("nodes: %s", strings.Join(pairs, " "))

	step("install-loghouse.sh -no-start")
	for _, c := range nodes {
		c.copyIn(deb, "/root/loghoused.deb")
		c.copyIn(provisionDir, guestProvision)
		c.provision(execTimeout, "install-loghouse.sh", "-no-start", "/root/loghoused.deb")
		if p := c.show("ActiveState", "UnitFileState"); p["ActiveState"] != "inactive" || p["UnitFileState"] != "disabled" {
			t.Errorf("after install -no-start: %v, want inactive and disabled", p)
		}
	}

	step("make-cluster-secrets.sh, shared with the others")
	nodes[0].provision(execTimeout, "make-cluster-secrets.sh", append([]string{"/root/cluster"}, pairs...)...)
	shared := filepath.Join(t.TempDir(), "cluster")
	mustRun(t, execTimeout, "docker", "cp", nodes[0].name+":/root/cluster", shared)
	for _, c := range nodes[1:] {
		c.copyIn(shared, "/root/cluster")
	}

	step("configure-loghouse.sh")
	configure := func(i int) string {
		args := []string{"-secrets", "/root/cluster", names[i], ips[i]}
		for j, ip := range ips {
			if j != i {
				args = append(args, ip)
			}
		}
		return nodes[i].provision(execTimeout, "configure-loghouse.sh", args...)
	}
	for i := range nodes {
		if out := configure(i); !strings.Contains(out, "loghoused starting") {
			t.Errorf("%s: configure-loghouse.sh did not start the agent:\n%s", names[i], out)
		}
	}

	step("smoke.sh: three voters")
	out := nodes[0].provision(startTimeout, "smoke.sh", "-voters", "3", "-wait", "120", "-addr", strings.Join(addrs, ","), "three", "servers")
	checkPeers(t, smokeSection(out, "loghoused operator raft list-peers"), names, addrs)
	members := smokeSection(out, "loghoused members")
	for i, name := range names {
		if !regexp.MustCompile(`(?m)^` + name + `\s+\S+\s+` + regexp.QuoteMeta(addrs[i]) + `\s+alive\s+server\s*$`).MatchString(members) {
			t.Errorf("members has no alive server %s at %s:\n%s", name, addrs[i], members)
		}
	}

	// The cluster's certificates replaced the package's own, without the
	// CA key; root's login shells find the cluster.
	wantTLS := "client-root-key.pem client-root.pem loghouse-agent-ca.pem server-key.pem server-node1-key.pem server-node1.pem server.pem"
	if got := strings.Join(strings.Fields(nodes[0].must("ls", "-A", tlsDir)), " "); got != wantTLS {
		t.Errorf("%s holds %s, want %s", tlsDir, got, wantTLS)
	}
	nodes[0].must("cmp", "/root/cluster/loghouse-agent-ca.pem", tlsDir+"/loghouse-agent-ca.pem")
	if out := nodes[0].must("sh", "-lc", "loghoused servers"); strings.Count(out, ":8400") != len(nodes) {
		t.Errorf("loghoused servers in a login shell (/etc/profile.d/loghouse-cli.sh):\n%s", out)
	}

	step("configure-loghouse.sh again changes nothing")
	pid := nodes[1].show("MainPID")["MainPID"]
	if out := configure(1); !strings.Contains(out, "running, unchanged") {
		t.Errorf("configuring again:\n%s\nwant the agent left running, unchanged", out)
	}
	if p := nodes[1].show("MainPID", "NRestarts"); p["MainPID"] != pid || p["NRestarts"] != "0" {
		t.Errorf("after configuring again: %v, want MainPID=%s and no restart", p, pid)
	}

	// Before a server stops: raft logs its failed heartbeats to it as
	// errors.
	step("journals: the cluster formed without errors")
	for i, c := range nodes {
		for _, l := range c.journal() {
			if strings.Contains(l, "[ERROR]") {
				t.Errorf("%s: error in the journal: %s", names[i], l)
			}
		}
	}

	step("node3 stopped: the others serve")
	nodes[2].must("systemctl", "stop", "loghoused")
	out = nodes[1].provision(startTimeout, "smoke.sh", "-voters", "3", "-wait", "60", "-addr", strings.Join(addrs[:2], ","), "node3", "down")
	if got := smokeSection(out, "loghoused produce"); got != "2\n3\n" {
		t.Errorf("produce printed %q, want offsets 2 and 3", got)
	}

	step("done")
}

// checkPeers checks list-peers' table: every server a voter at its
// address, one of them the leader.
func checkPeers(t *testing.T, table string, names, addrs []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != len(names)+1 {
		t.Fatalf("list-peers printed %d servers, want %d:\n%s", len(lines)-1, len(names), table)
	}
	got := map[string][]string{}
	leaders := 0
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			t.Fatalf("list-peers line %q", l)
		}
		got[f[0]] = f[1:]
		if f[2] == "leader" {
			leaders++
		}
	}
	for i, name := range names {
		if g := got[name]; len(g) != 3 || g[0] != addrs[i] || g[2] != "true" {
			t.Errorf("list-peers: %s is %q, want a voter at %s", name, g, addrs[i])
		}
	}
	if leaders != 1 {
		t.Errorf("list-peers shows %d leaders:\n%s", leaders, table)
	}
}
