// Package pkg_test holds repository-wide checks: every package under pkg/
// has exactly one package doc, and the binary keeps out unwanted
// dependencies.
package pkg_test

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs fails if a package under pkg/ has no package doc comment,
// or has more than one (exactly one file documents each package).
func TestPackageDocs(t *testing.T) {
	checked := 0
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() || d.Name() == "testdata" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		ents, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		var docs []string
		name := ""
		for _, e := range ents {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(path, e.Name()), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				return err
			}
			name = f.Name.Name
			if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
				docs = append(docs, e.Name())
			}
		}
		if name == "" {
			return nil // no Go package here
		}
		checked++
		switch {
		case len(docs) == 0:
			t.Errorf("package %s (%s) has no package doc comment", name, path)
		case len(docs) > 1:
			t.Errorf("package %s (%s) has package docs in %d files %v; keep exactly one (doc.go)", name, path, len(docs), docs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("found no packages under pkg/")
	}
}

// TestBinaryDependencies keeps test-only and unwanted modules out of the
// loghoused binary.
func TestBinaryDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../loghoused").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	banned := []string{
		"testing",
		"github.com/stretchr/testify",
		"github.com/golangci/",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned only %d packages: %q", len(deps), out)
	}
	for _, dep := range deps {
		for _, b := range banned {
			if dep == b || strings.HasPrefix(dep, b) && strings.HasSuffix(b, "/") {
				t.Errorf("loghoused depends on %s", dep)
			}
		}
	}
}
