// Package store implements the image converter's ports on JetStream KV
// buckets, and gives its events their wire form.
package store

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/events"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/domain"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/wire"
)

// Producer names this service in events.
const Producer = imageconverterv1.ImageConverterServiceName

// Buckets.
const (
	BucketApps = "imageconverter_apps"
	BucketKeys = "imageconverter_keys"
)

// Stores are the KV adapters of every port.
type Stores struct {
	Apps *Apps
	Keys *Keys
}

// Open opens every bucket.
func Open(ctx context.Context, js jetstream.JetStream, replicas int, opts ...kv.Option) (*Stores, error) {
	apps, err := kv.Open[domain.App](ctx, js, kv.Config{Bucket: BucketApps, Replicas: replicas}, opts...)
	if err != nil {
		return nil, err
	}
	keys, err := kv.Open[domain.SigningKey](ctx, js, kv.Config{Bucket: BucketKeys, Replicas: replicas}, opts...)
	if err != nil {
		return nil, err
	}
	return &Stores{Apps: &Apps{kv: apps, r: records(apps, func(a *domain.App) string { return a.AccountID + "." + a.ID },
		func(a *domain.App) *uint64 { return &a.Version }, domain.ErrAppNotFound)}, Keys: &Keys{keys}}, nil
}

// Apps keeps applications, keyed <account>.<app>.
type Apps struct {
	kv *kv.Store[domain.App]
	r  kv.Records[domain.App, domain.Event]
}

var _ app.Apps = (*Apps)(nil)

// Create implements app.Apps.
func (s *Apps) Create(ctx context.Context, a domain.App, ev domain.AppCreated) error {
	_, err := s.r.Create(ctx, a, ev)
	return err
}

// Get implements app.Apps.
func (s *Apps) Get(ctx context.Context, accountID, appID string) (domain.App, error) {
	return s.r.Get(ctx, accountID+"."+appID)
}

// List implements app.Apps.
func (s *Apps) List(ctx context.Context, accountID string) ([]domain.App, error) {
	return s.r.List(ctx, accountID+".*")
}

// Update implements app.Apps.
func (s *Apps) Update(ctx context.Context, a domain.App, ev domain.AppUpdated) (domain.App, error) {
	return s.r.Update(ctx, a, ev)
}

// Delete implements app.Apps.
func (s *Apps) Delete(ctx context.Context, a domain.App, ev domain.AppDeleted) error {
	return s.r.Delete(ctx, a, ev)
}

// DeleteAccount implements app.Apps.
func (s *Apps) DeleteAccount(ctx context.Context, accountID string) error {
	return deleteAll(ctx, s.kv, accountID)
}

// Keys keeps the accounts' signing keys, keyed by account.
type Keys struct{ kv *kv.Store[domain.SigningKey] }

var _ app.Keys = (*Keys)(nil)

// Create implements app.Keys.
func (s *Keys) Create(ctx context.Context, k domain.SigningKey, ev domain.SigningKeyCreated) error {
	msgs, err := messages(ctx, ev)
	if err != nil {
		return err
	}
	_, err = s.kv.Create(ctx, k.AccountID, k, msgs...)
	if errors.Is(err, kv.ErrExists) {
		return domain.ErrKeyExists
	}
	return err
}

// Get implements app.Keys.
func (s *Keys) Get(ctx context.Context, accountID string) (domain.SigningKey, error) {
	e, err := s.kv.Get(ctx, accountID)
	if errors.Is(err, kv.ErrNotFound) {
		return domain.SigningKey{}, domain.ErrNoSigningKey
	}
	return e.Value, err
}

// Delete implements app.Keys.
func (s *Keys) Delete(ctx context.Context, accountID string) error {
	e, err := s.kv.Get(ctx, accountID)
	if errors.Is(err, kv.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.kv.Delete(ctx, accountID, e.Version)
}

// messages gives a write's events their wire form, ready for the outbox.
func messages(ctx context.Context, evs ...domain.Event) ([]*nats.Msg, error) {
	return events.Messages(ctx, Producer, evs, wire.Event)
}

// records keeps values of one kind in s, their writes with their events,
// answering a missing one with notFound.
func records[T any](s *kv.Store[T], key func(*T) string, version func(*T) *uint64, notFound error) kv.Records[T, domain.Event] {
	return kv.Records[T, domain.Event]{Store: s, Key: key, Version: version, Messages: messages,
		NotFound: notFound, Conflict: domain.ErrConcurrentChange}
}
