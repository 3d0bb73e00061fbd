package app

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// Changes of who approves (the account's approvals_required, and its
// admins) are approval tasks themselves, under the quorum in force, so
// that one admin cannot lower the bar and then pass it alone.

// openChange opens the task of a change an admin asked for, recorded in
// the audit log as action on target. The request is the requester's own
// approval, which suffices under a quorum of 0: the change is then
// approved and applied at once. It returns the task as stored.
func (s *service) openChange(ctx context.Context, actor domain.Principal, a domain.Account, t domain.Task,
	action authz.Action, target string) (domain.Task, error) {
	if err := s.notPending(ctx, t); err != nil {
		return domain.Task{}, err
	}
	admins, err := s.adminsOf(ctx, a)
	if err != nil {
		return domain.Task{}, err
	}
	t.Quorum = a.ApprovalsRequired
	done, err := t.Approve(actor.UserID, t.Quorum, append(admins, actor.UserID), s.now())
	if err != nil && !errors.Is(err, domain.ErrOwnApproval) {
		return domain.Task{}, err
	}
	evs := []domain.Event{domain.TaskCreated{Task: t}, domain.Audited{Entry: s.auditEntry(actor, a.ID, action, target)}}
	if done {
		evs = append(evs, domain.TaskApproved{Task: t})
	}
	if t, err = s.Tasks.Create(ctx, t, evs...); err != nil {
		return t, err
	}
	if t, err = s.apply(ctx, t); err != nil {
		return t, err
	}
	return s.withProgress(ctx, a, t)
}

// notPending refuses a change while a pending task asks for the same.
func (s *service) notPending(ctx context.Context, t domain.Task) error {
	ts, err := s.Tasks.ByAccount(ctx, t.AccountID)
	if err != nil {
		return err
	}
	if i := slices.IndexFunc(ts, func(p domain.Task) bool { return p.SameChange(t) }); i >= 0 {
		return domain.ErrPendingChange.Withf("task %s asks for this change already: approve or deny it first", ts[i].ID)
	}
	return nil
}

// retractAdminTasks withdraws the pending tasks that would make userID an
// admin: the member left or was demoted, and a later return must not
// revive them.
func (s *service) retractAdminTasks(ctx context.Context, accountID, userID string) error {
	ts, err := s.Tasks.ByAccount(ctx, accountID)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.Kind == domain.KindAdmin && t.Status == domain.StatusPending && t.Admin != nil && t.Admin.UserID == userID {
			if err := s.retract(ctx, t); err != nil {
				return fmt.Errorf("withdrawing task %s: %w", t.ID, err)
			}
		}
	}
	return nil
}

// ApplyTask makes the change of an approved quorum or admin task, unless
// it was made already. The approval applies it at once; this is for an
// approval whose application was cut short, driven by TaskApproved.
func (s *service) ApplyTask(ctx context.Context, accountID, taskID string) error {
	t, err := s.Tasks.Get(ctx, accountID, taskID)
	if errors.Is(err, domain.ErrTaskNotFound) {
		return nil // purged with its account
	} else if err != nil {
		return err
	}
	_, err = s.apply(ctx, t)
	return err
}

// apply makes the change of an approved quorum or admin task, then marks
// the task applied; other tasks are for the CA and attestation to apply.
// Each step may run twice: both check what is done already.
func (s *service) apply(ctx context.Context, t domain.Task) (domain.Task, error) {
	if t.Status != domain.StatusApproved || t.Applied {
		return t, nil
	}
	var err error
	switch t.Kind {
	case domain.KindQuorum:
		err = s.applyQuorum(ctx, t)
	case domain.KindAdmin:
		err = s.promote(ctx, t)
	default:
		return t, nil
	}
	if errors.Is(err, domain.ErrAccountNotFound) || errors.Is(err, domain.ErrMemberNotFound) {
		err = nil // gone meanwhile: nothing left to change
	}
	if err != nil {
		return t, fmt.Errorf("applying approved task %s: %w", t.ID, err)
	}
	for range maxDecideAttempts {
		t.Applied = true
		next, err := s.Tasks.Update(ctx, t)
		if !errors.Is(err, domain.ErrConcurrentChange) {
			next.Counted, next.Required = t.Counted, t.Required
			return next, err
		}
		if t, err = s.Tasks.Get(ctx, t.AccountID, t.ID); err != nil || t.Applied {
			return t, err
		}
	}
	return t, domain.ErrConcurrentChange
}

// applyQuorum sets the account's approvals_required from an approved
// quorum task, unless a task approved later set it already. The admins
// must still be able to reach it: a demotion may have come between.
func (s *service) applyQuorum(ctx context.Context, t domain.Task) error {
	for range maxDecideAttempts {
		a, err := s.Accounts.Get(ctx, t.AccountID)
		if err != nil {
			return err
		}
		if !t.UpdatedAt.After(a.QuorumAt) {
			return nil
		}
		admins, err := s.adminsOf(ctx, a)
		if err != nil {
			return err
		}
		if err := domain.CheckQuorumReachable(t.NewQuorum, len(admins)); err != nil {
			return err
		}
		a.ApprovalsRequired, a.QuorumAt, a.UpdatedAt = t.NewQuorum, t.UpdatedAt, s.now()
		_, err = s.Accounts.Update(ctx, a, domain.AccountUpdated{Account: a},
			domain.Audited{Entry: s.systemEntry(t, authz.AccountUpdate, a.ID)})
		if !errors.Is(err, domain.ErrConcurrentChange) {
			return err
		}
	}
	return domain.ErrConcurrentChange
}

// promote makes the member of an approved admin task an admin.
func (s *service) promote(ctx context.Context, t domain.Task) error {
	if t.Admin == nil {
		return nil
	}
	id := t.Admin.UserID
	m, err := s.Members.Get(ctx, t.AccountID, id)
	if err != nil {
		return err
	}
	if _, err := s.writeRole(ctx, m, domain.RoleAdmin, s.systemEntry(t, authz.MemberSetRole, id)); err != nil {
		return err
	}
	// The admin set last, so that a failure before never counts an admin
	// who is not one.
	return s.changeAdmins(ctx, t.AccountID, func(_ domain.Account, admins []string) ([]string, error) {
		return append(admins, id), nil
	})
}

// systemEntry is the audit record of a change Cloister made on its own
// because task t was approved.
func (s *service) systemEntry(t domain.Task, action authz.Action, target string) domain.AuditEntry {
	e := s.auditEntry(domain.Principal{Credential: domain.CredentialSystem}, t.AccountID, action, target)
	e.Cause = fmt.Sprintf("%s task %s approved", t.Kind, t.ID)
	return e
}
