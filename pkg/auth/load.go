package auth

import (
	_ "embed" // the default model and policy
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"
)

// The defaults used when New is given empty paths.
var (
	//go:embed model.conf
	defaultModel []byte
	//go:embed policy.csv
	defaultPolicy []byte
)

// Names that errors give the embedded defaults.
const (
	embeddedModelName  = "embedded model.conf"
	embeddedPolicyName = "embedded policy.csv"
)

// policySet is a loaded model and policy. It is never changed after load:
// Authorize reads it without locks and Reload replaces it whole.
type policySet struct {
	enforcer  *casbin.Enforcer
	rules     int // p rules
	groupings int // g rules

	// decisions caches the enforcer's answers. A loaded policy never
	// changes (Reload builds a new policySet), so entries never go stale.
	// Bounded by maxCachedDecisions; beyond it, decisions are not cached.
	decisions sync.Map // decisionKey -> bool
	cached    atomic.Int64
}

// maxCachedDecisions bounds the cache: identities are certificate names
// from the cluster's CA, so real deployments stay far below it.
const maxCachedDecisions = 1 << 16

type decisionKey struct{ subject, action string }

// load reads, parses and checks the model and policy files (the embedded
// defaults for empty paths) and builds an enforcer from them.
func load(modelPath, policyPath string) (*policySet, error) {
	modelName, modelText, err := readSource(modelPath, embeddedModelName, defaultModel)
	if err != nil {
		return nil, err
	}
	m, err := parseModel(modelName, modelText)
	if err != nil {
		return nil, err
	}
	policyName, policyText, err := readSource(policyPath, embeddedPolicyName, defaultPolicy)
	if err != nil {
		return nil, err
	}
	rules, err := parsePolicy(policyName, policyText, m)
	if err != nil {
		return nil, err
	}
	return build(modelName, m, policyName, rules)
}

// build makes the enforcer for a parsed model and policy, named for errors.
func build(modelName string, m model.Model, policyName string, rules []policyRule) (*policySet, error) {
	e, err := casbin.NewEnforcer(m, &ruleAdapter{file: policyName, rules: rules})
	if err != nil {
		if _, ok := errors.AsType[*FileError](err); ok {
			return nil, err
		}
		return nil, &FileError{File: policyName, Err: err}
	}
	// Casbin compiles the matcher on first use; do it now, so a bad
	// matcher fails the load instead of every request.
	if _, err := e.Enforce("\x00probe", ActionAdmin); err != nil {
		return nil, &FileError{File: modelName, Err: fmt.Errorf("matcher: %w", err)}
	}
	ps := &policySet{enforcer: e}
	for _, r := range rules {
		if r.fields[0][0] == 'p' {
			ps.rules++
		} else {
			ps.groupings++
		}
	}
	return ps, nil
}

// readSource returns the file's name and contents, or the embedded default
// if path is empty.
func readSource(path, embeddedName string, embedded []byte) (string, []byte, error) {
	if path == "" {
		return embeddedName, embedded, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		// The path is already in the FileError; keep only the operation
		// and the cause (which errors.Is still finds).
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
		}
		return path, nil, &FileError{File: path, Err: err}
	}
	return path, data, nil
}

// parseModel parses a model file and checks that it answers the requests
// Authorize makes: (sub, act), with policy rules that name sub and act.
func parseModel(name string, text []byte) (model.Model, error) {
	m, err := model.NewModelFromString(string(text))
	if err != nil {
		return nil, &FileError{File: name, Err: err}
	}
	r, ok := m["r"]["r"]
	if !ok || !slices.Equal(r.Tokens, []string{"r_sub", "r_act"}) {
		return nil, &FileError{File: name, Err: errors.New(`[request_definition] must be "r = sub, act"`)}
	}
	p, ok := m["p"]["p"]
	if !ok || !slices.Contains(p.Tokens, "p_sub") || !slices.Contains(p.Tokens, "p_act") {
		return nil, &FileError{File: name, Err: errors.New(`[policy_definition] "p" must have the fields sub and act`)}
	}
	return m, nil
}

// policyRule is one rule of a policy file: the rule type ("p", "g") and
// its fields, and the line it came from.
type policyRule struct {
	line   int
	fields []string
}

// parsePolicy parses a policy file against the model m and checks every
// rule, so that errors name the line: the rule type must be one the model
// defines, the field count must match, no field may be empty, a p rule's
// action must be produce, consume, admin or *, and a g rule may not use *.
func parsePolicy(name string, text []byte, m model.Model) ([]policyRule, error) {
	var rules []policyRule
	n := 0
	for raw := range strings.Lines(string(text)) {
		n++
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		fields, err := splitRule(line)
		if err == nil {
			err = checkRule(fields, m)
		}
		if err != nil {
			return nil, &FileError{File: name, Line: n, Err: err}
		}
		rules = append(rules, policyRule{line: n, fields: fields})
	}
	return rules, nil
}

