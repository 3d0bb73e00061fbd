package app

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// Page asks for part of a list.
type Page struct {
	Limit  int
	Cursor string
	// NewestFirst reverses the order, where a list offers it (the audit
	// log).
	NewestFirst bool
}

// Paging limits.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 200
)

// Service is the account service's API.
type Service interface {
	SignUp(ctx context.Context, email, password string) (domain.User, error)
	Login(ctx context.Context, email, password string) (token string, s domain.Session, err error)
	Logout(ctx context.Context, token string) error
	Authenticate(ctx context.Context, token string) (domain.Principal, error)

	CreateAccount(ctx context.Context, actor domain.Principal, name, description, idempotencyKey string) (AccountView, error)
	ListAccounts(ctx context.Context, actor domain.Principal, p Page) ([]AccountView, string, error)
	GetAccount(ctx context.Context, actor domain.Principal, accountID string) (AccountView, error)
	UpdateAccount(ctx context.Context, actor domain.Principal, accountID string, c AccountChange) (AccountView, error)
	DeleteAccount(ctx context.Context, actor domain.Principal, accountID string) error

	// AddMember and SetMemberRole return, for a new admin, the task that
	// asks for it: the member is an admin once it is approved.
	AddMember(ctx context.Context, actor domain.Principal, accountID, email, role string) (domain.Member, *domain.Task, error)
	ListMembers(ctx context.Context, actor domain.Principal, accountID string, p Page) ([]domain.Member, string, error)
	RemoveMember(ctx context.Context, actor domain.Principal, accountID, userID string) error
	SetMemberRole(ctx context.Context, actor domain.Principal, accountID, userID, role string) (domain.Member, *domain.Task, error)

	CreateAPIKey(ctx context.Context, actor domain.Principal, accountID, name string, ttl time.Duration) (domain.APIKey, string, error)
	ListAPIKeys(ctx context.Context, actor domain.Principal, accountID string, p Page) ([]domain.APIKey, string, error)
	RevokeAPIKey(ctx context.Context, actor domain.Principal, accountID, keyID string) error

	ListAudit(ctx context.Context, actor domain.Principal, accountID string, p Page) ([]domain.AuditEntry, string, error)

	// ListTasks lists an account's tasks, oldest first, optionally only
	// those of one status ("" for all).
	ListTasks(ctx context.Context, actor domain.Principal, accountID, status string) ([]domain.Task, error)
	GetTask(ctx context.Context, actor domain.Principal, accountID, taskID string) (domain.Task, error)
	// ApproveTask, DenyTask and WithdrawTask are the admins' decisions.
	ApproveTask(ctx context.Context, actor domain.Principal, accountID, taskID string) (domain.Task, error)
	DenyTask(ctx context.Context, actor domain.Principal, accountID, taskID string) (domain.Task, error)
	WithdrawTask(ctx context.Context, actor domain.Principal, accountID, taskID string) (domain.Task, error)

	// Authorize returns the actor's role if it may do action in the
	// account: not found when it cannot see the account, forbidden when
	// its role does not allow the action.
	Authorize(ctx context.Context, actor domain.Principal, accountID string, action authz.Action) (domain.Role, error)

	// PurgeAccount removes what belongs to a deleted account; it is driven
	// by the AccountDeleted event, not called over the API.
	PurgeAccount(ctx context.Context, accountID string) error
	// ApplyTask makes the change of an approved quorum or admin task if it
	// was not made yet; it is driven by the TaskApproved event.
	ApplyTask(ctx context.Context, accountID, taskID string) error

	// OpenDomainTask, OpenImageTask and RetractTasks are driven by the
	// image converter's events. They are idempotent: an event delivered
	// twice opens or withdraws nothing more.
	OpenDomainTask(ctx context.Context, accountID, appID, domain, requesterID string) error
	OpenImageTask(ctx context.Context, accountID, appID string, im domain.ImageMeasurement, requesterID string) error
	OpenSecretTask(ctx context.Context, accountID, appID string, c domain.SecretChange, requesterID string) error
	RetractSecretTasks(ctx context.Context, accountID, appID, name string) error
	// RetractTasks withdraws the pending tasks of a deleted application
	// (imageID empty) or of one deleted image.
	RetractTasks(ctx context.Context, accountID, appID, imageID string) error
}

// Config holds the service's dependencies and settings.
type Config struct {
	Users    Users
	Sessions Sessions
	Accounts Accounts
	Members  Members
	APIKeys  APIKeys
	Tasks    Tasks
	Audit    AuditLog
	Hasher   PasswordHasher
	Clock    Clock
	// SessionTTL is how long a login lasts; default 12h.
	SessionTTL time.Duration
	// APIKeyTTL is the default and MaxAPIKeyTTL the longest lifetime of
	// an API key; defaults 90 and 365 days.
	APIKeyTTL    time.Duration
	MaxAPIKeyTTL time.Duration
}

type service struct {
	Config
	dummyHash string
}

