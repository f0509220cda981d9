package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// testLogger routes the package's logs to t.Log.
func testLogger(t testing.TB) hclog.Logger {
	t.Helper()
	return hclog.New(&hclog.LoggerOptions{Name: "auth", Level: hclog.Debug, Output: tbWriter{t}})
}

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// writeFile replaces dir/name with text, atomically (temp file + rename),
// and returns its path.
func writeFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// newAuthorizer returns an Authorizer for the embedded model and the given
// policy text, and the policy file's path.
func newAuthorizer(t testing.TB, policy string) (*Authorizer, string) {
	t.Helper()
	path := writeFile(t, t.TempDir(), "policy.csv", policy)
	a, err := New("", path, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a, path
}

// decision is one Authorize question and whether it must be allowed.
type decision struct {
	subject, action string
	allow           bool
}

// checkDecisions asks a every question. An allowed answer must be nil; a
// denied one a *DeniedError for that subject and action.
func checkDecisions(t *testing.T, a *Authorizer, ds []decision) {
	t.Helper()
	for _, d := range ds {
		err := a.Authorize(d.subject, d.action)
		if d.allow {
			if err != nil {
				t.Errorf("Authorize(%q, %q) = %v, want allowed", d.subject, d.action, err)
			}
			continue
		}
		de, ok := errors.AsType[*DeniedError](err)
		if !ok || !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("Authorize(%q, %q) = %v, want a *DeniedError wrapping ErrPermissionDenied", d.subject, d.action, err)
			continue
		}
		if de.Subject != d.subject || de.Action != d.action {
			t.Errorf("Authorize(%q, %q): DeniedError names %q, %q", d.subject, d.action, de.Subject, de.Action)
		}
	}
}

// allActions are the actions Authorize decides.
var allActions = []string{ActionProduce, ActionConsume, ActionAdmin}
