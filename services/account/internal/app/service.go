package app

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// Token prefixes tell sessions from API keys at a glance (and to secret
// scanners).
const (
	sessionPrefix = "cls_"
	apiKeyPrefix  = "clk_"
)

// Page asks for part of a list.
type Page struct {
	Limit  int
	Cursor string
}

// Paging limits.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 200
)

// AccountView is an account as one member sees it.
type AccountView struct {
	domain.Account
	Role domain.Role
}

// Service is the account service's API.
type Service interface {
	SignUp(ctx context.Context, email, password string) (domain.User, error)
	Login(ctx context.Context, email, password string) (token string, s domain.Session, err error)
	Logout(ctx context.Context, token string) error
	Authenticate(ctx context.Context, token string) (domain.Principal, error)

	CreateAccount(ctx context.Context, actor domain.Principal, name, description string) (AccountView, error)
	ListAccounts(ctx context.Context, actor domain.Principal, p Page) ([]AccountView, string, error)
	GetAccount(ctx context.Context, actor domain.Principal, accountID string) (AccountView, error)
	UpdateAccount(ctx context.Context, actor domain.Principal, accountID string, c AccountChange) (AccountView, error)
	DeleteAccount(ctx context.Context, actor domain.Principal, accountID string) error

	AddMember(ctx context.Context, actor domain.Principal, accountID, email, role string) (domain.Member, error)
	ListMembers(ctx context.Context, actor domain.Principal, accountID string, p Page) ([]domain.Member, string, error)
	RemoveMember(ctx context.Context, actor domain.Principal, accountID, userID string) error
	SetMemberRole(ctx context.Context, actor domain.Principal, accountID, userID, role string) (domain.Member, error)

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
	Authorize(ctx context.Context, actor domain.Principal, accountID, action string) (domain.Role, error)

	// PurgeAccount removes what belongs to a deleted account; it is driven
	// by the AccountDeleted event, not called over the API.
	PurgeAccount(ctx context.Context, accountID string) error

	// OpenDomainTask, OpenImageTask and RetractTasks are driven by the
	// image converter's events. They are idempotent: an event delivered
	// twice opens or withdraws nothing more.
	OpenDomainTask(ctx context.Context, accountID, appID, domain, requesterID string) error
	OpenImageTask(ctx context.Context, accountID, appID string, im domain.ImageMeasurement, requesterID string) error
	// RetractTasks withdraws the pending tasks of a deleted application
	// (imageID empty) or of one deleted image.
	RetractTasks(ctx context.Context, accountID, appID, imageID string) error
}

// AccountChange is what UpdateAccount changes; nil fields stay as they are.
type AccountChange struct {
	Name              *string
	Description       *string
	ApprovalsRequired *int
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

// HashToken returns the form in which tokens are stored and cached.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func randomSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *service) SignUp(ctx context.Context, email, password string) (domain.User, error) {
	email, err := domain.NormalizeEmail(email)
	if err != nil {
		return domain.User{}, err
	}
	if err := domain.CheckPassword(password); err != nil {
		return domain.User{}, err
	}
	hash, err := s.Hasher.Hash(password)
	if err != nil {
		return domain.User{}, fmt.Errorf("hashing password: %w", err)
	}
	u := domain.User{ID: newID(), Email: email, PasswordHash: hash, CreatedAt: s.now()}
	if err := s.Users.Create(ctx, u, domain.UserSignedUp{User: u}); err != nil {
		return domain.User{}, err
	}
	return u, nil
}

func (s *service) Login(ctx context.Context, email, password string) (string, domain.Session, error) {
	email, err := domain.NormalizeEmail(email)
	if err != nil {
		return "", domain.Session{}, err
	}
	u, err := s.Users.ByEmail(ctx, email)
	if errors.Is(err, domain.ErrUserNotFound) {
		_, _ = s.Hasher.Verify(password, s.dummyHash)
		return "", domain.Session{}, domain.ErrBadCredentials
	}
	if err != nil {
		return "", domain.Session{}, err
	}
	ok, err := s.Hasher.Verify(password, u.PasswordHash)
	if err != nil {
		return "", domain.Session{}, fmt.Errorf("verifying password: %w", err)
	}
	if !ok {
		return "", domain.Session{}, domain.ErrBadCredentials
	}
	token := sessionPrefix + randomSecret()
	now := s.now()
	sess := domain.Session{TokenHash: HashToken(token), UserID: u.ID, Email: u.Email, CreatedAt: now, ExpiresAt: now.Add(s.SessionTTL)}
	if err := s.Sessions.Create(ctx, sess); err != nil {
		return "", domain.Session{}, err
	}
	return token, sess, nil
}

