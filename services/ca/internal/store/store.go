// Package store keeps the CA service's state in JetStream KV.
package store

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/events"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	"github.com/cloister-cc/cloister/services/ca/internal/domain"
	"github.com/cloister-cc/cloister/services/ca/internal/wire"
)

// Producer names this service in events.
const Producer = cav1.CAServiceName

// Authorities keeps each account's CA record (keys sealed) by account id.
type Authorities struct{ kv *kv.Store[[]byte] }

var _ app.Authorities = (*Authorities)(nil)

// Stores are every store of the CA service.
type Stores struct {
	Authorities  *Authorities
	Certificates *Certificates
	FinalCRLs    *FinalCRLs
	Issuance     app.Issuance // without its Verdicts, which come from a peer
}

// Open opens (creating if needed) every bucket of the CA service;
// lookups of applications and domains go through c.
func Open(ctx context.Context, js jetstream.JetStream, replicas int, c cache.Cache, logger *slog.Logger, opts ...kv.Option) (*Stores, error) {
	var st Stores
	var err error
	if st.Authorities, err = OpenAuthorities(ctx, js, replicas, opts...); err != nil {
		return nil, err
	}
	if st.Certificates, err = OpenCertificates(ctx, js, replicas, opts...); err != nil {
		return nil, err
	}
	if st.FinalCRLs, err = OpenFinalCRLs(ctx, js, replicas, opts...); err != nil {
		return nil, err
	}
	if st.Issuance, err = OpenIssuance(ctx, js, replicas, c, logger, opts...); err != nil {
		return nil, err
	}
	return &st, nil
}

// OpenAuthorities opens the bucket.
func OpenAuthorities(ctx context.Context, js jetstream.JetStream, replicas int, opts ...kv.Option) (*Authorities, error) {
	s, err := kv.Open[[]byte](ctx, js, kv.Config{Bucket: "ca_authorities", Replicas: replicas}, opts...)
	if err != nil {
		return nil, err
	}
	return &Authorities{s}, nil
}

// Create implements app.Authorities.
func (a *Authorities) Create(ctx context.Context, accountID string, sealed []byte, ev domain.Initialized) error {
	msgs, err := messages(ctx, ev)
	if err != nil {
		return err
	}
	_, err = a.kv.Create(ctx, accountID, sealed, msgs...)
	if errors.Is(err, kv.ErrExists) {
		return domain.ErrCAExists
	}
	return err
}

// Get implements app.Authorities.
func (a *Authorities) Get(ctx context.Context, accountID string) ([]byte, error) {
	e, err := a.kv.Get(ctx, accountID)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, domain.ErrCANotFound
	}
	return e.Value, err
}

// Update implements app.Authorities: the change and its event (with its
// audit record) commit together, if the CA is still what was read.
func (a *Authorities) Update(ctx context.Context, accountID string, change func([]byte) ([]byte, domain.Event, error)) error {
	e, err := a.kv.Get(ctx, accountID)
	if errors.Is(err, kv.ErrNotFound) {
		return domain.ErrCANotFound
	}
	if err != nil {
		return err
	}
	next, ev, err := change(e.Value)
	if err != nil {
		return err
	}
	msgs, err := messages(ctx, ev)
	if err != nil {
		return err
	}
	_, err = a.kv.Update(ctx, accountID, next, e.Version, msgs...)
	if errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrNotFound) {
		return domain.ErrConcurrentChange
	}
	return err
}

// Delete implements app.Authorities.
func (a *Authorities) Delete(ctx context.Context, accountID string) error {
	e, err := a.kv.Get(ctx, accountID)
	if errors.Is(err, kv.ErrNotFound) {
		return domain.ErrCANotFound
	}
	if err != nil {
		return err
	}
	return a.kv.Delete(ctx, accountID, e.Version)
}

// Certificates records issued certificates, keyed <account>.<serial>.
type Certificates struct {
	r kv.Records[domain.Certificate, domain.Event]
}

var _ app.Certificates = (*Certificates)(nil)

// OpenCertificates opens the bucket.
func OpenCertificates(ctx context.Context, js jetstream.JetStream, replicas int, opts ...kv.Option) (*Certificates, error) {
	s, err := kv.Open[domain.Certificate](ctx, js, kv.Config{Bucket: "ca_certificates", Replicas: replicas}, opts...)
	if err != nil {
		return nil, err
	}
	return &Certificates{kv.Records[domain.Certificate, domain.Event]{Store: s, Messages: messages,
		Key:      func(c *domain.Certificate) string { return c.AccountID + "." + c.Serial },
		Version:  func(c *domain.Certificate) *uint64 { return &c.Version },
		NotFound: domain.ErrCertificateNotFound, Conflict: domain.ErrConcurrentChange}}, nil
}

// messages gives a write's events their wire form, ready for the outbox.
func messages(ctx context.Context, evs ...domain.Event) ([]*nats.Msg, error) {
	return events.Messages(ctx, Producer, evs, wire.Event)
}

// Create implements app.Certificates.
func (s *Certificates) Create(ctx context.Context, c domain.Certificate, ev domain.Issued) error {
	_, err := s.r.Create(ctx, c, ev)
	return err
}

// Get implements app.Certificates.
func (s *Certificates) Get(ctx context.Context, accountID, serial string) (domain.Certificate, error) {
	return s.r.Get(ctx, accountID+"."+serial)
}

// Update implements app.Certificates.
func (s *Certificates) Update(ctx context.Context, c domain.Certificate, ev domain.Revoked) (domain.Certificate, error) {
	return s.r.Update(ctx, c, ev)
}

// List implements app.Certificates.
func (s *Certificates) List(ctx context.Context, accountID string) ([]domain.Certificate, error) {
	return s.r.List(ctx, accountID+".*")
}
