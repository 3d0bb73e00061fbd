// Package store keeps the CA service's state in JetStream KV.
package store

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/events"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
)

// Producer names this service in events.
const Producer = "ca"

// Authorities keeps each account's CA record (keys sealed) by account id.
type Authorities struct{ kv *kv.Store[[]byte] }

var _ app.Authorities = (*Authorities)(nil)

// Open opens the bucket.
func Open(ctx context.Context, js jetstream.JetStream, replicas int, logger *slog.Logger) (*Authorities, error) {
	s, err := kv.Open[[]byte](ctx, js, kv.Config{Bucket: "ca_authorities", Replicas: replicas}, kv.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	return &Authorities{s}, nil
}

// Create implements app.Authorities.
func (a *Authorities) Create(ctx context.Context, accountID string, sealed []byte, ev app.Initialized) error {
	payload := &cav1.AccountCAInitialized{AccountId: ev.AccountID, RootSha256: ev.RootSHA256}
	msg, _, err := events.NewMessage(ctx, events.Subject(Producer, payload), Producer, ev.AccountID, payload)
	if err != nil {
		return err
	}
	_, err = a.kv.Create(ctx, accountID, sealed, msg)
	if errors.Is(err, kv.ErrExists) {
		return app.ErrCAExists
	}
	return err
}

// Get implements app.Authorities.
func (a *Authorities) Get(ctx context.Context, accountID string) ([]byte, error) {
	e, err := a.kv.Get(ctx, accountID)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, app.ErrCANotFound
	}
	return e.Value, err
}

// Delete implements app.Authorities.
func (a *Authorities) Delete(ctx context.Context, accountID string) error {
	e, err := a.kv.Get(ctx, accountID)
	if errors.Is(err, kv.ErrNotFound) {
		return app.ErrCANotFound
	}
	if err != nil {
		return err
	}
	return a.kv.Delete(ctx, accountID, e.Version)
}
