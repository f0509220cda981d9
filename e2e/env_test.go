package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables that steer the suite (doc.go describes them).
const (
	envSeed = "LOGHOUSE_E2E_SEED" // the random schedule's seed
	envLong = "LOGHOUSE_E2E_LONG" // "1" or a duration: soak mode
	envJoin = "LOGHOUSE_E2E_JOIN" // "static" or "gossip": how nodes form the cluster
	envKeep = "LOGHOUSE_E2E_ARTIFACTS"
	// envPartition set to "docker" makes partitions with docker network
	// disconnect even where iptables could be used.
	envPartition = "LOGHOUSE_E2E_PARTITION"
)

// Labels put on every container, network and image the suite makes, so
// that cleanup (and the sweep of leftovers from a killed run) finds them.
const (
	labelSuite = "loghouse-e2e"     // every resource: "1"
	labelPID   = "loghouse-e2e.pid" // the test process that made it
	labelRun   = "loghouse-e2e.run" // the cluster it belongs to
)

// Time limits of the harness's own steps. A fault test's workload and
// schedule have their own (see schedule.go).
const (
	dockerTimeout   = 2 * time.Minute  // one docker command
	buildTimeout    = 5 * time.Minute  // go build of loghoused
	engineTimeout   = 20 * time.Second // docker info
	readyTimeout    = 60 * time.Second // a cluster (or a node) becomes usable
	convergeTimeout = 60 * time.Second // every node holds the leader's log
)

// suite is what every Docker test shares: the engine's presence, the
// static binary, and the image made from it. It is set up once, by the
// first test that needs it.
type suite struct {
	bin   string // static loghoused on the host (certificates are made with it)
	image string // loghouse-e2e:<hash of bin>
	built bool   // this process built the image (and removes it at the end)
	// iptables tells whether partitions can be cut with iptables inside
	// the containers' network namespaces (root, nsenter and iptables on
	// the host); without it, partitions disconnect nodes from the network.
	iptables bool
}

var (
	suiteOnce sync.Once
	theSuite  *suite
	suiteErr  error
	suiteDir  string // the temporary directory of the binary
)

// errNoEngine means `docker info` failed: no Docker engine answers.
var errNoEngine = errors.New("e2e: no Docker engine answers")

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if theSuite != nil && theSuite.built {
		ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
		// A concurrent run may still use the image: docker refuses to
		// remove an image a container uses, which is what we want.
		if _, err := docker(ctx, "rmi", theSuite.image); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: keeping image %s: %v\n", theSuite.image, err)
		}
		cancel()
	}
	if suiteDir != "" {
		if err := os.RemoveAll(suiteDir); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		}
	}
	os.Exit(code)
}

// needDocker returns the shared suite, building it on first use. It skips
// the test when no engine answers, unless CI=true, where that is a
// failure; it also skips in -short mode.
func needDocker(t *testing.T) *suite {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the e2e tests build an image and start containers")
	}
	suiteOnce.Do(func() { theSuite, suiteErr = setUpSuite() })
	if suiteErr != nil {
		if errors.Is(suiteErr, errNoEngine) && os.Getenv("CI") != "true" {
			t.Skipf("%v (set CI=true to make this a failure)", suiteErr)
		}
		t.Fatalf("e2e set-up: %v", suiteErr)
	}
	return theSuite
}

func setUpSuite() (*suite, error) {
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	_, err := docker(ctx, "info", "--format", "{{.ServerVersion}}")
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoEngine, err)
	}
	sweepLeftovers()
	s := &suite{iptables: canUseIPTables()}
	if suiteDir, err = os.MkdirTemp("", "loghouse-e2e-bin-"); err != nil {
		return nil, err
	}
	s.bin = filepath.Join(suiteDir, "loghoused")
	if err := buildBinary(s.bin); err != nil {
		return nil, err
	}
	if err := s.buildImage(); err != nil {
		return nil, err
	}
	return s, nil
}

