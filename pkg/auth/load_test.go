package auth

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLoadErrors checks that New rejects bad model and policy files with a
// *FileError that names the file, the line where there is one, and the
// problem.
func TestLoadErrors(t *testing.T) {
	const goodModel = "" // the embedded default, written to a file
	tests := []struct {
		name     string
		model    string // model file contents; "" writes the default; "-" means no file
		policy   string // policy file contents; "-" means no file
		wantFile string // "model.conf" or "policy.csv"
		wantLine int
		wantText string // in the message
		wantIs   error  // besides ErrLoad, if not nil
	}{
		{
			name:     "unknown action",
			model:    goodModel,
			policy:   "# comment\np, root, *\np, alice, write\n",
			wantFile: "policy.csv", wantLine: 3,
			wantText: `unknown action "write" (want produce, consume, admin or *)`,
		},
		{
			name:     "action in the wrong case",
			policy:   "p, alice, Produce\n",
			wantFile: "policy.csv", wantLine: 1, wantText: `unknown action "Produce"`,
		},
		{
			name:     "unterminated quote",
			policy:   "p, root, *\n\np, \"alice, produce\n",
			wantFile: "policy.csv", wantLine: 3, wantText: "syntax error at column",
		},
		{
			name:     "stray quote",
			policy:   "p, al\"ice, produce\n",
			wantFile: "policy.csv", wantLine: 1, wantText: "syntax error at column",
		},
		{
			name:     "too few fields",
			policy:   "p, root\n",
			wantFile: "policy.csv", wantLine: 1, wantText: "p rule needs 2 fields after the rule type (p, sub, act), got 1",
		},
		{
			name:     "too many fields",
			policy:   "p, root, produce, allow\n",
			wantFile: "policy.csv", wantLine: 1, wantText: "got 3",
		},
		{
			name:     "grouping with too many fields",
			policy:   "g, alice, producers, extra\n",
			wantFile: "policy.csv", wantLine: 1, wantText: "(g, user, role), got 3",
		},
		{
			name:     "empty subject",
			policy:   "p, , produce\n",
			wantFile: "policy.csv", wantLine: 1, wantText: "sub is empty",
		},
		{
			name:     "empty rule type",
			policy:   ", alice, produce\n",
			wantFile: "policy.csv", wantLine: 1, wantText: "missing rule type",
		},
		{
			name:     "unknown rule type",
			policy:   "x, alice, produce\n",
			wantFile: "policy.csv", wantLine: 1, wantText: `unknown rule type "x"`,
		},
		{
			name:     "rule type of another section",
			policy:   "r, alice, produce\n",
			wantFile: "policy.csv", wantLine: 1, wantText: `unknown rule type "r"`,
		},
		{
			name:     "rule type the model lacks",
			policy:   "p2, alice, produce\n",
			wantFile: "policy.csv", wantLine: 1, wantText: `unknown rule type "p2"`,
		},
		{
			name:     "wildcard in a grouping",
			policy:   "g, *, producers\n",
			wantFile: "policy.csv", wantLine: 1, wantText: `"*" is not a wildcard in a grouping`,
		},
		{
			name:     "trailing comment is not a comment",
			policy:   "p, root, * # everything\n",
			wantFile: "policy.csv", wantLine: 1, wantText: "unknown action",
		},
		{
			name:     "missing policy file",
			policy:   "-",
			wantFile: "policy.csv", wantText: "no such file", wantIs: fs.ErrNotExist,
		},
		{
			name:     "missing model file",
			model:    "-",
			policy:   "p, root, *\n",
			wantFile: "model.conf", wantText: "no such file", wantIs: fs.ErrNotExist,
		},
		{
			name:     "model syntax",
			model:    "[request_definition]\nr = sub, act\nthis is not a key\n",
			policy:   "p, root, *\n",
			wantFile: "model.conf", wantText: "line 3",
		},
		{
			name:     "model without matchers",
			model:    "[request_definition]\nr = sub, act\n[policy_definition]\np = sub, act\n[policy_effect]\ne = some(where (p.eft == allow))\n",
			policy:   "p, root, *\n",
			wantFile: "model.conf", wantText: "missing required sections: matchers",
		},
		{
			name: "model with another request",
			model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n" +
				"[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub == p.sub\n",
			policy:   "p, root, *\n",
			wantFile: "model.conf", wantText: `must be "r = sub, act"`,
		},
		{
			name: "model policy without act",
			model: "[request_definition]\nr = sub, act\n[policy_definition]\np = sub, op\n" +
				"[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub == p.sub\n",
			policy:   "p, root, *\n",
			wantFile: "model.conf", wantText: "must have the fields sub and act",
		},
		{
			name: "model with a bad matcher",
			model: "[request_definition]\nr = sub, act\n[policy_definition]\np = sub, act\n" +
				"[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub == \n",
			policy:   "p, root, *\n",
			wantFile: "model.conf", wantText: "matcher",
		},
		{
			name: "model with an unknown function",
			model: "[request_definition]\nr = sub, act\n[policy_definition]\np = sub, act\n" +
				"[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = nosuch(r.sub, p.sub)\n",
			policy:   "p, root, *\n",
			wantFile: "model.conf", wantText: "matcher",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			modelPath := filepath.Join(dir, "model.conf")
			switch tt.model {
			case "-":
			case "":
				writeFile(t, dir, "model.conf", string(defaultModel))
			default:
				writeFile(t, dir, "model.conf", tt.model)
			}
			policyPath := filepath.Join(dir, "policy.csv")
			if tt.policy != "-" {
				writeFile(t, dir, "policy.csv", tt.policy)
			}
			a, err := New(modelPath, policyPath, testLogger(t))
			if err == nil {
				t.Fatalf("New succeeded: %+v", a)
			}
			t.Log(err)
			fe, ok := errors.AsType[*FileError](err)
			if !ok {
				t.Fatalf("New = %v (%T), want a *FileError", err, err)
			}
			if want := filepath.Join(dir, tt.wantFile); fe.File != want || fe.Line != tt.wantLine {
				t.Errorf("error names %s line %d, want %s line %d", fe.File, fe.Line, want, tt.wantLine)
			}
			if !errors.Is(err, ErrLoad) {
				t.Errorf("error does not wrap ErrLoad")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error does not wrap %v", tt.wantIs)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantText) || !strings.Contains(msg, fe.File) {
				t.Errorf("message %q does not contain %q and the file", msg, tt.wantText)
			}
			if tt.wantLine > 0 && !strings.Contains(msg, fe.File+":"+strconv.Itoa(tt.wantLine)+":") {
				t.Errorf("message %q does not say file:line", msg)
			}
		})
	}
}

