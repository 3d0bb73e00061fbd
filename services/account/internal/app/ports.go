// Package app is the account service's use cases. It declares the ports it
// needs (storage, audit, clock, password hashing); adapters implement them.
package app

import (
	"context"
	"time"

	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// Users stores users by email.
type Users interface {
	// Create stores a new user; domain.ErrEmailTaken if the email is taken.
	Create(ctx context.Context, u domain.User, evs ...domain.Event) error
	// ByEmail returns the user with a normalized email; domain.ErrUserNotFound.
	ByEmail(ctx context.Context, email string) (domain.User, error)
}

// Sessions stores sessions by token hash.
type Sessions interface {
	Create(ctx context.Context, s domain.Session, evs ...domain.Event) error
	// ByTokenHash returns the session; domain.ErrUnauthenticated if absent.
	ByTokenHash(ctx context.Context, hash string) (domain.Session, error)
	Delete(ctx context.Context, hash string, evs ...domain.Event) error
}

// Accounts stores accounts. Writes take the version read, and fail with
// domain.ErrConcurrentChange if another write came between.
type Accounts interface {
	Create(ctx context.Context, a domain.Account, evs ...domain.Event) (domain.Account, error)
	Get(ctx context.Context, id string) (domain.Account, error) // domain.ErrAccountNotFound
	Update(ctx context.Context, a domain.Account, evs ...domain.Event) (domain.Account, error)
	Delete(ctx context.Context, a domain.Account, evs ...domain.Event) error
}

// Members stores memberships.
type Members interface {
	Create(ctx context.Context, m domain.Member, evs ...domain.Event) (domain.Member, error) // domain.ErrAlreadyMember
	Get(ctx context.Context, accountID, userID string) (domain.Member, error)                // domain.ErrMemberNotFound
	Update(ctx context.Context, m domain.Member, evs ...domain.Event) (domain.Member, error)
	Delete(ctx context.Context, m domain.Member, evs ...domain.Event) error
	// ByAccount lists an account's members sorted by user id.
	ByAccount(ctx context.Context, accountID string) ([]domain.Member, error)
	// ByUser lists a user's memberships sorted by account id.
	ByUser(ctx context.Context, userID string) ([]domain.Member, error)
}

// APIKeys stores API keys.
type APIKeys interface {
	Create(ctx context.Context, k domain.APIKey, evs ...domain.Event) error
	Get(ctx context.Context, accountID, keyID string) (domain.APIKey, error) // domain.ErrAPIKeyNotFound
	// ByID finds a key by id alone, for authentication.
	ByID(ctx context.Context, keyID string) (domain.APIKey, error)
	Delete(ctx context.Context, k domain.APIKey, evs ...domain.Event) error
	ByAccount(ctx context.Context, accountID string) ([]domain.APIKey, error)
}

// Tasks stores approval tasks. Writes take the version read, and fail with
// domain.ErrConcurrentChange if another write came between.
type Tasks interface {
	Create(ctx context.Context, t domain.Task, evs ...domain.Event) (domain.Task, error) // domain.ErrTaskExists
	Get(ctx context.Context, accountID, taskID string) (domain.Task, error)              // domain.ErrTaskNotFound
	Update(ctx context.Context, t domain.Task, evs ...domain.Event) (domain.Task, error)
	Delete(ctx context.Context, t domain.Task, evs ...domain.Event) error
	// ByAccount lists an account's tasks in no particular order.
	ByAccount(ctx context.Context, accountID string) ([]domain.Task, error)
}

// AuditLog keeps audit records. Successful writes carry their records as
// domain.Audited events; Record is for calls that changed nothing.
type AuditLog interface {
	Record(ctx context.Context, e domain.AuditEntry) error
	// List returns an account's records after cursor (oldest first, or
	// newest first) and the cursor of the next page, empty at the end.
	List(ctx context.Context, accountID, cursor string, limit int, newestFirst bool) ([]domain.AuditEntry, string, error)
}

// PasswordHasher hashes and checks passwords.
type PasswordHasher interface {
	Hash(password string) (string, error)
	Verify(password, encoded string) (bool, error)
}

// Clock tells the time; tests move it.
type Clock func() time.Time
