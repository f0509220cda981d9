// Package loghousev1 is Loghouse's client API, generated from log.proto
// (`make proto`; `make check` fails if the checked-in code is stale).
//
// Errors are gRPC status codes: InvalidArgument for a malformed or oversized
// record (the message names the limit), OutOfRange for an offset outside
// what the node holds (the message gives the bounds), PermissionDenied when
// the ACL refuses the client's identity, Unauthenticated without a verified
// client certificate, and Unavailable or FailedPrecondition, with the
// leader's address, when this node cannot serve the request.
package loghousev1
