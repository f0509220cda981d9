// Package packaging_test checks what ships to hosts: the systemd unit
// (../systemd/loghoused.service), the maintainer scripts and default
// configuration in this directory, the .deb and .rpm that `make package`
// builds from nfpm.yaml, and, in a Debian container that runs systemd, that
// the .deb installs, starts (ready only once it serves), serves the CLI,
// reloads, feeds the watchdog, stops and purges cleanly.
//
// The unit, script and configuration checks always run. The package checks
// need the packages: `make package-test` builds them and runs
//
//	go test -v ./packaging -args -dist=DIR
//
// The container test needs Docker, and the first time root and debootstrap
// to build its image from deb.debian.org (cached under a tag that hashes the
// recipe; see image_test.go). A missing tool skips a test, except with
// CI=true, where it fails the test.
package packaging_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loghouse/loghouse/pkg/auth"
	"github.com/loghouse/loghouse/pkg/config"
)

var dist = flag.String("dist", "", "directory holding the packages `make package` built; empty: skip the package tests")

// repo is the repository root, relative to this package's directory.
const repo = ".."

// ci reports whether missing tools are failures rather than skips.
func ci() bool { return os.Getenv("CI") == "true" }

// need skips the test when err (a missing tool or service) is set, or
// fails it under CI=true.
func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if ci() {
		t.Fatalf("%s: %v (required with CI=true)", what, err)
	}
	t.Skipf("%s: %v", what, err)
}

// run runs a command, bounded by timeout, and returns its combined output.
func run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	return string(out), err
}

// mustRun is run that fails the test on error.
func mustRun(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := run(timeout, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// unitFile is a parsed systemd unit: section -> key -> values in order (a
// key may repeat).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

var unitPath = filepath.Join(repo, "systemd", "loghoused.service")

func TestUnitFile(t *testing.T) {
	u := parseUnit(t, unitPath)
	// Each key must appear once with exactly this value.
	want := map[string]map[string]string{
		"Unit": {"After": "network-online.target", "Wants": "network-online.target"},
		"Service": {
			"Type":                       "notify",
			"NotifyAccess":               "main",
			"User":                       "loghouse",
			"Group":                      "loghouse",
			"ExecStart":                  "/usr/bin/loghoused agent -config=/etc/loghouse/config.hcl",
			"ExecReload":                 "/bin/kill -HUP $MAINPID",
			"Restart":                    "on-failure",
			"TimeoutStartSec":            "5min",
			"KillSignal":                 "SIGTERM",
			"TimeoutStopSec":             "60s",
			"WatchdogSec":                "30s",
			"LimitNOFILE":                "65536",
			"StateDirectory":             "loghouse",
			"StateDirectoryMode":         "0750",
			"ConfigurationDirectory":     "loghouse",
			"ConfigurationDirectoryMode": "0750",
			"NoNewPrivileges":            "yes",
			"CapabilityBoundingSet":      "",
			"AmbientCapabilities":        "",
			"ProtectSystem":              "strict",
			"ReadWritePaths":             "/var/lib/loghouse",
			"ProtectHome":                "yes",
			"PrivateTmp":                 "yes",
			"PrivateDevices":             "yes",
			"ProtectKernelTunables":      "yes",
			"ProtectKernelModules":       "yes",
			"ProtectKernelLogs":          "yes",
			"ProtectControlGroups":       "yes",
			"RestrictAddressFamilies":    "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
			"RestrictNamespaces":         "yes",
			"LockPersonality":            "yes",
			"MemoryDenyWriteExecute":     "yes",
			"SystemCallArchitectures":    "native",
		},
		"Install": {"WantedBy": "multi-user.target"},
	}
	for section, keys := range want {
		for k, v := range keys {
			got := u[section][k]
			if len(got) != 1 || got[0] != v {
				t.Errorf("[%s] %s = %q, want exactly %q", section, k, got, v)
			}
		}
	}
	if got := u["Service"]["SystemCallFilter"]; !slices.Contains(got, "@system-service") {
		t.Errorf("[Service] SystemCallFilter = %q, want @system-service among them", got)
	}
}

// TestUnitVerify runs systemd-analyze verify on the unit in a scratch root
// holding the host's systemd units, a stand-in /usr/bin/loghoused and
// /bin/kill (verify checks that ExecStart and ExecReload are executable).
// Any output (a warning about an unknown or malformed setting) fails it.
func TestUnitVerify(t *testing.T) {
	_, err := exec.LookPath("systemd-analyze")
	need(t, "systemd-analyze (apt-get install systemd)", err)
	hostUnits := ""
	for _, d := range []string{"/lib/systemd/system", "/usr/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "sysinit.target")); err == nil {
			hostUnits = d
			break
		}
	}
	if hostUnits == "" {
		need(t, "systemd's units", errors.New("no sysinit.target in /lib/systemd/system or /usr/lib/systemd/system"))
	}
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "bin", "lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, time.Minute, "cp", "-a", hostUnits, filepath.Join(root, "lib/systemd/system"))
	for _, exe := range []string{"usr/bin/loghoused", "bin/kill"} {
		if err := os.WriteFile(filepath.Join(root, exe), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "lib/systemd/system/loghoused.service"), unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, time.Minute, "systemd-analyze", "verify", "--man=no", "--root="+root, "loghoused.service")
	if strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify is not clean:\n%s", out)
	}
}

