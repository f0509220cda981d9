package auth

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap these with context;
// test for them with errors.Is.
var (
	// ErrPermissionDenied means the policy does not allow the subject to
	// take the action. A *DeniedError carries the subject and action.
	ErrPermissionDenied = errors.New("auth: permission denied")
	// ErrNoIdentity means the request carries no subject (an empty
	// identity). It is distinct from ErrPermissionDenied: the caller was
	// not identified at all, so a server answers Unauthenticated.
	ErrNoIdentity = errors.New("auth: no identity")
	// ErrUnknownAction means Authorize was asked about an action other
	// than ActionProduce, ActionConsume or ActionAdmin: a bug in the
	// caller. The request is denied.
	ErrUnknownAction = errors.New("auth: unknown action")
	// ErrLoad means the model or policy file could not be read or is
	// malformed. A *FileError carries the file and line.
	ErrLoad = errors.New("auth: cannot load model or policy")
)

// DeniedError says who was refused what. It wraps ErrPermissionDenied.
type DeniedError struct {
	Subject string // the identity that asked
	Action  string // the action it was refused
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("auth: %q may not %s", e.Subject, e.Action)
}

// Unwrap lets errors.Is(err, ErrPermissionDenied) match.
func (e *DeniedError) Unwrap() error { return ErrPermissionDenied }

// FileError says which model or policy file, and which line of it, could
// not be loaded. It wraps ErrLoad and the underlying cause, so
// errors.Is(err, fs.ErrNotExist) reports a missing file.
type FileError struct {
	File string // path of the file, or "embedded model.conf" / "embedded policy.csv"
	Line int    // 1-based line number, or 0 if the problem is not on one line
	Err  error  // the cause
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("auth: %s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("auth: %s: %v", e.File, e.Err)
}

// Unwrap lets errors.Is match ErrLoad and the cause.
func (e *FileError) Unwrap() []error { return []error{ErrLoad, e.Err} }