func (s *service) Logout(ctx context.Context, token string) error {
	if !strings.HasPrefix(token, sessionPrefix) {
		return domain.ErrUnauthenticated
	}
	hash := HashToken(token)
	sess, err := s.Sessions.ByTokenHash(ctx, hash)
	if err != nil {
		return err
	}
	return s.Sessions.Delete(ctx, hash, domain.SessionRevoked{UserID: sess.UserID, TokenHash: hash})
}

func (s *service) Authenticate(ctx context.Context, token string) (domain.Principal, error) {
	switch {
	case strings.HasPrefix(token, sessionPrefix):
		sess, err := s.Sessions.ByTokenHash(ctx, HashToken(token))
		if err != nil {
			return domain.Principal{}, err
		}
		if !s.now().Before(sess.ExpiresAt) {
			return domain.Principal{}, domain.ErrUnauthenticated
		}
		return domain.Principal{UserID: sess.UserID, Email: sess.Email, Credential: domain.CredentialSession,
			CredentialID: sess.TokenHash[:16], ExpiresAt: sess.ExpiresAt}, nil
	case strings.HasPrefix(token, apiKeyPrefix):
		id, _, ok := strings.Cut(strings.TrimPrefix(token, apiKeyPrefix), "_")
		if !ok || uuid.Validate(id) != nil {
			return domain.Principal{}, domain.ErrUnauthenticated
		}
		k, err := s.APIKeys.ByID(ctx, id)
		if errors.Is(err, domain.ErrAPIKeyNotFound) {
			return domain.Principal{}, domain.ErrUnauthenticated
		}
		if err != nil {
			return domain.Principal{}, err
		}
		if subtle.ConstantTimeCompare([]byte(k.TokenHash), []byte(HashToken(token))) != 1 || !s.now().Before(k.ExpiresAt) {
			return domain.Principal{}, domain.ErrUnauthenticated
		}
		return domain.Principal{UserID: k.UserID, Email: k.Email, Credential: domain.CredentialAPIKey,
			CredentialID: k.ID, AccountID: k.AccountID, ExpiresAt: k.ExpiresAt}, nil
	}
	return domain.Principal{}, domain.ErrUnauthenticated
}