// buildBinary builds a static loghoused (no cgo: the image has no libc).
func buildBinary(out string) error {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return errors.New("e2e: cannot locate the source tree")
	}
	root := filepath.Dir(filepath.Dir(file))
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./loghoused")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("e2e: go build: %w\n%s", err, b)
	}
	return nil
}

// buildImage makes (or reuses) an image FROM scratch holding the binary,
// tagged with the binary's hash.
func (s *suite) buildImage() error {
	f, err := os.Open(s.bin)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return err
	}
	s.image = "loghouse-e2e:" + hex.EncodeToString(h.Sum(nil))[:12]
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	if _, err := docker(ctx, "image", "inspect", "--format", "{{.Id}}", s.image); err == nil {
		return nil // built before from the same binary
	}
	dir, err := os.MkdirTemp("", "loghouse-e2e-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Link(s.bin, filepath.Join(dir, "loghoused")); err != nil {
		b, rerr := os.ReadFile(s.bin)
		if rerr != nil {
			return rerr
		}
		if err := os.WriteFile(filepath.Join(dir, "loghoused"), b, 0o755); err != nil {
			return err
		}
	}
	dockerfile := "FROM scratch\nCOPY loghoused /loghoused\nENTRYPOINT [\"/loghoused\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	if _, err := docker(ctx, "build", "-q", "--label", labelSuite+"=1", "--label", labelPID+"="+strconv.Itoa(os.Getpid()), "-t", s.image, dir); err != nil {
		return fmt.Errorf("e2e: build image: %w", err)
	}
	s.built = true
	return nil
}

// docker runs the docker CLI and returns its standard output, trimmed.
// The error carries the command and its standard error.
func docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// sweepLeftovers removes containers and networks that a test process which
// no longer runs left behind (it was killed before its cleanup ran).
// Another live run's resources are left alone.
func sweepLeftovers() {
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	dead := func(kind string, args ...string) []string {
		out, err := docker(ctx, append(args, "--filter", "label="+labelSuite, "--format", "{{.ID}} {{.Label \""+labelPID+"\"}}")...)
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: list %s: %v\n", kind, err)
			return nil
		}
		var ids []string
		for _, line := range strings.Split(out, "\n") {
			id, pid, ok := strings.Cut(strings.TrimSpace(line), " ")
			if !ok {
				continue
			}
			if p, err := strconv.Atoi(pid); err == nil && p != os.Getpid() && !processAlive(p) {
				ids = append(ids, id)
			}
		}
		return ids
	}
	if ids := dead("containers", "ps", "-a"); len(ids) > 0 {
		if _, err := docker(ctx, append([]string{"rm", "-f"}, ids...)...); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: sweep containers: %v\n", err)
		}
	}
	if ids := dead("networks", "network", "ls"); len(ids) > 0 {
		if _, err := docker(ctx, append([]string{"network", "rm"}, ids...)...); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: sweep networks: %v\n", err)
		}
	}
	// docker images cannot print labels: inspect them.
	images, err := docker(ctx, "images", "-q", "--no-trunc", "--filter", "label="+labelSuite)
	if err != nil || images == "" {
		return
	}
	out, err := docker(ctx, append([]string{"image", "inspect", "-f", "{{.Id}} {{index .Config.Labels \"" + labelPID + "\"}}"}, strings.Fields(images)...)...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: sweep images: %v\n", err)
		return
	}
	for _, line := range strings.Split(out, "\n") {
		id, pid, _ := strings.Cut(strings.TrimSpace(line), " ")
		if p, err := strconv.Atoi(pid); err == nil && p != os.Getpid() && !processAlive(p) {
			if _, err := docker(ctx, "rmi", id); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: sweep images: %v\n", err)
			}
		}
	}
}

func processAlive(pid int) bool {
	_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
	return err == nil
}

// canUseIPTables reports whether partitions can be made with iptables in
// a container's network namespace: that needs root, nsenter and iptables.
func canUseIPTables() bool {
	if os.Geteuid() != 0 {
		return false
	}
	for _, c := range []string{"nsenter", "iptables"} {
		if _, err := exec.LookPath(c); err != nil {
			return false
		}
	}
	return true
}