// New returns the service, refusing a config that lacks a dependency.
func New(cfg Config) (Service, error) {
	switch {
	case cfg.Users == nil, cfg.Sessions == nil, cfg.Accounts == nil, cfg.Members == nil,
		cfg.APIKeys == nil, cfg.Tasks == nil, cfg.Audit == nil, cfg.Hasher == nil:
		return nil, errors.New("account: every store, the audit log and the hasher are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.APIKeyTTL <= 0 {
		cfg.APIKeyTTL = 90 * 24 * time.Hour
	}
	if cfg.MaxAPIKeyTTL <= 0 {
		cfg.MaxAPIKeyTTL = 365 * 24 * time.Hour
	}
	// Logins for unknown emails verify against this hash, so they take as
	// long as real ones and do not reveal which emails exist.
	dummy, err := cfg.Hasher.Hash("not a password anyone has: " + uuid.NewString())
	if err != nil {
		return nil, fmt.Errorf("hashing the timing-equaliser password: %w", err)
	}
	return &service{Config: cfg, dummyHash: dummy}, nil
}

func (s *service) now() time.Time { return s.Clock().UTC() }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// authorize returns the account and the actor's membership if the actor may
// do action there. An account the actor cannot see is not found, never
// forbidden: its existence is not revealed.
func (s *service) authorize(ctx context.Context, actor domain.Principal, accountID string, action authz.Action) (domain.Account, domain.Member, error) {
	if uuid.Validate(accountID) != nil {
		return domain.Account{}, domain.Member{}, domain.ErrAccountNotFound
	}
	if actor.Credential == domain.CredentialAPIKey && actor.AccountID != accountID {
		return domain.Account{}, domain.Member{}, domain.ErrAccountNotFound
	}
	m, err := s.Members.Get(ctx, accountID, actor.UserID)
	if errors.Is(err, domain.ErrMemberNotFound) {
		return domain.Account{}, domain.Member{}, domain.ErrAccountNotFound
	}
	if err != nil {
		return domain.Account{}, domain.Member{}, err
	}
	a, err := s.Accounts.Get(ctx, accountID)
	if err != nil {
		return domain.Account{}, domain.Member{}, err
	}
	if !m.Role.Can(action) {
		return domain.Account{}, domain.Member{}, domain.ErrForbidden
	}
	return a, m, nil
}

func (s *service) auditEntry(actor domain.Principal, accountID string, action authz.Action, target string) domain.AuditEntry {
	return domain.AuditEntry{ID: newID(), AccountID: accountID, OccurredAt: s.now(), Actor: actor,
		Action: string(action), Target: target, Outcome: domain.OutcomeSuccess}
}

// failed records a member's refused or failed mutating call in the
// account's audit log and returns err unchanged. A caller who is not a
// member (the account is "not found" for them) leaves no record: the log
// must not be writable by strangers.
func (s *service) failed(ctx context.Context, actor domain.Principal, accountID string, action authz.Action, target string, err error) error {
	if err == nil || errors.Is(err, domain.ErrAccountNotFound) || uuid.Validate(accountID) != nil {
		return err
	}
	e := s.auditEntry(actor, accountID, action, target)
	e.Outcome, e.Error = domain.OutcomeFailure, errs.PublicMessage(err)
	if rerr := s.Audit.Record(ctx, e); rerr != nil {
		return errors.Join(err, fmt.Errorf("recording audit entry: %w", rerr))
	}
	return err
}

func (s *service) Authorize(ctx context.Context, actor domain.Principal, accountID string, action authz.Action) (domain.Role, error) {
	_, m, err := s.authorize(ctx, actor, accountID, action)
	return m.Role, err
}

func (s *service) ListAudit(ctx context.Context, actor domain.Principal, accountID string, p Page) ([]domain.AuditEntry, string, error) {
	if _, _, err := s.authorize(ctx, actor, accountID, authz.AuditList); err != nil {
		return nil, "", err
	}
	limit, err := pageLimit(p)
	if err != nil {
		return nil, "", err
	}
	return s.Audit.List(ctx, accountID, p.Cursor, limit, p.NewestFirst)
}

func pageLimit(p Page) (int, error) {
	switch {
	case p.Limit == 0:
		return DefaultPageLimit, nil
	case p.Limit < 0 || p.Limit > MaxPageLimit:
		return 0, errs.Newf(errs.Invalid, "limit must be between 1 and %d", MaxPageLimit)
	}
	return p.Limit, nil
}

// paginate returns the page of items (sorted by key) after the cursor, and
// the cursor of the next page. Cursors are the last key of a page, encoded
// so that callers treat them as opaque.
func paginate[T any](items []T, p Page, key func(T) string) ([]T, string, error) {
	limit, err := pageLimit(p)
	if err != nil {
		return nil, "", err
	}
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	start := 0
	if p.Cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(p.Cursor)
		if err != nil {
			return nil, "", errs.New(errs.Invalid, "cursor is not one this API returned")
		}
		{
			start, _ = slices.BinarySearchFunc(items, string(after), func(it T, k string) int { return strings.Compare(key(it), k) })
			if start < len(items) && key(items[start]) == string(after) {
				start++
			}
		}
	}
	end := min(start+limit, len(items))
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte(key(items[end-1])))
	}
	return items[start:end], next, nil
}
