package packaging_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// packages returns the .deb and .rpm in -dist, skipping the test without
// -dist.
func packages(t *testing.T) (deb, rpm string) {
	t.Helper()
	if *dist == "" {
		t.Skip("no -dist: `make package-test` builds the packages and runs these tests")
	}
	one := func(pattern string) string {
		m, err := filepath.Glob(filepath.Join(*dist, pattern))
		if err != nil || len(m) != 1 {
			t.Fatalf("want exactly one %s in %s, found %q (%v)", pattern, *dist, m, err)
		}
		return m[0]
	}
	return one("loghoused_*_amd64.deb"), one("loghoused-*-1.x86_64.rpm")
}

// fileEntry is one file a package holds.
type fileEntry struct {
	mode, owner, group string // "-rw-r-----", "root", "loghouse"
	config             bool   // a configuration file kept on upgrade when changed
}

// wantFiles is what both packages hold; unitDir is where the distribution
// keeps systemd units.
func wantFiles(unitDir string) map[string]fileEntry {
	return map[string]fileEntry{
		"/usr/bin/loghoused":                          {"-rwxr-xr-x", "root", "root", false},
		unitDir + "/loghoused.service":                {"-rw-r--r--", "root", "root", false},
		"/etc/loghouse":                               {"drwxr-x---", "root", "loghouse", false},
		"/etc/loghouse/tls":                           {"drwxr-x---", "root", "loghouse", false},
		"/etc/loghouse/config.hcl":                    {"-rw-r-----", "root", "loghouse", true},
		"/etc/loghouse/model.conf":                    {"-rw-r-----", "root", "loghouse", true},
		"/etc/loghouse/policy.csv":                    {"-rw-r-----", "root", "loghouse", true},
		"/var/lib/loghouse":                           {"drwxr-x---", "loghouse", "loghouse", false},
		"/usr/share/doc/loghoused/config.hcl.example": {"-rw-r--r--", "root", "root", false},
	}
}

// Where the packaged files come from in the repository.
var sources = map[string]string{
	"/etc/loghouse/config.hcl":                    "packaging/config.hcl",
	"/etc/loghouse/model.conf":                    "pkg/auth/model.conf",
	"/etc/loghouse/policy.csv":                    "pkg/auth/policy.csv",
	"/usr/share/doc/loghoused/config.hcl.example": "config.hcl.example",
	"loghoused.service":                           "systemd/loghoused.service",
}

// checkFiles compares a package's files with want. implicit are entries
// the format adds for parent directories (root-owned, 0755), allowed only
// as parents of wanted files.
func checkFiles(t *testing.T, got, want map[string]fileEntry) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s is missing", p)
			continue
		}
		if g != w {
			t.Errorf("%s: %+v, want %+v", p, g, w)
		}
	}
	for p, g := range got {
		if _, ok := want[p]; ok {
			continue
		}
		parent := false
		for w := range want {
			if strings.HasPrefix(w, p+"/") {
				parent = true
			}
		}
		if !parent || g != (fileEntry{"drwxr-xr-x", "root", "root", false}) {
			t.Errorf("unexpected entry %s %+v", p, g)
		}
	}
}

// checkSame fails unless the file at repository path src holds data.
func checkSame(t *testing.T, what, src string, data []byte) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(repo, src))
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != string(want) {
		t.Errorf("%s differs from %s", what, src)
	}
}

// dirModeFromUnit returns the unit's <kind>DirectoryMode as ls shows it.
func dirModeFromUnit(t *testing.T, kind string) string {
	t.Helper()
	v := parseUnit(t, unitPath)["Service"][kind+"DirectoryMode"]
	modes := map[string]string{"0750": "drwxr-x---", "0755": "drwxr-xr-x", "0700": "drwx------"}
	if len(v) != 1 || modes[v[0]] == "" {
		t.Fatalf("%sDirectoryMode = %q", kind, v)
	}
	return modes[v[0]]
}

var dpkgLine = regexp.MustCompile(`^([-dlrwxsStT]{10}) ([^/ ]+)/([^ ]+) +\d+ \S+ \S+ \./(.*?)(?: -> .*)?$`)

