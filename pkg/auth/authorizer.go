package auth

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// Actions a client may be allowed to take.
const (
	// ActionProduce is appending records.
	ActionProduce = "produce"
	// ActionConsume is reading records.
	ActionConsume = "consume"
	// ActionAdmin is cluster administration.
	ActionAdmin = "admin"
)

// Wildcard in a policy rule's subject or action field matches every subject
// or every action. It is not an action that Authorize accepts.
const Wildcard = "*"

// isAction reports whether act is one of the actions Authorize decides.
func isAction(act string) bool {
	switch act {
	case ActionProduce, ActionConsume, ActionAdmin:
		return true
	}
	return false
}

// Authorizer decides whether a subject may take an action, by a Casbin model
// and policy loaded from files. It is safe for concurrent use.
type Authorizer struct {
	modelPath  string
	policyPath string
	logger     hclog.Logger

	reloadMu sync.Mutex                // serialises Reload
	current  atomic.Pointer[policySet] // the policy in force; never nil
}

// New loads the model and policy files and returns an Authorizer that
// enforces them. An empty path means the embedded default (model.conf or
// policy.csv in this package). Errors are *FileError values naming the file,
// and the line where there is one; they wrap ErrLoad. A nil logger
// discards logs.
func New(modelPath, policyPath string, logger hclog.Logger) (*Authorizer, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	ps, err := load(modelPath, policyPath)
	if err != nil {
		return nil, err
	}
	a := &Authorizer{modelPath: modelPath, policyPath: policyPath, logger: logger}
	a.current.Store(ps)
	a.logLoaded("loaded access policy", ps)
	return a, nil
}

// Authorize returns nil if the policy allows subject to take action (one of
// ActionProduce, ActionConsume, ActionAdmin). Otherwise it returns a
// *DeniedError, which wraps ErrPermissionDenied; ErrNoIdentity if subject is
// empty; an error wrapping ErrUnknownAction for any other action; or, if
// Casbin fails to evaluate the matcher, that error. Only a nil error allows.
//
// It takes no locks and allocates nothing beyond what Casbin's Enforce does
// (and the error when it denies).
func (a *Authorizer) Authorize(subject, action string) error {
	if subject == "" {
		return ErrNoIdentity
	}
	if !isAction(action) {
		return fmt.Errorf("%w %q", ErrUnknownAction, action)
	}
	ps := a.current.Load()
	key := decisionKey{subject, action}
	var ok bool
	if v, hit := ps.decisions.Load(key); hit {
		ok = v.(bool)
	} else {
		var err error
		if ok, err = ps.enforcer.Enforce(subject, action); err != nil {
			return fmt.Errorf("auth: decide whether %q may %s: %w", subject, action, err)
		}
		if ps.cached.Add(1) <= maxCachedDecisions {
			ps.decisions.Store(key, ok)
		}
	}
	if !ok {
		return &DeniedError{Subject: subject, Action: action}
	}
	return nil
}

// Reload re-reads the model and policy files given to New and, if both
// load, puts them in force in one step: every Authorize sees either the old
// policy or the new one, never a mix. If either fails to load, the old
// policy stays in force and the error (a *FileError naming the file) is
// returned. Reloads are serialised. The embedded defaults never change, so
// reloading them is a no-op.
func (a *Authorizer) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	ps, err := load(a.modelPath, a.policyPath)
	if err != nil {
		a.logger.Warn("access policy reload failed; the previous policy stays in force", "error", err)
		return err
	}
	a.current.Store(ps)
	a.logLoaded("reloaded access policy", ps)
	return nil
}

func (a *Authorizer) logLoaded(msg string, ps *policySet) {
	a.logger.Info(msg,
		"model", sourceName(a.modelPath, embeddedModelName),
		"policy", sourceName(a.policyPath, embeddedPolicyName),
		"rules", ps.rules, "groupings", ps.groupings)
}

// sourceName is the name logs give a file: its path, or the embedded
// default's name.
func sourceName(path, embeddedName string) string {
	if path == "" {
		return embeddedName
	}
	return path
}
