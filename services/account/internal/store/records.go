package store

import (
	"context"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/services/account/internal/app"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// Accounts is the account store, keyed by account id.
type Accounts struct {
	r kv.Records[domain.Account, domain.Event]
}

var _ app.Accounts = (*Accounts)(nil)

func newAccounts(k *kv.Store[domain.Account]) *Accounts {
	return &Accounts{kv.Records[domain.Account, domain.Event]{Store: k, Messages: messages, Conflict: domain.ErrConcurrentChange, NotFound: domain.ErrAccountNotFound, Exists: domain.ErrAccountExists,
		Key:     func(a *domain.Account) string { return a.ID },
		Version: func(a *domain.Account) *uint64 { return &a.Version }}}
}

// Create implements app.Accounts.
func (s *Accounts) Create(ctx context.Context, a domain.Account, evs ...domain.Event) (domain.Account, error) {
	return s.r.Create(ctx, a, evs...)
}

// Get implements app.Accounts.
func (s *Accounts) Get(ctx context.Context, id string) (domain.Account, error) {
	return s.r.Get(ctx, id)
}

// Update implements app.Accounts.
func (s *Accounts) Update(ctx context.Context, a domain.Account, evs ...domain.Event) (domain.Account, error) {
	return s.r.Update(ctx, a, evs...)
}

// Delete implements app.Accounts.
func (s *Accounts) Delete(ctx context.Context, a domain.Account, evs ...domain.Event) error {
	return s.r.Delete(ctx, a, evs...)
}

// Members is the membership store, keyed <account>.<user>.
type Members struct {
	r kv.Records[domain.Member, domain.Event]
}

var _ app.Members = (*Members)(nil)

func newMembers(k *kv.Store[domain.Member]) *Members {
	return &Members{kv.Records[domain.Member, domain.Event]{Store: k, Messages: messages, Conflict: domain.ErrConcurrentChange, NotFound: domain.ErrMemberNotFound, Exists: domain.ErrAlreadyMember,
		Key:     func(m *domain.Member) string { return m.AccountID + "." + m.UserID },
		Version: func(m *domain.Member) *uint64 { return &m.Version }}}
}

// Create implements app.Members.
func (s *Members) Create(ctx context.Context, m domain.Member, evs ...domain.Event) (domain.Member, error) {
	return s.r.Create(ctx, m, evs...)
}

// Get implements app.Members.
func (s *Members) Get(ctx context.Context, accountID, userID string) (domain.Member, error) {
	if !validToken(accountID) || !validToken(userID) {
		return domain.Member{}, domain.ErrMemberNotFound
	}
	return s.r.Get(ctx, accountID+"."+userID)
}

// Update implements app.Members.
func (s *Members) Update(ctx context.Context, m domain.Member, evs ...domain.Event) (domain.Member, error) {
	return s.r.Update(ctx, m, evs...)
}

// Delete implements app.Members.
func (s *Members) Delete(ctx context.Context, m domain.Member, evs ...domain.Event) error {
	return s.r.Delete(ctx, m, evs...)
}

// ByAccount implements app.Members.
func (s *Members) ByAccount(ctx context.Context, accountID string) ([]domain.Member, error) {
	if !validToken(accountID) {
		return nil, nil
	}
	return s.r.List(ctx, accountID+".*")
}

// ByUser implements app.Members.
func (s *Members) ByUser(ctx context.Context, userID string) ([]domain.Member, error) {
	if !validToken(userID) {
		return nil, nil
	}
	return s.r.List(ctx, "*."+userID)
}

// Tasks is the task store, keyed <account>.<task>.
type Tasks struct {
	r kv.Records[domain.Task, domain.Event]
}

var _ app.Tasks = (*Tasks)(nil)

func newTasks(k *kv.Store[domain.Task]) *Tasks {
	return &Tasks{kv.Records[domain.Task, domain.Event]{Store: k, Messages: messages, Conflict: domain.ErrConcurrentChange, NotFound: domain.ErrTaskNotFound, Exists: domain.ErrTaskExists,
		Key:     func(t *domain.Task) string { return t.AccountID + "." + t.ID },
		Version: func(t *domain.Task) *uint64 { return &t.Version }}}
}

// Create implements app.Tasks.
func (s *Tasks) Create(ctx context.Context, t domain.Task, evs ...domain.Event) (domain.Task, error) {
	if !validToken(t.AccountID) || !validToken(t.ID) {
		return domain.Task{}, errs.Newf(errs.Invalid, "task key %s.%s is not valid", t.AccountID, t.ID)
	}
	return s.r.Create(ctx, t, evs...)
}

// Get implements app.Tasks.
func (s *Tasks) Get(ctx context.Context, accountID, taskID string) (domain.Task, error) {
	if !validToken(accountID) || !validToken(taskID) {
		return domain.Task{}, domain.ErrTaskNotFound
	}
	return s.r.Get(ctx, accountID+"."+taskID)
}

// Update implements app.Tasks.
func (s *Tasks) Update(ctx context.Context, t domain.Task, evs ...domain.Event) (domain.Task, error) {
	return s.r.Update(ctx, t, evs...)
}

// Delete implements app.Tasks.
func (s *Tasks) Delete(ctx context.Context, t domain.Task, evs ...domain.Event) error {
	return s.r.Delete(ctx, t, evs...)
}

// ByAccount implements app.Tasks.
func (s *Tasks) ByAccount(ctx context.Context, accountID string) ([]domain.Task, error) {
	if !validToken(accountID) {
		return nil, nil
	}
	return s.r.List(ctx, accountID+".*")
}