// splitRule splits a line into comma-separated fields, as casbin's file
// adapter does (CSV, so a field may be quoted), and trims each field.
func splitRule(line string) ([]string, error) {
	cr := csv.NewReader(strings.NewReader(line))
	cr.TrimLeadingSpace = true
	fields, err := cr.Read()
	if err == nil {
		if _, err2 := cr.Read(); !errors.Is(err2, io.EOF) {
			err = errors.New("more than one rule on the line")
		}
	}
	if err != nil {
		if pe, ok := errors.AsType[*csv.ParseError](err); ok {
			return nil, fmt.Errorf("syntax error at column %d: %w", pe.Column, pe.Err)
		}
		return nil, err
	}
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	return fields, nil
}

// checkRule checks one rule's fields (the rule type first) against the
// model.
func checkRule(fields []string, m model.Model) error {
	ptype := fields[0]
	if ptype == "" {
		return errors.New("missing rule type (want p or g)")
	}
	sec := ptype[:1]
	ast, ok := m[sec][ptype]
	if !ok || sec != "p" && sec != "g" {
		return fmt.Errorf("unknown rule type %q (want p or g)", ptype)
	}
	names := fieldNames(ptype, ast)
	args := fields[1:]
	if len(args) != len(names) {
		return fmt.Errorf("%s rule needs %d fields after the rule type (%s, %s), got %d",
			ptype, len(names), ptype, strings.Join(names, ", "), len(args))
	}
	for i, f := range args {
		if f == "" {
			return fmt.Errorf("%s rule: %s is empty", ptype, names[i])
		}
		switch {
		case sec == "g" && f == Wildcard:
			return fmt.Errorf(`%s rule: "*" is not a wildcard in a grouping; name the %s`, ptype, names[i])
		case sec == "p" && ast.Tokens[i] == ptype+"_act" && !isPolicyAction(f):
			return fmt.Errorf("%s rule: unknown action %q (want %s, %s, %s or %s)",
				ptype, f, ActionProduce, ActionConsume, ActionAdmin, Wildcard)
		}
	}
	return nil
}

// fieldNames names a rule type's fields for error messages: the model's
// token names for p rules, "user, role" for the usual two-field grouping.
func fieldNames(ptype string, ast *model.Assertion) []string {
	names := make([]string, len(ast.Tokens))
	for i, tok := range ast.Tokens {
		switch {
		case ptype[0] == 'p':
			names[i] = strings.TrimPrefix(tok, ptype+"_")
		case len(ast.Tokens) == 2 && i == 0:
			names[i] = "user"
		case len(ast.Tokens) == 2 && i == 1:
			names[i] = "role"
		default:
			names[i] = fmt.Sprintf("field %d", i+1)
		}
	}
	return names
}

// isPolicyAction reports whether a policy rule may name the action.
func isPolicyAction(act string) bool {
	return act == Wildcard || isAction(act)
}

// ruleAdapter hands parsed rules to casbin. It is read-only: the policy
// changes only through its file and Reload.
type ruleAdapter struct {
	file  string
	rules []policyRule
}

var errReadOnly = errors.New("auth: the policy changes only through its file and Reload")

// LoadPolicy adds the rules to the model (casbin skips duplicates).
func (a *ruleAdapter) LoadPolicy(m model.Model) error {
	for _, r := range a.rules {
		if err := persist.LoadPolicyArray(r.fields, m); err != nil {
			return &FileError{File: a.file, Line: r.line, Err: err}
		}
	}
	return nil
}

// SavePolicy refuses: see errReadOnly.
func (a *ruleAdapter) SavePolicy(model.Model) error { return errReadOnly }

// AddPolicy refuses: see errReadOnly.
func (a *ruleAdapter) AddPolicy(string, string, []string) error { return errReadOnly }

// RemovePolicy refuses: see errReadOnly.
func (a *ruleAdapter) RemovePolicy(string, string, []string) error { return errReadOnly }

// RemoveFilteredPolicy refuses: see errReadOnly.
func (a *ruleAdapter) RemoveFilteredPolicy(string, string, int, ...string) error {
	return errReadOnly
}

// Compile-time check that ruleAdapter is a casbin adapter.
var _ persist.Adapter = (*ruleAdapter)(nil)
