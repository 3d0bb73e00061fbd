package store

import (
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/domain"
)

// BucketSecrets holds the applications' secrets, keyed
// <account>.<app>.s.<hex of name>, and their volume keys, keyed
// <account>.<app>.v.<hex of key name>: values sealed under the master key;
// and each account's secret policy, keyed <account>.policy.
const BucketSecrets = "imageconverter_secrets"

// Secrets keeps secrets.
type Secrets struct {
	kv *kv.Store[domain.Secret]
}

// VolumeKeys keeps volume keys.
type VolumeKeys struct {
	kv *kv.Store[volumeKey]
}

type volumeKey struct {
	Sealed []byte `json:"sealed"`
}

var (
	_ app.Secrets    = (*Secrets)(nil)
	_ app.VolumeKeys = (*VolumeKeys)(nil)
)

// OpenSecrets opens the bucket of secrets, volume keys and the accounts'
// secret policies.
func OpenSecrets(ctx context.Context, js jetstream.JetStream, replicas int, opts ...kv.Option) (*Secrets, *VolumeKeys, *Policies, error) {
	cfg := kv.Config{Bucket: BucketSecrets, Replicas: replicas}
	secrets, err := kv.Open[domain.Secret](ctx, js, cfg, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	keys, err := kv.Open[volumeKey](ctx, js, cfg, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	policies, err := kv.Open[secretPolicy](ctx, js, cfg, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	return &Secrets{secrets}, &VolumeKeys{keys}, &Policies{policies}, nil
}

func secretKey(accountID, appID, name string) string {
	return accountID + "." + appID + ".s." + hex.EncodeToString([]byte(name))
}

func volumeKeyKey(accountID, appID, keyName string) string {
	return accountID + "." + appID + ".v." + hex.EncodeToString([]byte(keyName))
}

// Get implements app.Secrets.
func (s *Secrets) Get(ctx context.Context, accountID, appID, name string) (domain.Secret, uint64, error) {
	e, err := s.kv.Get(ctx, secretKey(accountID, appID, name))
	if errors.Is(err, kv.ErrNotFound) {
		return domain.Secret{}, 0, domain.ErrSecretNotFound
	}
	return e.Value, e.Version, err
}

// Put implements app.Secrets.
func (s *Secrets) Put(ctx context.Context, sec domain.Secret, version uint64, evs ...domain.Event) error {
	msgs, err := messages(ctx, evs...)
	if err != nil {
		return err
	}
	key := secretKey(sec.AccountID, sec.AppID, sec.Name)
	if version == 0 {
		_, err = s.kv.Create(ctx, key, sec, msgs...)
	} else {
		_, err = s.kv.Update(ctx, key, sec, version, msgs...)
	}
	if errors.Is(err, kv.ErrExists) || errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrNotFound) {
		return domain.ErrConcurrentChange
	}
	return err
}

// List implements app.Secrets.
func (s *Secrets) List(ctx context.Context, accountID, appID string) ([]domain.Secret, error) {
	es, err := s.kv.List(ctx, accountID+"."+appID+".s.*")
	if err != nil {
		return nil, err
	}
	out := make([]domain.Secret, len(es))
	for i, e := range es {
		out[i] = e.Value
	}
	return out, nil
}

// Delete implements app.Secrets.
func (s *Secrets) Delete(ctx context.Context, accountID, appID, name string, ev domain.SecretDeleted) error {
	key := secretKey(accountID, appID, name)
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return domain.ErrSecretNotFound
	}
	if err != nil {
		return err
	}
	msgs, err := messages(ctx, ev)
	if err != nil {
		return err
	}
	err = s.kv.Delete(ctx, key, e.Version, msgs...)
	if errors.Is(err, kv.ErrConflict) {
		return domain.ErrConcurrentChange
	}
	if errors.Is(err, kv.ErrNotFound) {
		return domain.ErrSecretNotFound
	}
	return err
}

// DeleteApp implements app.Secrets: the application's secrets and volume
// keys.
func (s *Secrets) DeleteApp(ctx context.Context, accountID, appID string) error {
	return deleteAll(ctx, s.kv, accountID+"."+appID)
}

// policyKey holds the account's secrets_need_approval, from its events.
func policyKey(accountID string) string { return accountID + ".policy" }

type secretPolicy struct {
	NeedApproval bool      `json:"need_approval"`
	At           time.Time `json:"at"`
}

// Policies keeps each account's secrets_need_approval.
type Policies struct {
	kv *kv.Store[secretPolicy]
}

var _ app.SecretPolicies = (*Policies)(nil)

// NeedApproval implements app.SecretPolicies.
func (p *Policies) NeedApproval(ctx context.Context, accountID string) (bool, error) {
	e, err := p.kv.Get(ctx, policyKey(accountID))
	if errors.Is(err, kv.ErrNotFound) {
		return false, nil
	}
	return e.Value.NeedApproval, err
}

// SetNeedApproval implements app.SecretPolicies: a setting older than
// the one kept (an event delivered again, late) changes nothing.
func (p *Policies) SetNeedApproval(ctx context.Context, accountID string, need bool, at time.Time) error {
	key := policyKey(accountID)
	for range 5 {
		e, err := p.kv.Get(ctx, key)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			_, err = p.kv.Create(ctx, key, secretPolicy{NeedApproval: need, At: at})
		case err != nil:
			return err
		case !at.After(e.Value.At):
			return nil
		default:
			_, err = p.kv.Update(ctx, key, secretPolicy{NeedApproval: need, At: at}, e.Version)
		}
		if !errors.Is(err, kv.ErrExists) && !errors.Is(err, kv.ErrConflict) {
			return err
		}
	}
	return domain.ErrConcurrentChange
}

// DeleteAccount implements app.Secrets.
func (s *Secrets) DeleteAccount(ctx context.Context, accountID string) error {
	return deleteAll(ctx, s.kv, accountID)
}

// Get implements app.VolumeKeys.
func (s *VolumeKeys) Get(ctx context.Context, accountID, appID, keyName string) ([]byte, error) {
	e, err := s.kv.Get(ctx, volumeKeyKey(accountID, appID, keyName))
	if errors.Is(err, kv.ErrNotFound) {
		return nil, domain.ErrSecretNotFound
	}
	return e.Value.Sealed, err
}

// Create implements app.VolumeKeys.
func (s *VolumeKeys) Create(ctx context.Context, accountID, appID, keyName string, sealed []byte) error {
	_, err := s.kv.Create(ctx, volumeKeyKey(accountID, appID, keyName), volumeKey{Sealed: sealed})
	if errors.Is(err, kv.ErrExists) {
		return domain.ErrKeyExists
	}
	return err
}