func TestDebContents(t *testing.T) {
	deb, _ := packages(t)
	_, err := exec.LookPath("dpkg-deb")
	need(t, "dpkg-deb", err)
	version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(deb), "loghoused_"), "_amd64.deb")

	t.Run("control", func(t *testing.T) {
		want := map[string]string{
			"Package": "loghoused", "Version": version, "Architecture": "amd64",
			"Pre-Depends": "passwd", "Depends": "procps", "Section": "database",
		}
		for field, v := range want {
			if got := strings.TrimSpace(mustRun(t, time.Minute, "dpkg-deb", "-f", deb, field)); got != v {
				t.Errorf("%s: %q, want %q", field, got, v)
			}
		}
	})

	t.Run("files", func(t *testing.T) {
		got := map[string]fileEntry{}
		conf := map[string]bool{}
		for _, f := range strings.Fields(mustRun(t, time.Minute, "dpkg-deb", "-I", deb, "conffiles")) {
			conf[f] = true
		}
		for _, line := range strings.Split(strings.TrimSpace(mustRun(t, time.Minute, "dpkg-deb", "-c", deb)), "\n") {
			m := dpkgLine.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("cannot parse dpkg-deb -c line %q", line)
			}
			p := "/" + strings.TrimSuffix(m[4], "/")
			if p == "/" {
				continue
			}
			got[p] = fileEntry{m[1], m[2], m[3], conf[p]}
			delete(conf, p)
		}
		if len(conf) > 0 {
			t.Errorf("conffiles not in the package: %v", conf)
		}
		want := wantFiles("/lib/systemd/system")
		checkFiles(t, got, want)
		// The unit's directory modes match the packaged directories, or
		// systemd warns about them at every start.
		if m := dirModeFromUnit(t, "State"); want["/var/lib/loghouse"].mode != m {
			t.Errorf("StateDirectoryMode is %s, the package's /var/lib/loghouse %s", m, want["/var/lib/loghouse"].mode)
		}
		if m := dirModeFromUnit(t, "Configuration"); want["/etc/loghouse"].mode != m {
			t.Errorf("ConfigurationDirectoryMode is %s, the package's /etc/loghouse %s", m, want["/etc/loghouse"].mode)
		}
	})

	t.Run("data", func(t *testing.T) {
		root := t.TempDir()
		mustRun(t, time.Minute, "dpkg-deb", "-x", deb, root)
		for dst, src := range sources {
			if dst == "loghoused.service" {
				dst = "/lib/systemd/system/loghoused.service"
			}
			data, err := os.ReadFile(filepath.Join(root, dst))
			if err != nil {
				t.Fatal(err)
			}
			checkSame(t, dst, src, data)
		}
		// CGO_ENABLED=0: a static binary has no interpreter or libraries.
		f, err := elf.Open(filepath.Join(root, "usr/bin/loghoused"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("/usr/bin/loghoused is dynamically linked (has PT_INTERP); build it with CGO_ENABLED=0")
			}
		}
		if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
			t.Errorf("/usr/bin/loghoused needs libraries %q (%v)", libs, err)
		}
	})

	t.Run("scripts", func(t *testing.T) {
		for control, src := range map[string]string{
			"preinst": "preinstall.sh", "postinst": "postinstall.sh", "prerm": "preremove.sh", "postrm": "postremove.sh",
		} {
			checkSame(t, control, path.Join("packaging/scripts", src), []byte(mustRun(t, time.Minute, "dpkg-deb", "-I", deb, control)))
		}
	})
}

func TestRPMContents(t *testing.T) {
	_, rpm := packages(t)
	_, err := exec.LookPath("rpm")
	need(t, "rpm (apt-get install rpm)", err)
	version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(rpm), "loghoused-"), "-1.x86_64.rpm")
	query := func(format string) string {
		t.Helper()
		return mustRun(t, time.Minute, "rpm", "-qp", "--nosignature", "--qf", format, rpm)
	}

	t.Run("header", func(t *testing.T) {
		if got, want := query("%{NAME} %{VERSION} %{RELEASE} %{ARCH}"), "loghoused "+version+" 1 x86_64"; got != want {
			t.Errorf("header %q, want %q", got, want)
		}
		var reqs []string
		for _, r := range strings.Split(strings.TrimSpace(mustRun(t, time.Minute, "rpm", "-qpR", "--nosignature", rpm)), "\n") {
			if !strings.HasPrefix(r, "rpmlib(") {
				reqs = append(reqs, strings.TrimSpace(r))
			}
		}
		slices.Sort(reqs)
		if want := []string{"shadow-utils", "util-linux"}; !slices.Equal(reqs, want) {
			t.Errorf("requires %q, want %q", reqs, want)
		}
	})

	t.Run("files", func(t *testing.T) {
		got := map[string]fileEntry{}
		out := query(`[%{FILEMODES:perms}|%{FILEUSERNAME}|%{FILEGROUPNAME}|%{FILEFLAGS:fflags}|%{FILENAMES}\n]`)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Split(line, "|")
			if len(f) != 5 {
				t.Fatalf("cannot parse rpm file line %q", line)
			}
			// c: %config; n: noreplace. Both or neither.
			config := strings.Contains(f[3], "c")
			if config != strings.Contains(f[3], "n") {
				t.Errorf("%s: flags %q, want %%config(noreplace) or neither", f[4], f[3])
			}
			got[f[4]] = fileEntry{f[0], f[1], f[2], config}
		}
		checkFiles(t, got, wantFiles("/usr/lib/systemd/system"))
	})

	t.Run("scripts", func(t *testing.T) {
		for tag, src := range map[string]string{
			"PREIN": "preinstall.sh", "POSTIN": "postinstall.sh", "PREUN": "preremove.sh", "POSTUN": "postremove.sh",
		} {
			if prog := query("%{" + tag + "PROG}"); prog != "/bin/sh" {
				t.Errorf("%s runs with %q, want /bin/sh", tag, prog)
			}
			checkSame(t, tag, path.Join("packaging/scripts", src), []byte(query("%{"+tag+"}")))
		}
	})
}
