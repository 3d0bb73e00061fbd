package store

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	"github.com/cloister-cc/cloister/services/ca/internal/domain"
)

// BucketFinalCRLs keeps deleted accounts' final CRLs.
const BucketFinalCRLs = "ca_final_crls"

// FinalCRLs keeps deleted accounts' final CRLs, keyed <account>.<issuer
// key id>, and the marks of accounts being deleted, keyed closing.<account>.
type FinalCRLs struct {
	kv      *kv.Store[domain.FinalCRL]
	closing *kv.Store[closingMark]
}

// closingMark says since when an account's CA is being deleted.
type closingMark struct {
	Since time.Time `json:"since"`
}

var _ app.FinalCRLs = (*FinalCRLs)(nil)

// OpenFinalCRLs opens the bucket.
func OpenFinalCRLs(ctx context.Context, js jetstream.JetStream, replicas int, opts ...kv.Option) (*FinalCRLs, error) {
	cfg := kv.Config{Bucket: BucketFinalCRLs, Replicas: replicas}
	s, err := kv.Open[domain.FinalCRL](ctx, js, cfg, opts...)
	if err != nil {
		return nil, err
	}
	closing, err := kv.Open[closingMark](ctx, js, cfg, opts...)
	if err != nil {
		return nil, err
	}
	return &FinalCRLs{kv: s, closing: closing}, nil
}

// MarkClosing implements app.FinalCRLs.
func (s *FinalCRLs) MarkClosing(ctx context.Context, accountID string) error {
	_, err := s.closing.Create(ctx, "closing."+accountID, closingMark{Since: time.Now().UTC()})
	if errors.Is(err, kv.ErrExists) {
		return nil
	}
	return err
}

// Closing implements app.FinalCRLs.
func (s *FinalCRLs) Closing(ctx context.Context, accountID string) (bool, error) {
	_, err := s.closing.Get(ctx, "closing."+accountID)
	if errors.Is(err, kv.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Put implements app.FinalCRLs. CRLs of issuers not in crls, left by an
// earlier attempt, are removed, so that one CRL alone is the current one.
func (s *FinalCRLs) Put(ctx context.Context, accountID string, crls []domain.FinalCRL) error {
	keep := map[string]bool{}
	for _, c := range crls {
		key := accountID + "." + c.IssuerKeyID
		keep[key] = true
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			_, err = s.kv.Create(ctx, key, c)
		case err == nil:
			_, err = s.kv.Update(ctx, key, c, e.Version)
		}
		if errors.Is(err, kv.ErrExists) || errors.Is(err, kv.ErrConflict) {
			return domain.ErrConcurrentChange
		}
		if err != nil {
			return err
		}
	}
	old, err := s.kv.List(ctx, accountID+".*")
	if err != nil {
		return err
	}
	for _, e := range old {
		if keep[e.Key] || e.Value.RetiredEarly {
			continue
		}
		if err := s.kv.Delete(ctx, e.Key, e.Version); err != nil && !errors.Is(err, kv.ErrNotFound) {
			return err
		}
	}
	return nil
}

// Get implements app.FinalCRLs.
func (s *FinalCRLs) Get(ctx context.Context, accountID, issuerKeyID string) (domain.FinalCRL, error) {
	if issuerKeyID != "" {
		e, err := s.kv.Get(ctx, accountID+"."+issuerKeyID)
		if errors.Is(err, kv.ErrNotFound) {
			return domain.FinalCRL{}, domain.ErrCANotFound
		}
		return e.Value, err
	}
	// At most a handful: the current issuer and the retired ones.
	es, err := s.kv.List(ctx, accountID+".*")
	if err != nil {
		return domain.FinalCRL{}, err
	}
	for _, e := range es {
		if e.Value.Current {
			return e.Value, nil
		}
	}
	return domain.FinalCRL{}, domain.ErrCANotFound
}

// Add implements app.FinalCRLs.
func (s *FinalCRLs) Add(ctx context.Context, accountID string, crl domain.FinalCRL) error {
	key := accountID + "." + crl.IssuerKeyID
	e, err := s.kv.Get(ctx, key)
	switch {
	case errors.Is(err, kv.ErrNotFound):
		_, err = s.kv.Create(ctx, key, crl)
	case err == nil:
		_, err = s.kv.Update(ctx, key, crl, e.Version)
	}
	if errors.Is(err, kv.ErrExists) || errors.Is(err, kv.ErrConflict) {
		return domain.ErrConcurrentChange
	}
	return err
}
