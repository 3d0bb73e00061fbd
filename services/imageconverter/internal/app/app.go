// Package app is the image converter's use cases: applications, the
// accounts' enclave signing keys, images and their conversion.
package app

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/domain"
)

// Apps stores applications.
type Apps interface {
	Create(ctx context.Context, a domain.App, ev domain.AppCreated) error
	Get(ctx context.Context, accountID, appID string) (domain.App, error) // domain.ErrAppNotFound
	List(ctx context.Context, accountID string) ([]domain.App, error)
	// Update stores a if its version is unchanged (domain.ErrConcurrentChange).
	Update(ctx context.Context, a domain.App, ev domain.AppUpdated) (domain.App, error)
	Delete(ctx context.Context, a domain.App, ev domain.AppDeleted) error
	// DeleteAccount removes every application of a deleted account.
	DeleteAccount(ctx context.Context, accountID string) error
}

// Keys stores the accounts' signing keys.
type Keys interface {
	// Create stores a key unless the account has one (then it returns
	// domain.ErrKeyExists and stores nothing).
	Create(ctx context.Context, k domain.SigningKey, ev domain.SigningKeyCreated) error
	Get(ctx context.Context, accountID string) (domain.SigningKey, error) // domain.ErrNoSigningKey
	Delete(ctx context.Context, accountID string) error
}

// AuditLog records calls that failed; successes travel with their change.
type AuditLog interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Config holds the service's dependencies.
type Config struct {
	Apps       Apps
	Keys       Keys
	Images     Images
	Registries Registries
	Secrets    Secrets
	VolumeKeys VolumeKeys
	Policies   SecretPolicies
	// Certificates reads the CA's records before secrets are sealed; nil
	// in tests that deliver none (SealSecrets then refuses).
	Certificates Certificates
	Audit        AuditLog
	// Converter converts images; nil in a process that only serves the API
	// (conversion jobs then wait for a process that has one).
	Converter Converter
	// Resolver asks registries whether converted images are still there.
	Resolver Resolver
	KEK      *pki.KEK
	Clock    func() time.Time
	// GenerateKey makes signing keys; sgx.GenerateSigningKey unless set
	// (tests reuse keys: an RSA-3072 e = 3 key takes a second or more).
	GenerateKey func(io.Reader) (*rsa.PrivateKey, error)
	Logger      *slog.Logger
}

// Service is the image converter.
type Service struct {
	cfg Config
}

// New returns the service.
func New(cfg Config) (*Service, error) {
	if cfg.Apps == nil || cfg.Keys == nil || cfg.Images == nil || cfg.Registries == nil || cfg.Secrets == nil || cfg.VolumeKeys == nil || cfg.Policies == nil ||
		cfg.Audit == nil || cfg.KEK == nil {
		return nil, errors.New("imageconverter: the stores, the audit log and a key-encryption key are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.GenerateKey == nil {
		cfg.GenerateKey = sgx.GenerateSigningKey
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg}, nil
}

func (s *Service) now() time.Time { return s.cfg.Clock().UTC() }

// audited records a failed call of a person in the account's audit log
// and returns err; a stranger's call (the account is not theirs) or a
// malformed account id leaves no record.
func (s *Service) audited(ctx context.Context, e audit.Entry, err error) error {
	if err == nil || uuid.Validate(e.AccountID) != nil || e.Actor.UserID == "" {
		return err
	}
	e.Err = err
	if rerr := s.cfg.Audit.Record(ctx, e); rerr != nil {
		return errors.Join(err, fmt.Errorf("recording audit entry: %w", rerr))
	}
	return err
}

// CreateApp adds an application to an account.
func (s *Service) CreateApp(ctx context.Context, accountID string, spec domain.AppSpec, actor audit.Actor) (domain.App, error) {
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.AppCreate), Target: spec.Name}
	a, err := s.createApp(ctx, accountID, spec, entry)
	return a, s.audited(ctx, entry, err)
}

func (s *Service) createApp(ctx context.Context, accountID string, spec domain.AppSpec, entry audit.Entry) (domain.App, error) {
	if uuid.Validate(accountID) != nil {
		return domain.App{}, domain.ErrAppNotFound
	}
	spec = spec.WithDefaults()
	if err := spec.Check(); err != nil {
		return domain.App{}, err
	}
	if err := s.nameFree(ctx, accountID, spec.Name, ""); err != nil {
		return domain.App{}, err
	}
	now := s.now()
	a := domain.App{ID: uuid.Must(uuid.NewV7()).String(), AccountID: accountID, Spec: spec, CreatedAt: now, UpdatedAt: now,
		CreatedBy: entry.Actor.UserID, UpdatedBy: entry.Actor.UserID}
	entry.Target = a.ID
	if err := s.cfg.Apps.Create(ctx, a, domain.AppCreated{App: a, Audit: entry}); err != nil {
		return domain.App{}, err
	}
	return a, nil
}

// nameFree checks that no other application of the account has name.
// Two concurrent creations can still both pass; names are a convenience
// for people, ids identify.
func (s *Service) nameFree(ctx context.Context, accountID, name, exceptID string) error {
	apps, err := s.cfg.Apps.List(ctx, accountID)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if a.Spec.Name == name && a.ID != exceptID {
			return domain.ErrAppNameTaken
		}
	}
	return nil
}

// App returns an application by id or by name.
func (s *Service) App(ctx context.Context, accountID, idOrName string) (domain.App, error) {
	if uuid.Validate(accountID) != nil || idOrName == "" {
		return domain.App{}, domain.ErrAppNotFound
	}
	if uuid.Validate(idOrName) == nil {
		return s.cfg.Apps.Get(ctx, accountID, idOrName)
	}
	apps, err := s.cfg.Apps.List(ctx, accountID)
	if err != nil {
		return domain.App{}, err
	}
	for _, a := range apps {
		if a.Spec.Name == idOrName {
			return a, nil
		}
	}
	return domain.App{}, domain.ErrAppNotFound
}

