package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

func (s *service) ListTasks(ctx context.Context, actor domain.Principal, accountID, status string) ([]domain.Task, error) {
	a, _, err := s.authorize(ctx, actor, accountID, authz.TaskList)
	if err != nil {
		return nil, err
	}
	var want domain.TaskStatus
	if status != "" {
		st, err := domain.ParseTaskStatus(status)
		if err != nil {
			return nil, err
		}
		want = st
	}
	ts, err := s.Tasks.ByAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if want != "" {
		ts = slices.DeleteFunc(ts, func(t domain.Task) bool { return t.Status != want })
	}
	slices.SortFunc(ts, func(a, b domain.Task) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	ps := make([]*domain.Task, len(ts))
	for i := range ts {
		ps[i] = &ts[i]
	}
	return ts, s.progress(ctx, a, ps...)
}

// progress fills each task's approvals counted and required.
func (s *service) progress(ctx context.Context, a domain.Account, ts ...*domain.Task) error {
	admins, err := s.adminsOf(ctx, a)
	if err != nil {
		return err
	}
	for _, t := range ts {
		t.Progress(a.ApprovalsRequired, admins)
	}
	return nil
}

// withProgress returns t with its approvals counted and required.
func (s *service) withProgress(ctx context.Context, a domain.Account, t domain.Task) (domain.Task, error) {
	err := s.progress(ctx, a, &t)
	return t, err
}

func (s *service) GetTask(ctx context.Context, actor domain.Principal, accountID, taskID string) (domain.Task, error) {
	a, _, err := s.authorize(ctx, actor, accountID, authz.TaskGet)
	if err != nil {
		return domain.Task{}, err
	}
	t, err := s.Tasks.Get(ctx, accountID, taskID)
	if err != nil {
		return domain.Task{}, err
	}
	return s.withProgress(ctx, a, t)
}

func (s *service) ApproveTask(ctx context.Context, actor domain.Principal, accountID, taskID string) (domain.Task, error) {
	t, err := s.decide(ctx, actor, accountID, taskID, authz.TaskApprove, func(a domain.Account, t *domain.Task, now time.Time) (domain.Event, error) {
		admins, err := s.adminsOf(ctx, a)
		if err != nil {
			return nil, err
		}
		// The actor passed the role check on its membership; the admin
		// set, written after a promotion, may not show it yet.
		if t.Kind == domain.KindQuorum {
			if err := domain.CheckQuorumReachable(t.NewQuorum, len(admins)); err != nil {
				return nil, err
			}
		}
		admins = append(admins, actor.UserID)
		done, err := t.Approve(actor.UserID, t.QuorumWith(a.ApprovalsRequired), admins, now)
		if err != nil || !done {
			return nil, err
		}
		return domain.TaskApproved{Task: *t}, nil
	})
	if err == nil {
		t, err = s.apply(ctx, t)
	}
	return t, s.failed(ctx, actor, accountID, authz.TaskApprove, taskID, err)
}

func (s *service) DenyTask(ctx context.Context, actor domain.Principal, accountID, taskID string) (domain.Task, error) {
	t, err := s.decide(ctx, actor, accountID, taskID, authz.TaskDeny, func(_ domain.Account, t *domain.Task, now time.Time) (domain.Event, error) {
		if err := t.Deny(now); err != nil {
			return nil, err
		}
		return domain.TaskDenied{Task: *t}, nil
	})
	return t, s.failed(ctx, actor, accountID, authz.TaskDeny, taskID, err)
}

func (s *service) WithdrawTask(ctx context.Context, actor domain.Principal, accountID, taskID string) (domain.Task, error) {
	t, err := s.decide(ctx, actor, accountID, taskID, authz.TaskWithdraw, func(_ domain.Account, t *domain.Task, now time.Time) (domain.Event, error) {
		if err := t.Withdraw(now); err != nil {
			return nil, err
		}
		return domain.TaskWithdrawn{Task: *t}, nil
	})
	return t, s.failed(ctx, actor, accountID, authz.TaskWithdraw, taskID, err)
}

// decide applies an admin's decision to a task and stores it with its
// audit record and the event f returns (nil when the task changed without
// a transition, as an approval short of the quorum). Should another
// decision on the task come between reading and writing, it starts over
// from a fresh read (a few times: the store's own outbox clearing also
// moves the record on), so two admins approving at once both count; a
// conflict that persists is returned for the caller to retry.
// maxDecideAttempts bounds the fresh reads of decide.
const maxDecideAttempts = 5

func (s *service) decide(ctx context.Context, actor domain.Principal, accountID, taskID string, action authz.Action,
	f func(a domain.Account, t *domain.Task, now time.Time) (domain.Event, error)) (domain.Task, error) {
	for attempt := 1; ; attempt++ {
		a, _, err := s.authorize(ctx, actor, accountID, action)
		if err != nil {
			return domain.Task{}, err
		}
		t, err := s.Tasks.Get(ctx, accountID, taskID)
		if err != nil {
			return domain.Task{}, err
		}
		ev, err := f(a, &t, s.now())
		if err != nil {
			return domain.Task{}, err
		}
		evs := []domain.Event{domain.Audited{Entry: s.auditEntry(actor, accountID, action, taskID)}}
		if ev != nil {
			evs = append(evs, ev)
		}
		t, err = s.Tasks.Update(ctx, t, evs...)
		if errors.Is(err, domain.ErrConcurrentChange) && attempt < maxDecideAttempts {
			continue
		}
		if err != nil {
			return t, err
		}
		return s.withProgress(ctx, a, t)
	}
}

func (s *service) OpenDomainTask(ctx context.Context, accountID, appID, dnsName, requesterID string) error {
	t, err := domain.NewDomainTask(accountID, appID, dnsName, requesterID, s.now())
	if err != nil {
		return err
	}
	return s.openTask(ctx, t)
}

// OpenSecretTask opens the task that approves a new value of a secret.
func (s *service) OpenSecretTask(ctx context.Context, accountID, appID string, c domain.SecretChange, requesterID string) error {
	t, err := domain.NewSecretTask(accountID, appID, c, requesterID, s.now())
	if err != nil {
		return err
	}
	return s.openTask(ctx, t)
}

// RetractSecretTasks withdraws the pending tasks of a deleted secret.
func (s *service) RetractSecretTasks(ctx context.Context, accountID, appID, name string) error {
	ts, err := s.Tasks.ByAccount(ctx, accountID)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.AppID != appID || t.Status != domain.StatusPending || t.Kind != domain.KindSecret || t.Secret == nil || t.Secret.Name != name {
			continue
		}
		if err := s.retract(ctx, t); err != nil {
			return fmt.Errorf("withdrawing task %s: %w", t.ID, err)
		}
	}
	return nil
}