// authorize returns the account and the actor's membership if the actor may
// do action there. An account the actor cannot see is not found, never
// forbidden: its existence is not revealed.
func (s *service) authorize(ctx context.Context, actor domain.Principal, accountID, action string) (domain.Account, domain.Member, error) {
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

func (s *service) auditEntry(actor domain.Principal, accountID, action, target string) domain.AuditEntry {
	return domain.AuditEntry{ID: newID(), AccountID: accountID, OccurredAt: s.now(), Actor: actor,
		Action: action, Target: target, Outcome: domain.OutcomeSuccess}
}

// failed records a member's refused or failed mutating call in the
// account's audit log and returns err unchanged. A caller who is not a
// member (the account is "not found" for them) leaves no record: the log
// must not be writable by strangers.
func (s *service) failed(ctx context.Context, actor domain.Principal, accountID, action, target string, err error) error {
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

func (s *service) CreateAccount(ctx context.Context, actor domain.Principal, name, description string) (AccountView, error) {
	if actor.Credential == domain.CredentialAPIKey {
		return AccountView{}, domain.ErrAPIKeyNotAllowed
	}
	if err := domain.CheckAccountName(name); err != nil {
		return AccountView{}, err
	}
	if err := domain.CheckDescription(description); err != nil {
		return AccountView{}, err
	}
	now := s.now()
	a := domain.Account{ID: newID(), Name: strings.TrimSpace(name), Description: description,
		CreatedBy: actor.UserID, CreatedAt: now, UpdatedAt: now, Admins: []string{actor.UserID},
		ApprovalsRequired: domain.MinApprovalsRequired}
	m := domain.Member{AccountID: a.ID, UserID: actor.UserID, Email: actor.Email, Role: domain.RoleAdmin, AddedAt: now}
	// The membership first: should the account write fail, a membership
	// of a missing account is invisible, whereas an account nobody
	// administers could never be reached.
	if _, err := s.Members.Create(ctx, m); err != nil {
		return AccountView{}, err
	}
	a, err := s.Accounts.Create(ctx, a,
		domain.AccountCreated{Account: a},
		domain.MemberChanged{AccountID: a.ID, UserID: actor.UserID, Role: domain.RoleAdmin},
		domain.Audited{Entry: s.auditEntry(actor, a.ID, "account.create", a.ID)})
	if err != nil {
		return AccountView{}, err
	}
	return AccountView{Account: a, Role: domain.RoleAdmin}, nil
}

func (s *service) ListAccounts(ctx context.Context, actor domain.Principal, p Page) ([]AccountView, string, error) {
	ms, err := s.Members.ByUser(ctx, actor.UserID)
	if err != nil {
		return nil, "", err
	}
	if actor.Credential == domain.CredentialAPIKey {
		ms = slices.DeleteFunc(ms, func(m domain.Member) bool { return m.AccountID != actor.AccountID })
	}
	page, next, err := paginate(ms, p, func(m domain.Member) string { return m.AccountID })
	if err != nil {
		return nil, "", err
	}
	out := make([]AccountView, 0, len(page))
	for _, m := range page {
		a, err := s.Accounts.Get(ctx, m.AccountID)
		if errors.Is(err, domain.ErrAccountNotFound) {
			continue // deleted; its memberships are being purged
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, AccountView{Account: a, Role: m.Role})
	}
	return out, next, nil
}

func (s *service) Authorize(ctx context.Context, actor domain.Principal, accountID, action string) (domain.Role, error) {
	_, m, err := s.authorize(ctx, actor, accountID, action)
	return m.Role, err
}

func (s *service) GetAccount(ctx context.Context, actor domain.Principal, accountID string) (AccountView, error) {
	a, m, err := s.authorize(ctx, actor, accountID, "account.get")
	if err != nil {
		return AccountView{}, err
	}
	return AccountView{Account: a, Role: m.Role}, nil
}

func (s *service) UpdateAccount(ctx context.Context, actor domain.Principal, accountID string, c AccountChange) (AccountView, error) {
	v, err := s.updateAccount(ctx, actor, accountID, c)
	return v, s.failed(ctx, actor, accountID, "account.update", accountID, err)
}

func (s *service) updateAccount(ctx context.Context, actor domain.Principal, accountID string, c AccountChange) (AccountView, error) {
	a, m, err := s.authorize(ctx, actor, accountID, "account.update")
	if err != nil {
		return AccountView{}, err
	}
	if c.Name != nil {
		if err := domain.CheckAccountName(*c.Name); err != nil {
			return AccountView{}, err
		}
		a.Name = strings.TrimSpace(*c.Name)
	}
	if c.Description != nil {
		if err := domain.CheckDescription(*c.Description); err != nil {
			return AccountView{}, err
		}
		a.Description = *c.Description
	}
	if c.ApprovalsRequired != nil {
		// Pending tasks are not re-examined here: the next approval of
		// each applies the new number.
		if err := domain.CheckApprovalsRequired(*c.ApprovalsRequired); err != nil {
			return AccountView{}, err
		}
		a.ApprovalsRequired = *c.ApprovalsRequired
	}
	a.UpdatedAt = s.now()
	a, err = s.Accounts.Update(ctx, a, domain.AccountUpdated{Account: a},
		domain.Audited{Entry: s.auditEntry(actor, accountID, "account.update", accountID)})
	if err != nil {
		return AccountView{}, err
	}
	return AccountView{Account: a, Role: m.Role}, nil
}

func (s *service) DeleteAccount(ctx context.Context, actor domain.Principal, accountID string) error {
	err := s.deleteAccount(ctx, actor, accountID)
	return s.failed(ctx, actor, accountID, "account.delete", accountID, err)
}

func (s *service) deleteAccount(ctx context.Context, actor domain.Principal, accountID string) error {
	a, _, err := s.authorize(ctx, actor, accountID, "account.delete")
	if err != nil {
		return err
	}
	// Members and API keys go when the service consumes AccountDeleted.
	return s.Accounts.Delete(ctx, a, domain.AccountDeleted{AccountID: accountID},
		domain.Audited{Entry: s.auditEntry(actor, accountID, "account.delete", accountID)})
}

func (s *service) AddMember(ctx context.Context, actor domain.Principal, accountID, email, role string) (domain.Member, error) {
	m, err := s.addMember(ctx, actor, accountID, email, role)
	return m, s.failed(ctx, actor, accountID, "member.add", cmp.Or(m.UserID, email), err)
}

func (s *service) addMember(ctx context.Context, actor domain.Principal, accountID, email, role string) (domain.Member, error) {
	if _, _, err := s.authorize(ctx, actor, accountID, "member.add"); err != nil {
		return domain.Member{}, err
	}
	r, err := domain.ParseRole(role)
	if err != nil {
		return domain.Member{}, err
	}
	email, err = domain.NormalizeEmail(email)
	if err != nil {
		return domain.Member{}, err
	}
	u, err := s.Users.ByEmail(ctx, email)
	if err != nil {
		return domain.Member{}, err
	}
	m := domain.Member{AccountID: accountID, UserID: u.ID, Email: u.Email, Role: r, AddedAt: s.now()}
	m, err = s.Members.Create(ctx, m, domain.MemberChanged{AccountID: accountID, UserID: u.ID, Role: r},
		domain.Audited{Entry: s.auditEntry(actor, accountID, "member.add", u.ID)})
	if err != nil || r != domain.RoleAdmin {
		return m, err
	}
	// A new admin is counted after the membership is written: if this
	// fails, the admin set undercounts, which only errs on the safe side.
	return m, s.changeAdmins(ctx, accountID, func(admins []string) ([]string, error) {
		return append(admins, u.ID), nil
	})
}

func (s *service) ListMembers(ctx context.Context, actor domain.Principal, accountID string, p Page) ([]domain.Member, string, error) {
	if _, _, err := s.authorize(ctx, actor, accountID, "member.list"); err != nil {
		return nil, "", err
	}
	ms, err := s.Members.ByAccount(ctx, accountID)
	if err != nil {
		return nil, "", err
	}
	return paginate(ms, p, func(m domain.Member) string { return m.UserID })
}

// changeAdmins applies f to the account's admin set and stores the result,
// re-reading and retrying when another change came between. f refuses a
// change by returning an error.
func (s *service) changeAdmins(ctx context.Context, accountID string, f func(admins []string) ([]string, error)) error {
	for range 5 {
		a, err := s.Accounts.Get(ctx, accountID)
		if err != nil {
			return err
		}
		admins, err := s.adminsOf(ctx, a)
		if err != nil {
			return err
		}
		next, err := f(admins)
		if err != nil {
			return err
		}
		slices.Sort(next)
		next = slices.Compact(next)
		if slices.Equal(next, a.Admins) {
			return nil
		}
		a.Admins = next
		_, err = s.Accounts.Update(ctx, a)
		if !errors.Is(err, domain.ErrConcurrentChange) {
			return err
		}
	}
	return domain.ErrConcurrentChange
}

// adminsOf returns (a copy of) the account's admin set.
func (s *service) adminsOf(ctx context.Context, a domain.Account) ([]string, error) {
	if a.Admins != nil {
		return slices.Clone(a.Admins), nil
	}
	// An account written before the admin set existed.
	ms, err := s.Members.ByAccount(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	var admins []string
	for _, m := range ms {
		if m.Role == domain.RoleAdmin {
			admins = append(admins, m.UserID)
		}
	}
	return admins, nil
}

// dropAdmin removes userID from the admin set unless it is the last admin.
func (s *service) dropAdmin(ctx context.Context, accountID, userID string) error {
	return s.changeAdmins(ctx, accountID, func(admins []string) ([]string, error) {
		next := slices.DeleteFunc(admins, func(id string) bool { return id == userID })
		if len(next) == 0 {
			return nil, domain.ErrLastAdmin
		}
		return next, nil
	})
}

func (s *service) RemoveMember(ctx context.Context, actor domain.Principal, accountID, userID string) error {
	err := s.removeMember(ctx, actor, accountID, userID)
	return s.failed(ctx, actor, accountID, "member.remove", userID, err)
}

func (s *service) removeMember(ctx context.Context, actor domain.Principal, accountID, userID string) error {
	if _, _, err := s.authorize(ctx, actor, accountID, "member.remove"); err != nil {
		return err
	}
	m, err := s.Members.Get(ctx, accountID, userID)
	if err != nil {
		return err
	}
	// An admin leaves the admin set before the membership goes, so a
	// failure in between undercounts admins rather than overcounting.
	if m.Role == domain.RoleAdmin {
		if err := s.dropAdmin(ctx, accountID, userID); err != nil {
			return err
		}
	}
	if err := s.Members.Delete(ctx, m, domain.MemberChanged{AccountID: accountID, UserID: userID},
		domain.Audited{Entry: s.auditEntry(actor, accountID, "member.remove", userID)}); err != nil {
		return err
	}
	// The member's API keys in this account go too; re-adding the member
	// must not bring them back.
	return s.revokeKeys(ctx, accountID, func(k domain.APIKey) bool { return k.UserID == userID })
}

// revokeKeys deletes the account's API keys that match, announcing each.
func (s *service) revokeKeys(ctx context.Context, accountID string, match func(domain.APIKey) bool) error {
	keys, err := s.APIKeys.ByAccount(ctx, accountID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if !match(k) {
			continue
		}
		err := s.APIKeys.Delete(ctx, k, domain.APIKeyRevoked{AccountID: accountID, KeyID: k.ID, TokenHash: k.TokenHash})
		if err != nil && !errors.Is(err, domain.ErrAPIKeyNotFound) {
			return err
		}
	}
	return nil
}

func (s *service) SetMemberRole(ctx context.Context, actor domain.Principal, accountID, userID, role string) (domain.Member, error) {
	m, err := s.setMemberRole(ctx, actor, accountID, userID, role)
	return m, s.failed(ctx, actor, accountID, "member.role", userID, err)
}

func (s *service) setMemberRole(ctx context.Context, actor domain.Principal, accountID, userID, role string) (domain.Member, error) {
	if _, _, err := s.authorize(ctx, actor, accountID, "member.role"); err != nil {
		return domain.Member{}, err
	}
	r, err := domain.ParseRole(role)
	if err != nil {
		return domain.Member{}, err
	}
	m, err := s.Members.Get(ctx, accountID, userID)
	if err != nil {
		return domain.Member{}, err
	}
	if m.Role == r {
		return m, nil
	}
	// Demotions leave the admin set first and promotions join it last, so
	// a failure in between never counts an admin who is not one.
	if m.Role == domain.RoleAdmin {
		if err := s.dropAdmin(ctx, accountID, userID); err != nil {
			return domain.Member{}, err
		}
	}
	m.Role = r
	m, err = s.Members.Update(ctx, m, domain.MemberChanged{AccountID: accountID, UserID: userID, Role: r},
		domain.Audited{Entry: s.auditEntry(actor, accountID, "member.role", userID)})
	if err != nil || r != domain.RoleAdmin {
		return m, err
	}
	return m, s.changeAdmins(ctx, accountID, func(admins []string) ([]string, error) {
		return append(admins, userID), nil
	})
}

func (s *service) CreateAPIKey(ctx context.Context, actor domain.Principal, accountID, name string, ttl time.Duration) (domain.APIKey, string, error) {
	k, token, err := s.createAPIKey(ctx, actor, accountID, name, ttl)
	return k, token, s.failed(ctx, actor, accountID, "apikey.create", cmp.Or(k.ID, name), err)
}

func (s *service) createAPIKey(ctx context.Context, actor domain.Principal, accountID, name string, ttl time.Duration) (domain.APIKey, string, error) {
	if _, _, err := s.authorize(ctx, actor, accountID, "apikey.create"); err != nil {
		return domain.APIKey{}, "", err
	}
	if actor.Credential == domain.CredentialAPIKey {
		return domain.APIKey{}, "", domain.ErrAPIKeyNotAllowed
	}
	if err := domain.CheckAccountName(name); err != nil {
		return domain.APIKey{}, "", errs.New(errs.Invalid, strings.Replace(err.Error(), "name", "API key name", 1))
	}
	switch {
	case ttl == 0:
		ttl = s.APIKeyTTL
	case ttl < time.Minute || ttl > s.MaxAPIKeyTTL:
		return domain.APIKey{}, "", errs.Newf(errs.Invalid, "ttl must be between 60 and %d seconds", int64(s.MaxAPIKeyTTL/time.Second))
	}
	now := s.now()
	k := domain.APIKey{ID: newID(), AccountID: accountID, UserID: actor.UserID, Email: actor.Email,
		Name: strings.TrimSpace(name), CreatedAt: now, ExpiresAt: now.Add(ttl)}
	token := apiKeyPrefix + k.ID + "_" + randomSecret()
	k.TokenHash = HashToken(token)
	if err := s.APIKeys.Create(ctx, k, domain.Audited{Entry: s.auditEntry(actor, accountID, "apikey.create", k.ID)}); err != nil {
		return domain.APIKey{}, "", err
	}
	return k, token, nil
}

func (s *service) ListAPIKeys(ctx context.Context, actor domain.Principal, accountID string, p Page) ([]domain.APIKey, string, error) {
	_, m, err := s.authorize(ctx, actor, accountID, "apikey.list")
	if err != nil {
		return nil, "", err
	}
	ks, err := s.APIKeys.ByAccount(ctx, accountID)
	if err != nil {
		return nil, "", err
	}
	if m.Role != domain.RoleAdmin { // others see their own keys only
		ks = slices.DeleteFunc(ks, func(k domain.APIKey) bool { return k.UserID != actor.UserID })
	}
	return paginate(ks, p, func(k domain.APIKey) string { return k.ID })
}

func (s *service) RevokeAPIKey(ctx context.Context, actor domain.Principal, accountID, keyID string) error {
	err := s.revokeAPIKey(ctx, actor, accountID, keyID)
	return s.failed(ctx, actor, accountID, "apikey.revoke", keyID, err)
}

func (s *service) revokeAPIKey(ctx context.Context, actor domain.Principal, accountID, keyID string) error {
	_, m, err := s.authorize(ctx, actor, accountID, "apikey.revoke")
	if err != nil {
		return err
	}
	k, err := s.APIKeys.Get(ctx, accountID, keyID)
	if err != nil {
		return err
	}
	if m.Role != domain.RoleAdmin && k.UserID != actor.UserID {
		return domain.ErrAPIKeyNotFound
	}
	return s.APIKeys.Delete(ctx, k, domain.APIKeyRevoked{AccountID: accountID, KeyID: k.ID, TokenHash: k.TokenHash},
		domain.Audited{Entry: s.auditEntry(actor, accountID, "apikey.revoke", k.ID)})
}

func (s *service) ListAudit(ctx context.Context, actor domain.Principal, accountID string, p Page) ([]domain.AuditEntry, string, error) {
	if _, _, err := s.authorize(ctx, actor, accountID, "audit.list"); err != nil {
		return nil, "", err
	}
	limit, err := pageLimit(p)
	if err != nil {
		return nil, "", err
	}
	return s.Audit.List(ctx, accountID, p.Cursor, limit)
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

// PurgeAccount removes the members, API keys and tasks of a deleted
// account. It runs from the AccountDeleted event and may run more than once.
func (s *service) PurgeAccount(ctx context.Context, accountID string) error {
	if _, err := s.Accounts.Get(ctx, accountID); err == nil {
		return nil // not deleted (or recreated); nothing to purge
	} else if !errors.Is(err, domain.ErrAccountNotFound) {
		return err
	}
	if err := s.revokeKeys(ctx, accountID, func(domain.APIKey) bool { return true }); err != nil {
		return err
	}
	if err := s.purgeTasks(ctx, accountID); err != nil {
		return err
	}
	ms, err := s.Members.ByAccount(ctx, accountID)
	if err != nil {
		return err
	}
	for _, m := range ms {
		err := s.Members.Delete(ctx, m, domain.MemberChanged{AccountID: accountID, UserID: m.UserID})
		if err != nil && !errors.Is(err, domain.ErrMemberNotFound) {
			return err
		}
	}
	return nil
}