// TestLoadDirectory checks that a directory given as the policy file is a
// clear error, not a panic or an empty policy.
func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := New("", dir, testLogger(t))
	if fe, ok := errors.AsType[*FileError](err); !ok || fe.File != dir {
		t.Fatalf("New with a directory = %v, want a *FileError naming it", err)
	}
}

// TestDefaultFilesMatchDoc checks that the embedded defaults contain the
// rules the package documentation shows.
func TestDefaultFilesMatchDoc(t *testing.T) {
	for _, want := range []string{
		"r = sub, act",
		"p = sub, act",
		"g = _, _",
		"e = some(where (p.eft == allow))",
		`m = (p.sub == "*" || g(r.sub, p.sub)) && (p.act == "*" || r.act == p.act)`,
	} {
		if !strings.Contains(string(defaultModel), want+"\n") {
			t.Errorf("model.conf lacks %q", want)
		}
	}
	m, err := parseModel(embeddedModelName, defaultModel)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := parsePolicy(embeddedPolicyName, defaultPolicy, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 || strings.Join(rules[0].fields, ", ") != "p, root, *" {
		t.Errorf("policy.csv rules = %v, want only p, root, *", rules)
	}
}

// FuzzParsePolicy checks that no policy file makes the parser panic, that
// every error names a line of the file, and that every accepted p rule
// names a known action and non-empty fields.
func FuzzParsePolicy(f *testing.F) {
	for _, seed := range []string{
		string(defaultPolicy),
		"g, alice, producers\np, producers, produce\np, *, consume\n",
		"p, \"a,b\", admin\r\n",
		"p, root\n",
		", , ,\n",
		"p, \"x\n",
		"\"\n",
		"g\n",
		"p,,\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		m, err := parseModel(embeddedModelName, defaultModel)
		if err != nil {
			t.Fatal(err)
		}
		rules, err := parsePolicy("fuzz.csv", []byte(text), m)
		if err != nil {
			fe, ok := errors.AsType[*FileError](err)
			if !ok || fe.Line < 1 || fe.Line > strings.Count(text, "\n")+1 {
				t.Fatalf("error %v does not name a line of the file", err)
			}
			return
		}
		for _, r := range rules {
			if len(r.fields) != 3 {
				t.Fatalf("line %d: accepted %q", r.line, r.fields)
			}
			for _, f := range r.fields {
				if f == "" {
					t.Fatalf("line %d: accepted an empty field in %q", r.line, r.fields)
				}
			}
			if r.fields[0] == "p" && !isPolicyAction(r.fields[2]) {
				t.Fatalf("line %d: accepted action %q", r.line, r.fields[2])
			}
		}
		// What parses must also load into casbin.
		if _, err := build(embeddedModelName, m, "fuzz.csv", rules); err != nil {
			t.Fatalf("parsed policy does not load: %v", err)
		}
	})
}

// FuzzParseModel checks that no model file makes the loader panic.
func FuzzParseModel(f *testing.F) {
	f.Add(string(defaultModel))
	f.Add("[request_definition]\nr = sub, act\n[matchers]\nm = r.sub ==\n")
	f.Add("[role_definition]\ng = (\n")
	f.Fuzz(func(t *testing.T, text string) {
		m, err := parseModel("fuzz.conf", []byte(text))
		if err != nil {
			return
		}
		// An error is fine; a panic is not.
		_, _ = build("fuzz.conf", m, "fuzz.csv", nil)

	})
}
