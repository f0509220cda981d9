// Package vagrant_test checks the Vagrant testbed without starting a VM:
// the provisioning scripts in provision/ (executable, POSIX sh, sh -n and
// shellcheck clean), that the Vagrantfile runs exactly those scripts, and
// `vagrant validate`. The scripts themselves run in the container tests of
// ../packaging (`make package-test`), which provision a Debian container
// running systemd, and a cluster of three, with them.
//
// A missing shellcheck or vagrant skips its test, except with CI=true,
// where it fails it. Debian 12 ships both (apt-get install shellcheck
// vagrant; vagrant-libvirt, which vagrant recommends, lets `vagrant
// validate` check the provider settings too).
package vagrant_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const vagrantfile = "Vagrantfile"

// commandTimeout bounds each tool the tests run (vagrant takes a second or
// two to start).
const commandTimeout = 2 * time.Minute

// need skips the test when err (a missing tool) is set, or fails it under
// CI=true.
func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %v (required with CI=true)", what, err)
	}
	t.Skipf("%s: %v", what, err)
}

// run runs a command in dir with env added to the environment and returns
// its combined output.
func run(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	return string(out), err
}

// scripts lists provision/*.sh.
func scripts(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join("provision", "*.sh"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no provision/*.sh (%v)", err)
	}
	return m
}

// TestScripts checks each provisioning script: executable, a POSIX sh
// script, syntax (sh -n) and shellcheck.
func TestScripts(t *testing.T) {
	_, shellcheckErr := exec.LookPath("shellcheck")
	for _, path := range scripts(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o111 == 0 {
				t.Errorf("%s is not executable (mode %v): vagrant and the container test run it directly", path, fi.Mode())
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if first, _, _ := strings.Cut(string(b), "\n"); first != "#!/bin/sh" {
				t.Errorf("%s starts with %q, want #!/bin/sh", path, first)
			}
			if !strings.Contains(string(b), "\nset -eu\n") {
				t.Errorf("%s does not set -eu", path)
			}
			if out, err := run(t, ".", nil, "sh", "-n", path); err != nil {
				t.Errorf("sh -n %s: %v\n%s", path, err, out)
			}
			need(t, "shellcheck (apt-get install shellcheck)", shellcheckErr)
			if out, err := run(t, ".", nil, "shellcheck", "--shell=sh", path); err != nil {
				t.Errorf("shellcheck %s: %v\n%s", path, err, out)
			}
		})
	}
}

// scriptRef is a quoted path under provision/ in the Vagrantfile: a
// provisioner's path: or the script its trigger runs on the host.
var scriptRef = regexp.MustCompile(`"(provision/[^"]*)"`)

// TestVagrantfileScripts checks that the Vagrantfile runs only scripts
// that exist, and every one of them.
func TestVagrantfileScripts(t *testing.T) {
	b, err := os.ReadFile(vagrantfile)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, m := range scriptRef.FindAllStringSubmatch(string(b), -1) {
		refs = append(refs, filepath.FromSlash(m[1]))
	}
	if len(refs) == 0 {
		t.Fatalf("%s names no provision/ script", vagrantfile)
	}
	for _, ref := range refs {
		if fi, err := os.Stat(ref); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s runs %s, which is not a file: %v", vagrantfile, ref, err)
		}
	}
	for _, s := range scripts(t) {
		if !slices.Contains(refs, s) {
			t.Errorf("%s is not run by %s", s, vagrantfile)
		}
	}
}

// TestVagrantValidate runs `vagrant validate`: first without the provider
// blocks (--ignore-provider), which needs no provider; then with them,
// which needs a usable one (vagrant-libvirt, or VirtualBox), and is
// skipped, with a log line, where there is none. Vagrant keeps its state
// in temporary directories, not in ~/.vagrant.d or .vagrant/ here.
func TestVagrantValidate(t *testing.T) {
	_, err := exec.LookPath("vagrant")
	need(t, "vagrant (apt-get install vagrant)", err)
	env := []string{
		"VAGRANT_HOME=" + t.TempDir(),
		"VAGRANT_DOTFILE_PATH=" + t.TempDir(),
		"VAGRANT_CHECKPOINT_DISABLE=1",
	}
	if out, err := run(t, ".", env, "vagrant", "validate", "--no-color", "--ignore-provider"); err != nil {
		t.Fatalf("vagrant validate --ignore-provider: %v\n%s", err, out)
	}
	out, err := run(t, ".", env, "vagrant", "validate", "--no-color")
	switch {
	case err != nil && strings.Contains(out, "No usable default provider"):
		t.Logf("no usable Vagrant provider here: the provider blocks were not validated\n%s", out)
	case err != nil:
		t.Fatalf("vagrant validate: %v\n%s", err, out)
	default:
		t.Logf("vagrant validate: %s", strings.TrimSpace(out))
	}
}
