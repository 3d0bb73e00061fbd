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
	Credential   string // "session" or "api_key"
	CredentialID string
}

// Entry is one record of the audit log.
type Entry struct {
	AccountID string
	Actor     Actor
	Action    string // "object.verb", e.g. "cert.revoke"
	Target    string // the object acted on
	Err       error  // nil for success
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
