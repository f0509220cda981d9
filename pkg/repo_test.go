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
// loghoused binary, and the testing package out of our own non-test code.
// (hashicorp/raft imports testing for its own test helpers; that one is
// outside our control.)
func TestBinaryDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \",\"}}", "../loghoused").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	banned := []string{
		"github.com/stretchr/testify/",
		"github.com/golangci/",
		"github.com/anishathalye/porcupine",
		"github.com/hashicorp/raft-wal",
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 10 {
		t.Fatalf("go list returned only %d packages: %q", len(lines), out)
	}
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, b := range banned {
			if strings.HasPrefix(pkg, b) || pkg == strings.TrimSuffix(b, "/") {
				t.Errorf("loghoused depends on %s", pkg)
			}
		}
		if strings.HasPrefix(pkg, "github.com/loghouse/loghouse/") {
			for _, imp := range strings.Split(imports, ",") {
				if imp == "testing" {
					t.Errorf("%s imports testing in non-test code", pkg)
				}
			}
		}
	}
}
