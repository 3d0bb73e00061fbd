package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/services/account/internal/app"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// Bucket names.
const (
	BucketUsers    = "account_users"
	BucketSessions = "account_sessions"
	BucketAccounts = "account_accounts"
	BucketMembers  = "account_members"
	BucketAPIKeys  = "account_apikeys"
	BucketTasks    = "account_tasks"
	// BucketAPIKeyIDs maps a key id to its account, so authentication is
	// two reads rather than a scan.
	BucketAPIKeyIDs = "account_apikey_ids"
)

// Stores are the KV adapters of every port.
type Stores struct {
	Users    *Users
	Sessions *Sessions
	Accounts *Accounts
	Members  *Members
	APIKeys  *APIKeys
	Tasks    *Tasks
}

// Open opens (creating if needed) every bucket and publishes what a
// previous process left in their outboxes.
func Open(ctx context.Context, js jetstream.JetStream, replicas int, opts ...kv.Option) (*Stores, error) {
	cfg := func(b string) kv.Config { return kv.Config{Bucket: b, Replicas: replicas} }
	var s Stores
	var err error
	if s.Users, err = open[domain.User](ctx, js, cfg(BucketUsers), opts, func(k *kv.Store[domain.User]) *Users { return &Users{k} }); err != nil {
		return nil, err
	}
	// Sessions last 12 hours; the bucket forgets them a day after login.
	sessions := cfg(BucketSessions)
	sessions.TTL = 24 * time.Hour
	if s.Sessions, err = open[domain.Session](ctx, js, sessions, opts, func(k *kv.Store[domain.Session]) *Sessions { return &Sessions{k} }); err != nil {
		return nil, err
	}
	if s.Accounts, err = open[domain.Account](ctx, js, cfg(BucketAccounts), opts, newAccounts); err != nil {
		return nil, err
	}
	if s.Members, err = open[domain.Member](ctx, js, cfg(BucketMembers), opts, newMembers); err != nil {
		return nil, err
	}
	if s.APIKeys, err = open[domain.APIKey](ctx, js, cfg(BucketAPIKeys), opts, newAPIKeys); err != nil {
		return nil, err
	}
	if s.APIKeys.ids, err = kv.Open[string](ctx, js, cfg(BucketAPIKeyIDs), opts...); err != nil {
		return nil, err
	}
	if s.Tasks, err = open[domain.Task](ctx, js, cfg(BucketTasks), opts, newTasks); err != nil {
		return nil, err
	}
	return &s, nil
}

func open[T any, A any](ctx context.Context, js jetstream.JetStream, cfg kv.Config, opts []kv.Option, wrap func(*kv.Store[T]) A) (A, error) {
	k, err := kv.Open[T](ctx, js, cfg, opts...)
	if err != nil {
		var zero A
		return zero, err
	}
	return wrap(k), nil
}

// mapErr turns kv's errors into the domain's for this kind of object.
func mapErr(err, notFound error) error {
	switch {
	case errors.Is(err, kv.ErrNotFound):
		return notFound
	case errors.Is(err, kv.ErrConflict):
		return domain.ErrConcurrentChange
	}
	return err
}

// Users is the user store, keyed by the SHA-256 of the normalized email
// so that uniqueness is a single atomic create.
type Users struct{ kv *kv.Store[domain.User] }

var _ app.Users = (*Users)(nil)

func emailKey(email string) string {
	sum := sha256.Sum256([]byte(email))
	return hex.EncodeToString(sum[:])
}

// Create implements app.Users.
func (s *Users) Create(ctx context.Context, u domain.User, evs ...domain.Event) error {
	msgs, err := messages(ctx, evs...)
	if err != nil {
		return err
	}
	_, err = s.kv.Create(ctx, emailKey(u.Email), u, msgs...)
	if errors.Is(err, kv.ErrExists) {
		return domain.ErrEmailTaken
	}
	return err
}

// ByEmail implements app.Users.
func (s *Users) ByEmail(ctx context.Context, email string) (domain.User, error) {
	e, err := s.kv.Get(ctx, emailKey(email))
	return e.Value, mapErr(err, domain.ErrUserNotFound)
}

// Sessions is the session store, keyed by token hash.
type Sessions struct{ kv *kv.Store[domain.Session] }

var _ app.Sessions = (*Sessions)(nil)