func (s *service) OpenImageTask(ctx context.Context, accountID, appID string, im domain.ImageMeasurement, requesterID string) error {
	t, err := domain.NewImageTask(accountID, appID, im, requesterID, s.now())
	if err != nil {
		return err
	}
	return s.openTask(ctx, t)
}

// openTask stores a new pending task and announces it. The task's id
// derives from what it approves, so a task that exists already (whatever
// its status) means the request was seen before: nothing is opened again.
func (s *service) openTask(ctx context.Context, t domain.Task) error {
	a, err := s.Accounts.Get(ctx, t.AccountID)
	if errors.Is(err, domain.ErrAccountNotFound) {
		return nil // deleted; its tasks are purged, not opened
	} else if err != nil {
		return err
	}
	t.Quorum = a.ApprovalsRequired
	_, err = s.Tasks.Create(ctx, t, domain.TaskCreated{Task: t})
	if errors.Is(err, domain.ErrTaskExists) {
		return nil
	}
	return err
}

func (s *service) RetractTasks(ctx context.Context, accountID, appID, imageID string) error {
	ts, err := s.Tasks.ByAccount(ctx, accountID)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.AppID != appID || t.Status != domain.StatusPending ||
			(imageID != "" && (t.Kind != domain.KindImage || t.Image == nil || t.Image.ImageID != imageID)) {
			continue
		}
		if err := s.retract(ctx, t); err != nil {
			return fmt.Errorf("withdrawing task %s: %w", t.ID, err)
		}
	}
	return nil
}

// retract withdraws one pending task whose subject was deleted, re-reading
// it once if an admin decided it meanwhile. It leaves no audit record: no
// person did it, and the audit log names who acted (the deletion that
// caused it is in the log).
func (s *service) retract(ctx context.Context, t domain.Task) error {
	for attempt := 1; ; attempt++ {
		if !t.Retract(s.now()) {
			return nil // decided meanwhile; an approval stays for its owners to revoke
		}
		_, err := s.Tasks.Update(ctx, t, domain.TaskWithdrawn{Task: t})
		if !errors.Is(err, domain.ErrConcurrentChange) || attempt >= maxDecideAttempts {
			return err
		}
		if t, err = s.Tasks.Get(ctx, t.AccountID, t.ID); errors.Is(err, domain.ErrTaskNotFound) {
			return nil // purged with its account
		} else if err != nil {
			return err
		}
	}
}

// purgeTasks deletes every task of a deleted account.
func (s *service) purgeTasks(ctx context.Context, accountID string) error {
	ts, err := s.Tasks.ByAccount(ctx, accountID)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if err := s.Tasks.Delete(ctx, t); err != nil && !errors.Is(err, domain.ErrTaskNotFound) {
			return err
		}
	}
	return nil
}
