package packaging_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// imageRecipe is everything the test image is made from; its hash is the
// image's tag, so a changed recipe builds a new image and an unchanged one
// is reused. Bump Rev to rebuild after a change the fields do not show.
var imageRecipe = struct {
	Suite, Variant, Mirror string
	Include                []string
	Changes                []string
	Rev                    int
}{
	Suite:   "bookworm",
	Variant: "minbase",
	Mirror:  "http://deb.debian.org/debian",
	// systemd as PID 1; dbus for systemctl; passwd and procps are the
	// package's (pre-)dependencies.
	Include: []string{"systemd", "systemd-sysv", "dbus", "passwd", "procps"},
	Changes: []string{"ENV container=docker", `CMD ["/sbin/init"]`},
	Rev:     1,
}

const imageRepo = "loghouse-test-systemd"

// debootstrapTimeout bounds the image build (about 1.5 minutes here).
const debootstrapTimeout = 20 * time.Minute

// requireDocker skips (or, with CI=true, fails) the test without a Docker
// engine.
func requireDocker(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("docker")
	if err == nil {
		var out string
		if out, err = run(time.Minute, "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
			err = fmt.Errorf("docker info: %w: %s", err, strings.TrimSpace(out))
		}
	}
	need(t, "Docker", err)
}

// systemdImage returns the tag of a Debian image that boots systemd,
// building it from a debootstrap root file system the first time.
func systemdImage(t *testing.T) string {
	t.Helper()
	js, err := json.Marshal(imageRecipe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(js)
	tag := imageRepo + ":" + hex.EncodeToString(sum[:])[:16]
	if _, err := run(time.Minute, "docker", "image", "inspect", tag); err == nil {
		t.Logf("using cached image %s", tag)
		return tag
	}
	_, err = exec.LookPath("debootstrap")
	need(t, "debootstrap, to build the test image (apt-get install debootstrap)", err)
	if os.Geteuid() != 0 {
		need(t, "root, to build the test image with debootstrap", errors.New("not running as root"))
	}
	t.Logf("building image %s with debootstrap from %s (minutes; cached afterwards)", tag, imageRecipe.Mirror)
	start := time.Now()
	dir, err := os.MkdirTemp("", "loghouse-rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	defer func() {
		// debootstrap mounts /proc and /sys in the target and unmounts
		// them when it ends; make sure, before deleting the tree.
		for _, m := range mountsUnder(t, rootfs) {
			if out, err := run(time.Minute, "umount", "-l", m); err != nil {
				t.Errorf("umount %s: %v: %s", m, err, out)
				return
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove the root file system: %v", err)
		}
	}()
	out, err := run(debootstrapTimeout, "debootstrap", "--variant="+imageRecipe.Variant,
		"--include="+strings.Join(imageRecipe.Include, ","), imageRecipe.Suite, rootfs, imageRecipe.Mirror)
	if err != nil {
		// Most likely offline: deb.debian.org is out of reach.
		need(t, "debootstrap "+imageRecipe.Suite+" from "+imageRecipe.Mirror+" (offline?)",
			fmt.Errorf("%w\n%s", err, tail(out, 20)))
	}
	// Leave the downloaded .debs out of the image.
	debs, _ := filepath.Glob(filepath.Join(rootfs, "var/cache/apt/archives/*.deb")) // the pattern is valid
	for _, d := range debs {
		if err := os.Remove(d); err != nil {
			t.Fatal(err)
		}
	}
	importArgs := []string{"import"}
	for _, c := range imageRecipe.Changes {
		importArgs = append(importArgs, "--change", c)
	}
	importArgs = append(importArgs, "-", tag)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tarCmd := exec.CommandContext(ctx, "tar", "-C", rootfs, "--numeric-owner", "-c", ".")
	importCmd := exec.CommandContext(ctx, "docker", importArgs...)
	pipe, err := tarCmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	importCmd.Stdin = pipe
	var tarErr, importOut strings.Builder
	tarCmd.Stderr = &tarErr
	importCmd.Stdout, importCmd.Stderr = &importOut, &importOut
	if err := tarCmd.Start(); err != nil {
		t.Fatal(err)
	}
	ierr := importCmd.Run()
	terr := tarCmd.Wait()
	if ierr != nil || terr != nil {
		t.Fatalf("tar | docker import: tar: %v %s; import: %v %s", terr, tarErr.String(), ierr, importOut.String())
	}
	t.Logf("built image %s in %s", tag, time.Since(start).Round(time.Second))
	return tag
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ms []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Field 5 is the mount point (octal escapes aside, which a
		// temporary directory's name does not need).
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			ms = append(ms, fields[4])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ms, func(a, b string) int { return len(b) - len(a) })
	return ms
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
