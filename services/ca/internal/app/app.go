// Package app is the CA service's use cases: one CA hierarchy per account,
// created when the account is, and its CRL.
package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/pki"
)

// Errors of the CA service.
var (
	ErrCANotFound = errs.New(errs.NotFound, "the account has no CA")
	ErrCAExists   = errs.New(errs.Conflict, "the account has a CA already")
)

// Initialized is announced when an account's CA is created.
type Initialized struct{ AccountID, RootSHA256 string }

// Authorities stores each account's CA in its sealed form.
type Authorities interface {
	// Create stores a new CA; ErrCAExists if the account has one.
	Create(ctx context.Context, accountID string, sealed []byte, ev Initialized) error
	Get(ctx context.Context, accountID string) ([]byte, error) // ErrCANotFound
	Delete(ctx context.Context, accountID string) error
}

// Service keeps the accounts' CAs.
type Service struct {
	store Authorities
	kek   *pki.KEK
	clock func() time.Time
}

// New returns the service.
func New(store Authorities, kek *pki.KEK, clock func() time.Time) (*Service, error) {
	if store == nil || kek == nil {
		return nil, errors.New("ca: a store and a key-encryption key are required")
	}
	if clock == nil {
		clock = time.Now
	}
	return &Service{store: store, kek: kek, clock: clock}, nil
}

// CreateCA makes the account's CA unless it has one: AccountCreated may be
// delivered more than once.
func (s *Service) CreateCA(ctx context.Context, accountID string) error {
	if uuid.Validate(accountID) != nil {
		return errs.New(errs.Invalid, "account_id must be an account's id")
	}
	if _, err := s.store.Get(ctx, accountID); err == nil {
		return nil
	} else if !errors.Is(err, ErrCANotFound) {
		return err
	}
	ca, err := pki.NewCA(accountID, s.clock())
	if err != nil {
		return err
	}
	sealed, err := ca.Seal(s.kek)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(ca.Root.Raw)
	err = s.store.Create(ctx, accountID, sealed, Initialized{AccountID: accountID, RootSHA256: hex.EncodeToString(sum[:])})
	if errors.Is(err, ErrCAExists) {
		return nil // another replica was first
	}
	return err
}

// DeleteCA removes the account's CA; deleting a missing one is not an error.
func (s *Service) DeleteCA(ctx context.Context, accountID string) error {
	if uuid.Validate(accountID) != nil {
		return nil
	}
	err := s.store.Delete(ctx, accountID)
	if errors.Is(err, ErrCANotFound) {
		return nil
	}
	return err
}

// CA returns the account's CA, keys unsealed.
func (s *Service) CA(ctx context.Context, accountID string) (*pki.CA, error) {
	if uuid.Validate(accountID) != nil {
		return nil, ErrCANotFound
	}
	sealed, err := s.store.Get(ctx, accountID)
	if err != nil {
		return nil, err
	}
	ca, err := pki.OpenCA(sealed, s.kek, accountID)
	if err != nil {
		return nil, fmt.Errorf("opening the CA of %s (is this the deployment's master key?): %w", accountID, err)
	}
	return ca, nil
}

// CRLLifetime is how long a CRL is valid; clients fetch a new one by then.
const CRLLifetime = 24 * time.Hour

// CRL returns the account's current CRL, signed by its issuing CA. No
// certificate is revoked yet: revocation comes with issuance.
func (s *Service) CRL(ctx context.Context, accountID string) ([]byte, time.Time, error) {
	ca, err := s.CA(ctx, accountID)
	if err != nil {
		return nil, time.Time{}, err
	}
	now := s.clock()
	next := now.Add(CRLLifetime)
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(now.UnixNano()),
		ThisUpdate: now,
		NextUpdate: next,
	}, ca.Issuer, ca.IssuerSigner())
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("signing CRL: %w", err)
	}
	return der, next, nil
}
