// Package domain holds the account service's entities, their rules and its
// errors. It imports no transport or storage package.
package domain

import (
	"encoding/json"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/errs"
)

// Role is what a member may do in an account.
type Role string

// The roles, from most to least powerful; authz says what each may do.
const (
	RoleAdmin   Role = authz.RoleAdmin
	RoleMember  Role = authz.RoleMember
	RoleAuditor Role = authz.RoleAuditor
)

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	if authz.ValidRole(s) {
		return Role(s), nil
	}
	return "", errs.Newf(errs.Invalid, "role %q is not one of admin, member, auditor", s)
}

// Credential is how a principal authenticated.
type Credential string

// The credentials.
const (
	CredentialSession Credential = "session"
	CredentialAPIKey  Credential = "api_key"
	// CredentialSystem is the actor of an audit record of what Cloister
	// did on its own (its Cause says why), never of a caller.
	CredentialSystem Credential = "system"
)

// Errors of the account service.
var (
	ErrEmailTaken       = errs.Define(errs.Conflict, "email_taken", "a user with this email already exists")
	ErrBadCredentials   = errs.Define(errs.Unauthenticated, "bad_credentials", "email or password is wrong")
	ErrUnauthenticated  = errs.Define(errs.Unauthenticated, "unauthenticated", "the token is missing, expired or revoked")
	ErrAccountNotFound  = errs.Define(errs.NotFound, "account_not_found", "account not found")
	ErrMemberNotFound   = errs.Define(errs.NotFound, "member_not_found", "member not found")
	ErrUserNotFound     = errs.Define(errs.NotFound, "user_not_found", "no user with this email")
	ErrAPIKeyNotFound   = errs.Define(errs.NotFound, "api_key_not_found", "API key not found")
	ErrAlreadyMember    = errs.Define(errs.Conflict, "already_member", "the user is already a member of this account")
	ErrLastAdmin        = errs.Define(errs.Conflict, "last_admin", "an account must keep at least one admin")
	ErrForbidden        = errs.Define(errs.PermissionDenied, "forbidden", "your role in this account does not allow this")
	ErrAPIKeyNotAllowed = errs.Define(errs.PermissionDenied, "api_key_not_allowed", "API keys cannot do this; use a session")
	ErrConcurrentChange = errs.Define(errs.Conflict, "concurrent_change", "changed by another request; retry")
	ErrCannotRemoveSelf = errs.Define(errs.Conflict, "cannot_remove_self", "use another admin to remove yourself as the last admin")
	ErrAccountExists    = errs.Define(errs.Conflict, "account_exists", "an account with this id exists")
)

// Limits on user input.
const (
	MinPasswordLength = 12
	MaxPasswordLength = 256
	MaxEmailLength    = 254
	MaxNameLength     = 100
	MaxDescLength     = 1000
)

// User is a person who can log in.
type User struct {
	ID           string
	Email        string
	PasswordHash string
	CreatedAt    time.Time
}

// Session is a logged-in user's token, stored by its hash.
type Session struct {
	TokenHash string
	UserID    string
	Email     string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Account is a tenant: everything else belongs to one.
type Account struct {
	ID          string
	Name        string
	Description string
	CreatedBy   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// Admins are the user ids of the admins. Changes of the admin set go
	// through this one record, under optimistic concurrency, so two
	// concurrent demotions cannot leave the account without an admin.
	Admins []string
	// ApprovalsRequired is how many distinct admins other than its
	// requester must approve a task (0: any one admin). It is stored
	// under a key of its own since it took that meaning (UnmarshalJSON).
	ApprovalsRequired int `json:"ApprovalsOthers"`
	// QuorumAt is when the quorum task that set ApprovalsRequired was
	// approved: an older one, delivered again, changes nothing.
	QuorumAt time.Time
	// SecretsNeedApproval: a new value of an application's secret waits
	// for a secret task's approval before enclaves are given it.
	SecretsNeedApproval bool `json:",omitempty"`
	Version             uint64
}

// UnmarshalJSON reads an account record, new or as stored before
// approvals_required counted only admins other than the requester. Such a
// record has the old key, where 0 and 1 meant one admin, the requester
// included (now 0), and 2 or more already excluded the requester.
func (a *Account) UnmarshalJSON(b []byte) error {
	type record Account // without this method
	var r struct {
		record
		Legacy *int `json:"ApprovalsRequired"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	*a = Account(r.record)
	if r.Legacy != nil && *r.Legacy >= 2 {
		a.ApprovalsRequired = *r.Legacy
	}
	return nil
}

// Member is a user's role in an account.
type Member struct {
	AccountID string
	UserID    string
	Email     string
	Role      Role
	AddedAt   time.Time
	Version   uint64
}

// APIKey lets automation act as a user within one account.
type APIKey struct {
	ID        string
	AccountID string
	UserID    string
	Email     string
	Name      string
	TokenHash string
	CreatedAt time.Time
	ExpiresAt time.Time
	Version   uint64
}

// Principal is an authenticated caller.
type Principal struct {
	UserID       string
	Email        string
	Credential   Credential
	CredentialID string
	// AccountID is set for API keys: the only account they may act on.
	AccountID string
	ExpiresAt time.Time
}

// AuditEntry records one mutating call.
type AuditEntry struct {
	ID         string
	AccountID  string
	OccurredAt time.Time
	Actor      Principal
	Action     string
	Target     string
	Outcome    string // "success" or "failure"
	Error      string
	Cause      string // why the system acted, for an entry of no person
}

// Outcomes of audited calls.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// NormalizeEmail checks an email address and returns its canonical form
// (trimmed, lower case), which is what identifies a user.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errs.New(errs.Invalid, "email is required")
	}
	if len(s) > MaxEmailLength {
		return "", errs.Newf(errs.Invalid, "email is longer than %d characters", MaxEmailLength)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return "", errs.Newf(errs.Invalid, "email %q is not a valid address such as name@example.com", s)
	}
	return strings.ToLower(s), nil
}

// CheckPassword enforces the password rules.
func CheckPassword(p string) error {
	n := utf8.RuneCountInString(p)
	switch {
	case !utf8.ValidString(p):
		return errs.New(errs.Invalid, "password must be valid UTF-8")
	case n < MinPasswordLength:
		return errs.Newf(errs.Invalid, "password must be at least %d characters", MinPasswordLength)
	case len(p) > MaxPasswordLength:
		return errs.Newf(errs.Invalid, "password must be at most %d bytes", MaxPasswordLength)
	case strings.TrimSpace(p) == "":
		return errs.New(errs.Invalid, "password must not be only spaces")
	}
	return nil
}

// CheckAccountName enforces the account name rules.
func CheckAccountName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errs.New(errs.Invalid, "name is required")
	case !utf8.ValidString(name):
		return errs.New(errs.Invalid, "name must be valid UTF-8")
	case utf8.RuneCountInString(name) > MaxNameLength:
		return errs.Newf(errs.Invalid, "name is longer than %d characters", MaxNameLength)
	}
	return nil
}

// CheckDescription enforces the description rules.
func CheckDescription(d string) error {
	switch {
	case !utf8.ValidString(d):
		return errs.New(errs.Invalid, "description must be valid UTF-8")
	case utf8.RuneCountInString(d) > MaxDescLength:
		return errs.Newf(errs.Invalid, "description is longer than %d characters", MaxDescLength)
	}
	return nil
}

// Can reports whether role allows action, by authz's table.
func (r Role) Can(action authz.Action) bool { return authz.Allows(string(r), action) }