var scripts = []string{"preinstall.sh", "postinstall.sh", "preremove.sh", "postremove.sh"}

// TestScripts checks the maintainer scripts' syntax with sh -n, and with
// shellcheck where it is installed.
func TestScripts(t *testing.T) {
	_, shellcheckErr := exec.LookPath("shellcheck")
	for _, s := range scripts {
		t.Run(s, func(t *testing.T) {
			path := filepath.Join("scripts", s)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o111 == 0 {
				t.Errorf("%s is not executable (mode %v)", path, fi.Mode())
			}
			mustRun(t, time.Minute, "sh", "-n", path)
			if shellcheckErr == nil {
				mustRun(t, time.Minute, "shellcheck", "--shell=sh", path)
			}
		})
	}
}

// TestDefaultConfig loads the packaged config.hcl, ACL model and policy as
// the agent would.
func TestDefaultConfig(t *testing.T) {
	cfg := config.Default()
	if err := cfg.LoadFile("config.hcl"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(false); err != nil {
		t.Fatal(err)
	}
	if cfg.BootstrapExpect != 1 || cfg.BindAddr != "127.0.0.1" || cfg.DataDir != "/var/lib/loghouse" {
		t.Errorf("bootstrap_expect=%d bind_addr=%q data_dir=%q, want a lone server on 127.0.0.1 in /var/lib/loghouse",
			cfg.BootstrapExpect, cfg.BindAddr, cfg.DataDir)
	}
	wantTLS := config.TLS{
		CAFile:   "/etc/loghouse/tls/loghouse-agent-ca.pem",
		CertFile: "/etc/loghouse/tls/server.pem",
		KeyFile:  "/etc/loghouse/tls/server-key.pem",
	}
	if cfg.TLS != wantTLS {
		t.Errorf("tls = %+v, want the files postinstall makes: %+v", cfg.TLS, wantTLS)
	}
	if cfg.ACL.ModelFile != "/etc/loghouse/model.conf" || cfg.ACL.PolicyFile != "/etc/loghouse/policy.csv" {
		t.Errorf("acl = %+v, want the packaged model.conf and policy.csv", cfg.ACL)
	}
	if _, err := auth.New(filepath.Join(repo, "pkg/auth/model.conf"), filepath.Join(repo, "pkg/auth/policy.csv"), nil); err != nil {
		t.Errorf("the packaged ACL files do not load: %v", err)
	}
}
