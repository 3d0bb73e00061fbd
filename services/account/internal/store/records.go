package store

import (
	"context"
	"errors"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/services/account/internal/app"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// records is one kind of versioned value in its bucket: where each is
// kept, where its version lives, and the refusals its store answers with.
// Accounts, members and tasks share its create, get, update and delete.
type records[T any] struct {
	kv      *kv.Store[T]
	key     func(*T) string
	version func(*T) *uint64
	// notFound answers a missing key; exists, if set, a key taken.
	notFound, exists error
}

func (r records[T]) create(ctx context.Context, v T, evs []domain.Event) (T, error) {
	msgs, err := messages(ctx, evs)
	if err != nil {
		var zero T
		return zero, err
	}
	e, err := r.kv.Create(ctx, r.key(&v), v, msgs...)
	if errors.Is(err, kv.ErrExists) && r.exists != nil {
		var zero T
		return zero, r.exists
	}
	return r.value(e, err)
}

func (r records[T]) get(ctx context.Context, key string) (T, error) {
	e, err := r.kv.Get(ctx, key)
	return r.value(e, err)
}

func (r records[T]) update(ctx context.Context, v T, evs []domain.Event) (T, error) {
	msgs, err := messages(ctx, evs)
	if err != nil {
		var zero T
		return zero, err
	}
	e, err := r.kv.Update(ctx, r.key(&v), v, *r.version(&v), msgs...)
	return r.value(e, err)
}

func (r records[T]) delete(ctx context.Context, v T, evs []domain.Event) error {
	msgs, err := messages(ctx, evs)
	if err != nil {
		return err
	}
	return mapErr(r.kv.Delete(ctx, r.key(&v), *r.version(&v), msgs...), r.notFound)
}

func (r records[T]) list(ctx context.Context, filter string) ([]T, error) {
	es, err := r.kv.List(ctx, filter)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(es))
	for i, e := range es {
		out[i] = e.Value
		*r.version(&out[i]) = e.Version
	}
	return out, nil
}

// value is an entry's value with its version, or err as the domain's.
func (r records[T]) value(e kv.Entry[T], err error) (T, error) {
	if err != nil {
		var zero T
		return zero, mapErr(err, r.notFound)
	}
	v := e.Value
	*r.version(&v) = e.Version
	return v, nil
}

// Accounts is the account store, keyed by account id.
type Accounts struct{ records[domain.Account] }

var _ app.Accounts = (*Accounts)(nil)

func newAccounts(k *kv.Store[domain.Account]) *Accounts {
	return &Accounts{records[domain.Account]{kv: k, notFound: domain.ErrAccountNotFound,
		key:     func(a *domain.Account) string { return a.ID },
		version: func(a *domain.Account) *uint64 { return &a.Version }}}
}

// Create implements app.Accounts.
func (s *Accounts) Create(ctx context.Context, a domain.Account, evs ...domain.Event) (domain.Account, error) {
	return s.create(ctx, a, evs)
}

// Get implements app.Accounts.
func (s *Accounts) Get(ctx context.Context, id string) (domain.Account, error) { return s.get(ctx, id) }

// Update implements app.Accounts.
func (s *Accounts) Update(ctx context.Context, a domain.Account, evs ...domain.Event) (domain.Account, error) {
	return s.update(ctx, a, evs)
}

// Delete implements app.Accounts.
func (s *Accounts) Delete(ctx context.Context, a domain.Account, evs ...domain.Event) error {
	return s.delete(ctx, a, evs)
}

// Members is the membership store, keyed <account>.<user>.
type Members struct{ records[domain.Member] }

var _ app.Members = (*Members)(nil)

func newMembers(k *kv.Store[domain.Member]) *Members {
	return &Members{records[domain.Member]{kv: k, notFound: domain.ErrMemberNotFound, exists: domain.ErrAlreadyMember,
		key:     func(m *domain.Member) string { return m.AccountID + "." + m.UserID },
		version: func(m *domain.Member) *uint64 { return &m.Version }}}
}

// Create implements app.Members.
func (s *Members) Create(ctx context.Context, m domain.Member, evs ...domain.Event) (domain.Member, error) {
	return s.create(ctx, m, evs)
}

// Get implements app.Members.
func (s *Members) Get(ctx context.Context, accountID, userID string) (domain.Member, error) {
	if !validToken(accountID) || !validToken(userID) {
		return domain.Member{}, domain.ErrMemberNotFound
	}
	return s.get(ctx, accountID+"."+userID)
}

// Update implements app.Members.
func (s *Members) Update(ctx context.Context, m domain.Member, evs ...domain.Event) (domain.Member, error) {
	return s.update(ctx, m, evs)
}

// Delete implements app.Members.
func (s *Members) Delete(ctx context.Context, m domain.Member, evs ...domain.Event) error {
	return s.delete(ctx, m, evs)
}

// ByAccount implements app.Members.
func (s *Members) ByAccount(ctx context.Context, accountID string) ([]domain.Member, error) {
	if !validToken(accountID) {
		return nil, nil
	}
	return s.list(ctx, accountID+".*")
}

// ByUser implements app.Members.
func (s *Members) ByUser(ctx context.Context, userID string) ([]domain.Member, error) {
	if !validToken(userID) {
		return nil, nil
	}
	return s.list(ctx, "*."+userID)
}

// Tasks is the task store, keyed <account>.<task>.
type Tasks struct{ records[domain.Task] }

var _ app.Tasks = (*Tasks)(nil)

func newTasks(k *kv.Store[domain.Task]) *Tasks {
	return &Tasks{records[domain.Task]{kv: k, notFound: domain.ErrTaskNotFound, exists: domain.ErrTaskExists,
		key:     func(t *domain.Task) string { return t.AccountID + "." + t.ID },
		version: func(t *domain.Task) *uint64 { return &t.Version }}}
}

// Create implements app.Tasks.
func (s *Tasks) Create(ctx context.Context, t domain.Task, evs ...domain.Event) (domain.Task, error) {
	if !validToken(t.AccountID) || !validToken(t.ID) {
		return domain.Task{}, errs.Newf(errs.Invalid, "task key %s.%s is not valid", t.AccountID, t.ID)
	}
	return s.create(ctx, t, evs)
}

// Get implements app.Tasks.
func (s *Tasks) Get(ctx context.Context, accountID, taskID string) (domain.Task, error) {
	if !validToken(accountID) || !validToken(taskID) {
		return domain.Task{}, domain.ErrTaskNotFound
	}
	return s.get(ctx, accountID+"."+taskID)
}

// Update implements app.Tasks.
func (s *Tasks) Update(ctx context.Context, t domain.Task, evs ...domain.Event) (domain.Task, error) {
	return s.update(ctx, t, evs)
}

// Delete implements app.Tasks.
func (s *Tasks) Delete(ctx context.Context, t domain.Task, evs ...domain.Event) error {
	return s.delete(ctx, t, evs)
}

// ByAccount implements app.Tasks.
func (s *Tasks) ByAccount(ctx context.Context, accountID string) ([]domain.Task, error) {
	if !validToken(accountID) {
		return nil, nil
	}
	return s.list(ctx, accountID+".*")
}
