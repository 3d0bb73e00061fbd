package app

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

func (s *service) AddMember(ctx context.Context, actor domain.Principal, accountID, email, role string) (domain.Member, *domain.Task, error) {
	m, t, err := s.addMember(ctx, actor, accountID, email, role)
	return m, t, s.failed(ctx, actor, accountID, authz.MemberAdd, cmp.Or(m.UserID, email), err)
}

// addMember adds a user to the account. One asked for as an admin joins
// as a member, and a task asks to make them an admin (openChange).
func (s *service) addMember(ctx context.Context, actor domain.Principal, accountID, email, role string) (domain.Member, *domain.Task, error) {
	a, _, err := s.authorize(ctx, actor, accountID, authz.MemberAdd)
	if err != nil {
		return domain.Member{}, nil, err
	}
	r, err := domain.ParseRole(role)
	if err != nil {
		return domain.Member{}, nil, err
	}
	email, err = domain.NormalizeEmail(email)
	if err != nil {
		return domain.Member{}, nil, err
	}
	u, err := s.Users.ByEmail(ctx, email)
	if err != nil {
		return domain.Member{}, nil, err
	}
	m := domain.Member{AccountID: accountID, UserID: u.ID, Email: u.Email, Role: r, AddedAt: s.now()}
	if r == domain.RoleAdmin {
		m.Role = domain.RoleMember
	}
	m, err = s.Members.Create(ctx, m, domain.MemberChanged{AccountID: accountID, UserID: u.ID, Role: m.Role},
		domain.Audited{Entry: s.auditEntry(actor, accountID, authz.MemberAdd, u.ID)})
	if err != nil || r != domain.RoleAdmin {
		return m, nil, err
	}
	return s.askAdmin(ctx, actor, a, m, authz.MemberAdd)
}

// askAdmin opens the task that makes member m an admin, and returns the
// member as it is after it (an admin at once under a quorum of 0).
func (s *service) askAdmin(ctx context.Context, actor domain.Principal, a domain.Account, m domain.Member, action authz.Action) (domain.Member, *domain.Task, error) {
	t, err := domain.NewAdminTask(a.ID, domain.Grantee{UserID: m.UserID, Email: m.Email}, actor.UserID, s.now())
	if err != nil {
		return m, nil, err
	}
	if t, err = s.openChange(ctx, actor, a, t, action, m.UserID); err != nil {
		return m, nil, err
	}
	if t.Applied {
		m, err = s.Members.Get(ctx, a.ID, m.UserID)
	}
	return m, &t, err
}

func (s *service) ListMembers(ctx context.Context, actor domain.Principal, accountID string, p Page) ([]domain.Member, string, error) {
	if _, _, err := s.authorize(ctx, actor, accountID, authz.MemberList); err != nil {
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
func (s *service) changeAdmins(ctx context.Context, accountID string, f func(a domain.Account, admins []string) ([]string, error)) error {
	for range 5 {
		a, err := s.Accounts.Get(ctx, accountID)
		if err != nil {
			return err
		}
		admins, err := s.adminsOf(ctx, a)
		if err != nil {
			return err
		}
		next, err := f(a, admins)
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

// dropAdmin removes userID from the admin set unless it is the last admin
// or the rest could not reach the account's approvals_required.
func (s *service) dropAdmin(ctx context.Context, accountID, userID string) error {
	return s.changeAdmins(ctx, accountID, func(a domain.Account, admins []string) ([]string, error) {
		next := slices.DeleteFunc(admins, func(id string) bool { return id == userID })
		if len(next) == 0 {
			return nil, domain.ErrLastAdmin
		}
		if err := domain.CheckQuorumReachable(a.ApprovalsRequired, len(next)); err != nil {
			return nil, domain.ErrQuorumUnreachable.Withf(
				"the account's approvals_required is %d, which needs %d admins: lower it before one leaves", a.ApprovalsRequired, a.ApprovalsRequired+1)
		}
		return next, nil
	})
}

func (s *service) RemoveMember(ctx context.Context, actor domain.Principal, accountID, userID string) error {
	err := s.removeMember(ctx, actor, accountID, userID)
	return s.failed(ctx, actor, accountID, authz.MemberRemove, userID, err)
}

func (s *service) removeMember(ctx context.Context, actor domain.Principal, accountID, userID string) error {
	if _, _, err := s.authorize(ctx, actor, accountID, authz.MemberRemove); err != nil {
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
		domain.Audited{Entry: s.auditEntry(actor, accountID, authz.MemberRemove, userID)}); err != nil {
		return err
	}
	// The member's API keys in this account go too, and a pending task to
	// make them an admin; re-adding the member must not bring them back.
	if err := s.retractAdminTasks(ctx, accountID, userID); err != nil {
		return err
	}
	return s.revokeKeys(ctx, accountID, func(k domain.APIKey) bool { return k.UserID == userID })
}

func (s *service) SetMemberRole(ctx context.Context, actor domain.Principal, accountID, userID, role string) (domain.Member, *domain.Task, error) {
	m, t, err := s.setMemberRole(ctx, actor, accountID, userID, role)
	return m, t, s.failed(ctx, actor, accountID, authz.MemberSetRole, userID, err)
}

// setMemberRole changes a member's role; a promotion to admin is asked
// for as a task (askAdmin).
func (s *service) setMemberRole(ctx context.Context, actor domain.Principal, accountID, userID, role string) (domain.Member, *domain.Task, error) {
	a, _, err := s.authorize(ctx, actor, accountID, authz.MemberSetRole)
	if err != nil {
		return domain.Member{}, nil, err
	}
	r, err := domain.ParseRole(role)
	if err != nil {
		return domain.Member{}, nil, err
	}
	m, err := s.Members.Get(ctx, accountID, userID)
	if err != nil {
		return domain.Member{}, nil, err
	}
	if m.Role == r {
		return m, nil, nil
	}
	if r == domain.RoleAdmin {
		return s.askAdmin(ctx, actor, a, m, authz.MemberSetRole)
	}
	// A demotion leaves the admin set first, so a failure in between
	// never counts an admin who is not one.
	if m.Role == domain.RoleAdmin {
		if err := s.dropAdmin(ctx, accountID, userID); err != nil {
			return domain.Member{}, nil, err
		}
	}
	if m, err = s.writeRole(ctx, m, r, s.auditEntry(actor, accountID, authz.MemberSetRole, userID)); err != nil {
		return domain.Member{}, nil, err
	}
	// Setting another role settles a pending promotion: it is withdrawn.
	return m, nil, s.retractAdminTasks(ctx, accountID, userID)
}

// writeRole gives member m (as read) role r, audited as entry, unless
// they have it already. The membership's record also moves when its
// outbox is cleared: a conflict is read again, so that a change of the
// admin set made before is never left half done.
func (s *service) writeRole(ctx context.Context, m domain.Member, r domain.Role, entry domain.AuditEntry) (domain.Member, error) {
	for attempt := 1; m.Role != r; attempt++ {
		want := m
		want.Role = r
		next, err := s.Members.Update(ctx, want, domain.MemberChanged{AccountID: m.AccountID, UserID: m.UserID, Role: r}, domain.Audited{Entry: entry})
		if err == nil || !errors.Is(err, domain.ErrConcurrentChange) || attempt >= maxDecideAttempts {
			return next, err
		}
		if m, err = s.Members.Get(ctx, m.AccountID, m.UserID); err != nil {
			return m, err
		}
	}
	return m, nil
}
