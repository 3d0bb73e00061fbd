package app

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/idempotency"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// AccountView is an account as one member sees it.
type AccountView struct {
	domain.Account
	Role domain.Role
	// Task is the approval task an update opened, if it did.
	Task *domain.Task
}

// AccountChange is what UpdateAccount changes; nil fields stay as they are.
type AccountChange struct {
	Name              *string
	Description       *string
	ApprovalsRequired *int
	// SecretsNeedApproval turns secret tasks on or off; off only under a
	// quorum of 0 (lowering the quorum is a task itself).
	SecretsNeedApproval *bool
}

func (s *service) CreateAccount(ctx context.Context, actor domain.Principal, name, description, idempotencyKey string) (AccountView, error) {
	if actor.Credential == domain.CredentialAPIKey {
		return AccountView{}, domain.ErrAPIKeyNotAllowed
	}
	if err := domain.CheckAccountName(name); err != nil {
		return AccountView{}, err
	}
	if err := domain.CheckDescription(description); err != nil {
		return AccountView{}, err
	}
	if err := idempotency.Check(idempotencyKey); err != nil {
		return AccountView{}, err
	}
	now := s.now()
	id := newID()
	if idempotencyKey != "" {
		id = idempotency.ID(actor.UserID, "account", "", idempotencyKey)
	}
	a := domain.Account{ID: id, Name: strings.TrimSpace(name), Description: description,
		CreatedBy: actor.UserID, CreatedAt: now, UpdatedAt: now, Admins: []string{actor.UserID}}
	m := domain.Member{AccountID: a.ID, UserID: actor.UserID, Email: actor.Email, Role: domain.RoleAdmin, AddedAt: now}
	// The membership first: should the account write fail, a membership
	// of a missing account is invisible, whereas an account nobody
	// administers could never be reached. Sent again with its key, a
	// creation finds what its first sending wrote and goes on.
	if _, err := s.Members.Create(ctx, m); err != nil && (idempotencyKey == "" || !errors.Is(err, domain.ErrAlreadyMember)) {
		return AccountView{}, err
	}
	created, err := s.Accounts.Create(ctx, a,
		domain.AccountCreated{Account: a},
		domain.MemberChanged{AccountID: a.ID, UserID: actor.UserID, Role: domain.RoleAdmin},
		domain.Audited{Entry: s.auditEntry(actor, a.ID, authz.AccountCreate, a.ID)})
	if idempotencyKey != "" && errors.Is(err, domain.ErrAccountExists) {
		return s.createdBefore(ctx, actor, a)
	}
	if err != nil {
		return AccountView{}, err
	}
	return AccountView{Account: created, Role: domain.RoleAdmin}, nil
}

// createdBefore answers a creation sent again with its idempotency key:
// the account its first sending made, unless the key was used for
// another request (another name or description).
func (s *service) createdBefore(ctx context.Context, actor domain.Principal, want domain.Account) (AccountView, error) {
	got, err := s.Accounts.Get(ctx, want.ID)
	if err != nil {
		return AccountView{}, err
	}
	if got.CreatedBy != actor.UserID || got.Name != want.Name || got.Description != want.Description {
		return AccountView{}, idempotency.ErrKeyReused
	}
	m, err := s.Members.Get(ctx, got.ID, actor.UserID)
	if err != nil {
		return AccountView{}, err
	}
	return AccountView{Account: got, Role: m.Role}, nil
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

func (s *service) GetAccount(ctx context.Context, actor domain.Principal, accountID string) (AccountView, error) {
	a, m, err := s.authorize(ctx, actor, accountID, authz.AccountGet)
	if err != nil {
		return AccountView{}, err
	}
	return AccountView{Account: a, Role: m.Role}, nil
}

func (s *service) UpdateAccount(ctx context.Context, actor domain.Principal, accountID string, c AccountChange) (AccountView, error) {
	v, err := s.updateAccount(ctx, actor, accountID, c)
	return v, s.failed(ctx, actor, accountID, authz.AccountUpdate, accountID, err)
}

func (s *service) updateAccount(ctx context.Context, actor domain.Principal, accountID string, c AccountChange) (AccountView, error) {
	a, m, err := s.authorize(ctx, actor, accountID, authz.AccountUpdate)
	if err != nil {
		return AccountView{}, err
	}
	if c.Name != nil {
		if err := domain.CheckAccountName(*c.Name); err != nil {
			return AccountView{}, err
		}
	}
	if c.Description != nil {
		if err := domain.CheckDescription(*c.Description); err != nil {
			return AccountView{}, err
		}
	}
	// A new quorum is checked before anything changes, and asked for as a
	// task (openChange) after the rest is written.
	var quorum *domain.Task
	if c.ApprovalsRequired != nil && *c.ApprovalsRequired != a.ApprovalsRequired {
		t, err := domain.NewQuorumTask(accountID, *c.ApprovalsRequired, actor.UserID, s.now())
		if err != nil {
			return AccountView{}, err
		}
		admins, err := s.adminsOf(ctx, a)
		if err != nil {
			return AccountView{}, err
		}
		if err := domain.CheckQuorumReachable(t.NewQuorum, len(admins)); err != nil {
			return AccountView{}, err
		}
		if err := s.notPending(ctx, t); err != nil {
			return AccountView{}, err
		}
		quorum = &t
	}
	secrets := c.SecretsNeedApproval != nil && *c.SecretsNeedApproval != a.SecretsNeedApproval
	if secrets && !*c.SecretsNeedApproval && a.ApprovalsRequired > 0 {
		return AccountView{}, errs.Newf(errs.Conflict, "secrets_need_approval cannot be turned off while approvals_required is %d: "+
			"one admin would then set secrets the quorum was to approve; lower approvals_required to 0 first (itself a task)", a.ApprovalsRequired)
	}
	if c.Name != nil || c.Description != nil || secrets {
		if c.Name != nil {
			a.Name = strings.TrimSpace(*c.Name)
		}
		if c.Description != nil {
			a.Description = *c.Description
		}
		if secrets {
			a.SecretsNeedApproval = *c.SecretsNeedApproval
		}
		a.UpdatedAt = s.now()
		a, err = s.Accounts.Update(ctx, a, domain.AccountUpdated{Account: a},
			domain.Audited{Entry: s.auditEntry(actor, accountID, authz.AccountUpdate, accountID)})
		if err != nil {
			return AccountView{}, err
		}
	}
	v := AccountView{Account: a, Role: m.Role}
	if quorum == nil {
		return v, nil
	}
	t, err := s.openChange(ctx, actor, a, *quorum, authz.AccountUpdate, accountID)
	if err != nil {
		return AccountView{}, err
	}
	v.Task = &t
	if t.Applied {
		v.Account, err = s.Accounts.Get(ctx, accountID)
	}
	return v, err
}

func (s *service) DeleteAccount(ctx context.Context, actor domain.Principal, accountID string) error {
	err := s.deleteAccount(ctx, actor, accountID)
	return s.failed(ctx, actor, accountID, authz.AccountDelete, accountID, err)
}

func (s *service) deleteAccount(ctx context.Context, actor domain.Principal, accountID string) error {
	a, _, err := s.authorize(ctx, actor, accountID, authz.AccountDelete)
	if err != nil {
		return err
	}
	// Members and API keys go when the service consumes AccountDeleted.
	return s.Accounts.Delete(ctx, a, domain.AccountDeleted{AccountID: accountID},
		domain.Audited{Entry: s.auditEntry(actor, accountID, authz.AccountDelete, accountID)})
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
