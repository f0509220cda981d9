// Package auth decides what each client of Loghouse may do. An Authorizer
// answers one question, "may this subject take this action?", from a Casbin
// (github.com/casbin/casbin/v2) model and policy read from two files. The
// subject is the client's identity, its certificate's common name; the
// server establishes it and asks Authorize before serving a request.
//
// # Actions
//
// There are three actions:
//
//	produce  append records          ActionProduce
//	consume  read records            ActionConsume
//	admin    administer the cluster  ActionAdmin
//
// # Default deny
//
// A request is allowed only if a policy rule allows it; everything else is
// denied. There are no deny rules. Authorize returns nil to allow; a
// *DeniedError (wrapping ErrPermissionDenied) to deny, such as
// `auth: "nobody" may not produce`; and ErrNoIdentity, not
// ErrPermissionDenied, for an empty subject, which is always refused (a
// server answers Unauthenticated for it and PermissionDenied for a denial).
//
// # Model file
//
// The model is a Casbin model file. The default, model.conf in this
// package, is embedded in the binary:
//
//	[request_definition]
//	r = sub, act
//
//	[policy_definition]
//	p = sub, act
//
//	[role_definition]
//	g = _, _
//
//	[policy_effect]
//	e = some(where (p.eft == allow))
//
//	[matchers]
//	m = (p.sub == "*" || g(r.sub, p.sub)) && (p.act == "*" || r.act == p.act)
//
// A request is (sub, act). A rule matches if its subject is "*", the
// request's subject, or a role the subject has; and its action is "*" or the
// request's action. An operator may supply another model, but its request
// definition must be "r = sub, act" and its policy definition must have
// the fields sub and act; New rejects one that does not, or whose matcher
// does not evaluate.
//
// # Policy file
//
// The policy is a text file of rules, one per line, fields separated by
// commas (CSV, so a field may be quoted; spaces around fields are ignored).
// Blank lines and lines starting with # are ignored. Two kinds of rule:
//
//	p, <subject, role or *>, <produce, consume, admin or *>
//	g, <subject or role>, <role>
//
// A p rule allows a subject, or every subject of a role, to take an action;
// "*" as the subject means every identified client and as the action means
// every action. A g rule gives a subject a role (and a role may have roles,
// to a depth of 10). Roles and subjects share one name space, so name roles
// so that no certificate could carry the name. The default, policy.csv in
// this package and embedded in the binary, lets root do everything and
// nobody else anything:
//
//	p, root, *
//
// A fuller example:
//
//	# alice and bob write; every identified client reads;
//	# ops administers and also reads and writes.
//	g, alice, producers
//	g, bob, producers
//	p, producers, produce
//	p, *, consume
//	p, ops, *
//
// Each line is checked when the file loads: the rule type must be p or g
// (or another the model defines), the number of fields must match the
// model, no field may be empty, a p rule's action must be produce, consume,
// admin or *, and a g rule may not contain "*" (it is not a wildcard
// there). A problem is reported as a *FileError with the file and line, for
// example
//
//	auth: /etc/loghouse/policy.csv:3: p rule: unknown action "write" (want produce, consume, admin or *)
//
// # Reload
//
// Reload re-reads both files (SIGHUP calls it). The new model and policy
// are loaded and checked completely before they replace the old ones, in a
// single atomic step: every Authorize call sees either the old policy or
// the new one. If either file fails to load, nothing changes: the old
// policy stays in force, and Reload returns the error naming the file.
// Authorize never waits for a reload. Reload reads whatever is in the files
// at the moment it runs, so replace a file by renaming a complete new one
// over it rather than editing it in place.
package auth