// Create implements app.Sessions.
func (s *Sessions) Create(ctx context.Context, sess domain.Session, evs ...domain.Event) error {
	msgs, err := messages(ctx, evs...)
	if err != nil {
		return err
	}
	_, err = s.kv.Create(ctx, sess.TokenHash, sess, msgs...)
	return err
}

// ByTokenHash implements app.Sessions.
func (s *Sessions) ByTokenHash(ctx context.Context, hash string) (domain.Session, error) {
	e, err := s.kv.Get(ctx, hash)
	return e.Value, mapErr(err, domain.ErrUnauthenticated)
}

// Delete implements app.Sessions.
func (s *Sessions) Delete(ctx context.Context, hash string, evs ...domain.Event) error {
	e, err := s.kv.Get(ctx, hash)
	if err != nil {
		return mapErr(err, domain.ErrUnauthenticated)
	}
	msgs, err := messages(ctx, evs...)
	if err != nil {
		return err
	}
	return mapErr(s.kv.Delete(ctx, hash, e.Version, msgs...), domain.ErrUnauthenticated)
}

// APIKeys is the API key store, keyed <account>.<key>, with an index from
// key id to account.
type APIKeys struct {
	r   kv.Records[domain.APIKey, domain.Event]
	kv  *kv.Store[domain.APIKey]
	ids *kv.Store[string]
}

func newAPIKeys(k *kv.Store[domain.APIKey]) *APIKeys {
	return &APIKeys{kv: k, r: kv.Records[domain.APIKey, domain.Event]{Store: k, Messages: messages, Conflict: domain.ErrConcurrentChange,
		NotFound: domain.ErrAPIKeyNotFound,
		Key:      func(k *domain.APIKey) string { return k.AccountID + "." + k.ID },
		Version:  func(k *domain.APIKey) *uint64 { return &k.Version }}}
}

var _ app.APIKeys = (*APIKeys)(nil)

// Create implements app.APIKeys. The index goes first: an index entry
// without its key is a harmless miss, a key without its index could never
// authenticate.
func (s *APIKeys) Create(ctx context.Context, k domain.APIKey, evs ...domain.Event) error {
	msgs, err := messages(ctx, evs...)
	if err != nil {
		return err
	}
	if _, err := s.ids.Create(ctx, k.ID, k.AccountID); err != nil {
		return mapErr(err, domain.ErrAPIKeyNotFound)
	}
	_, err = s.kv.Create(ctx, k.AccountID+"."+k.ID, k, msgs...)
	return mapErr(err, domain.ErrAPIKeyNotFound)
}

// Get implements app.APIKeys.
func (s *APIKeys) Get(ctx context.Context, accountID, keyID string) (domain.APIKey, error) {
	if !validToken(accountID) || !validToken(keyID) {
		return domain.APIKey{}, domain.ErrAPIKeyNotFound
	}
	return s.r.Get(ctx, accountID+"."+keyID)
}

// ByID implements app.APIKeys.
func (s *APIKeys) ByID(ctx context.Context, keyID string) (domain.APIKey, error) {
	if !validToken(keyID) {
		return domain.APIKey{}, domain.ErrAPIKeyNotFound
	}
	acct, err := s.ids.Get(ctx, keyID)
	if err != nil {
		return domain.APIKey{}, mapErr(err, domain.ErrAPIKeyNotFound)
	}
	return s.Get(ctx, acct.Value, keyID)
}

// Delete implements app.APIKeys. The index entry goes last, and a failure
// to delete it only leaves a harmless miss.
func (s *APIKeys) Delete(ctx context.Context, k domain.APIKey, evs ...domain.Event) error {
	msgs, err := messages(ctx, evs...)
	if err != nil {
		return err
	}
	if err := mapErr(s.kv.Delete(ctx, k.AccountID+"."+k.ID, k.Version, msgs...), domain.ErrAPIKeyNotFound); err != nil {
		return err
	}
	if e, err := s.ids.Get(ctx, k.ID); err == nil {
		_ = s.ids.Delete(ctx, k.ID, e.Version)
	}
	return nil
}

// ByAccount implements app.APIKeys.
func (s *APIKeys) ByAccount(ctx context.Context, accountID string) ([]domain.APIKey, error) {
	if !validToken(accountID) {
		return nil, nil
	}
	return s.r.List(ctx, accountID+".*")
}

// validToken reports whether s can stand as one element of a key filter:
// no dots or wildcards that would widen a lookup to other keys.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