// Apps lists an account's applications, ordered by id (creation).
func (s *Service) Apps(ctx context.Context, accountID string) ([]domain.App, error) {
	if uuid.Validate(accountID) != nil {
		return nil, nil
	}
	return s.cfg.Apps.List(ctx, accountID)
}

// UpdateApp replaces an application's spec.
func (s *Service) UpdateApp(ctx context.Context, accountID, appID string, spec domain.AppSpec, actor audit.Actor) (domain.App, error) {
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.AppUpdate), Target: appID}
	a, err := s.updateApp(ctx, accountID, appID, spec, entry)
	return a, s.audited(ctx, entry, err)
}

func (s *Service) updateApp(ctx context.Context, accountID, appID string, spec domain.AppSpec, entry audit.Entry) (domain.App, error) {
	a, err := s.App(ctx, accountID, appID)
	if err != nil {
		return domain.App{}, err
	}
	spec = spec.WithDefaults()
	if err := spec.Check(); err != nil {
		return domain.App{}, err
	}
	if spec.Name != a.Spec.Name {
		if err := s.nameFree(ctx, accountID, spec.Name, a.ID); err != nil {
			return domain.App{}, err
		}
	}
	a.Spec, a.UpdatedAt, a.UpdatedBy = spec, s.now(), entry.Actor.UserID
	return s.cfg.Apps.Update(ctx, a, domain.AppUpdated{App: a, Audit: entry})
}

// DeleteApp removes an application.
func (s *Service) DeleteApp(ctx context.Context, accountID, appID string, actor audit.Actor) error {
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.AppDelete), Target: appID}
	a, err := s.App(ctx, accountID, appID)
	if err == nil {
		entry.Target = a.ID
		err = s.cfg.Apps.Delete(ctx, a, domain.AppDeleted{AccountID: accountID, AppID: a.ID, Audit: entry})
	}
	if err == nil {
		// The volumes' data goes with their keys: the CLI and console
		// ask before they delete an application that has volumes. The
		// application is gone: should this fail, AppDeleted's consumer
		// does it again, so the caller hears of the deletion.
		if ferr := s.ForgetAppSecrets(ctx, accountID, a.ID); ferr != nil {
			s.cfg.Logger.Warn("forgetting a deleted application's secrets; its event's consumer will retry",
				"account_id", accountID, "app_id", a.ID, "error", ferr)
		}
	}
	return s.audited(ctx, entry, err)
}

// CreateSigningKey gives a new account its enclave signing key (RSA-3072,
// e = 3), sealed under the KEK. AccountCreated may arrive more than once:
// an account that has a key keeps it.
func (s *Service) CreateSigningKey(ctx context.Context, accountID string) error {
	if uuid.Validate(accountID) != nil {
		return errs.New(errs.Invalid, "account_id must be an account's id")
	}
	if _, err := s.cfg.Keys.Get(ctx, accountID); err == nil {
		return nil
	} else if !errors.Is(err, domain.ErrNoSigningKey) {
		return err
	}
	key, err := s.cfg.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generating signing key: %w", err)
	}
	der := x509.MarshalPKCS1PrivateKey(key)
	sealed, err := s.cfg.KEK.Seal(der, keyAAD(accountID))
	clear(der)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	k := domain.SigningKey{AccountID: accountID, PublicPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		MRSIGNER: sgx.MRSIGNEROf(&key.PublicKey), Sealed: sealed, CreatedAt: s.now()}
	err = s.cfg.Keys.Create(ctx, k, domain.SigningKeyCreated{Key: k})
	if errors.Is(err, domain.ErrKeyExists) {
		return nil // another replica was first
	}
	return err
}

// SigningKey returns the account's signing key (its private half sealed).
func (s *Service) SigningKey(ctx context.Context, accountID string) (domain.SigningKey, error) {
	if uuid.Validate(accountID) != nil {
		return domain.SigningKey{}, domain.ErrNoSigningKey
	}
	return s.cfg.Keys.Get(ctx, accountID)
}

// signer opens the account's private signing key.
func (s *Service) signer(ctx context.Context, accountID string) (*rsa.PrivateKey, error) {
	k, err := s.SigningKey(ctx, accountID)
	if err != nil {
		return nil, err
	}
	der, err := s.cfg.KEK.Open(k.Sealed, keyAAD(accountID))
	if err != nil {
		return nil, fmt.Errorf("opening the signing key of %s (is this the deployment's master key?): %w", accountID, err)
	}
	defer clear(der)
	return x509.ParsePKCS1PrivateKey(der)
}

func keyAAD(accountID string) []byte {
	return []byte("cloister/imageconverter/signing-key/" + accountID)
}

// DeleteAccount forgets a deleted account's applications, images,
// registry credentials, secrets, volume keys and signing key.
func (s *Service) DeleteAccount(ctx context.Context, accountID string) error {
	if uuid.Validate(accountID) != nil {
		return nil
	}
	if err := s.cfg.Apps.DeleteAccount(ctx, accountID); err != nil {
		return err
	}
	if err := s.cfg.Images.DeleteAccount(ctx, accountID); err != nil {
		return err
	}
	if err := s.cfg.Registries.DeleteAccount(ctx, accountID); err != nil {
		return err
	}
	if err := s.cfg.Secrets.DeleteAccount(ctx, accountID); err != nil {
		return err
	}
	return s.cfg.Keys.Delete(ctx, accountID)
}
