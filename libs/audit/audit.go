// Package audit is what a service records in an account's audit log when
// a person (or their API key) changes something: who, what, on what, and
// how it went. The account service shows the log; every service writes
// its own records to the AUDIT stream (events.AuditMessage), in the same
// outbox as the change they describe.
package audit

import "github.com/cloister-cc/cloister/libs/errs"

// Actor is who made a call, as the gateway authenticated them.
type Actor struct {
	UserID       string
	Email        string
	Credential   string // "session", "api_key", or one of the kinds below
	CredentialID string
}

// Credentials of actors that are not people: the system acting on its own
// (a cascade: Cause says from what), a node (CredentialID its id), or a
// join token (CredentialID its id) enrolling one.
const (
	CredentialSystem    = "system"
	CredentialNode      = "node"
	CredentialJoinToken = "join_token"
)

// System is the actor of what Cloister does on its own.
var System = Actor{Credential: CredentialSystem}

// Entry is one record of the audit log.
type Entry struct {
	AccountID string
	Actor     Actor
	Action    string // "object.verb", e.g. "cert.revoke"
	Target    string // the object acted on
	Err       error  // nil for success
	// Cause says why the system acted, for an entry of System.
	Cause string
}

// Outcomes of audited calls.
const (
	Success = "success"
	Failure = "failure"
)

// Outcome and Error give the entry's outcome and, for a failure, a
// message safe to show to the account's members.
func (e Entry) Outcome() (outcome, message string) {
	if e.Err == nil {
		return Success, ""
	}
	return Failure, errs.PublicMessage(e.Err)
}
