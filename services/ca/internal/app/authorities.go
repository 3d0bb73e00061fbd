package app

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/ca/internal/domain"
)

type openedCA struct {
	sealedHash [32]byte
	ca         *pki.CA
}

// maxOpened bounds the unsealed CAs kept in memory.
const maxOpened = 10000

// errClosing refuses issuance for an account being deleted.
var errClosing = errs.New(errs.NotFound, "the account is being deleted")

// openCA is CA for issuance: an account being deleted gets nothing. The
// CA and the mark of a deletion are read at once: two reads, one wait.
func (s *Service) openCA(ctx context.Context, accountID string) (*pki.CA, error) {
	var (
		closing    bool
		closingErr error
		read       = make(chan struct{})
	)
	go func() {
		defer close(read)
		closing, closingErr = s.final.Closing(ctx, accountID)
	}()
	ca, err := s.CA(ctx, accountID)
	<-read
	if err != nil {
		return nil, err
	}
	if closingErr != nil {
		return nil, closingErr
	}
	if closing {
		return nil, errClosing
	}
	return ca, nil
}

// stillOpen checks, once an issued certificate is recorded, that its
// account's deletion did not start meanwhile: DeleteCA marks the account
// closing before it lists the certificates to revoke, so a certificate
// recorded before the mark is on its list, and one recorded after it is
// revoked here and never handed out.
func (s *Service) stillOpen(ctx context.Context, rec domain.Certificate) error {
	closing, err := s.final.Closing(ctx, rec.AccountID)
	if err == nil && !closing {
		return nil
	}
	if err == nil {
		err = errClosing
	}
	if _, rerr := s.Revoke(ctx, rec.AccountID, rec.Serial, "account deleted", nil); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// RotateIssuer replaces the account's issuing CA with a new key under
// the same root. The retired issuer signs nothing new, but keeps signing
// the CRL and OCSP answers of the certificates it issued; with
// revokePrevious it is retired for good at once (RetireIssuer), and the
// rotation is then never refused for the number of retired issuers.
// Audited. It returns the CA and, with revokePrevious, how many
// certificates were revoked.
func (s *Service) RotateIssuer(ctx context.Context, accountID string, revokePrevious bool, actor audit.Actor) (*pki.CA, int, error) {
	var rotated *pki.CA
	var previous string
	err := s.store.Update(ctx, accountID, func(sealed []byte) ([]byte, domain.Event, error) {
		ca, err := pki.OpenCA(sealed, s.kek, accountID)
		if err != nil {
			return nil, nil, fmt.Errorf("opening the CA of %s: %w", accountID, err)
		}
		old := sha256.Sum256(ca.Issuer.Raw)
		previous = hex.EncodeToString(ca.Issuer.SubjectKeyId)
		rotate := ca.RotateIssuer
		if revokePrevious {
			rotate = ca.ForceRotateIssuer
		}
		if err := rotate(s.clock()); errors.Is(err, pki.ErrTooManyRetired) {
			return nil, nil, errs.New(errs.Conflict, strings.TrimPrefix(err.Error(), "pki: ")+" (cloister ca retire, cloister ca rotate --revoke-previous)")
		} else if err != nil {
			return nil, nil, err
		}
		next, err := ca.Seal(s.kek)
		if err != nil {
			return nil, nil, err
		}
		rotated = ca
		sum := sha256.Sum256(ca.Issuer.Raw)
		return next, domain.IssuerRotated{AccountID: accountID, IssuerSHA256: hex.EncodeToString(sum[:]), RetiredSHA256: hex.EncodeToString(old[:]),
			Audit: audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.CARotate), Target: hex.EncodeToString(sum[:])}}, nil
	})
	if err != nil {
		return nil, 0, s.auditFailure(ctx, accountID, actor, previous, err)
	}
	if !revokePrevious {
		return rotated, 0, nil
	}
	return s.RetireIssuer(ctx, accountID, previous, actor)
}

// RetireIssuer retires a retired issuing CA for good, before it expires:
// every certificate it issued is revoked, its last CRL is signed and
// kept (and served at its CRL URL as before), and its key is destroyed,
// which frees its place among the retired issuers. The current issuer is
// refused (rotate first). Audited (actor, the issuer's key id, and how
// many certificates went with it); a retirement cut short is finished by
// asking again.
func (s *Service) RetireIssuer(ctx context.Context, accountID, issuerKeyID string, actor audit.Actor) (*pki.CA, int, error) {
	ca, n, err := s.retireIssuer(ctx, accountID, strings.ToLower(issuerKeyID), actor)
	if err != nil {
		return nil, 0, s.auditFailure(ctx, accountID, actor, issuerKeyID, err)
	}
	return ca, n, nil
}

func (s *Service) retireIssuer(ctx context.Context, accountID, keyID string, actor audit.Actor) (*pki.CA, int, error) {
	ca, err := s.CA(ctx, accountID)
	if err != nil {
		return nil, 0, err
	}
	var issuer *x509.Certificate
	for _, i := range ca.Issuers() {
		if hex.EncodeToString(i.SubjectKeyId) == keyID {
			issuer = i
		}
	}
	switch {
	case issuer == nil:
		return nil, 0, errNoSuchIssuer
	case issuer == ca.Issuer:
		return nil, 0, errs.New(errs.Conflict, "the current issuing CA cannot be retired: rotate first (cloister ca rotate --revoke-previous)")
	}
	revoked, err := s.RevokeWhere(ctx, accountID, "issuing CA "+keyID+" retired", func(c domain.Certificate) bool { return issuedBy(c, issuer) })
	if err != nil {
		return nil, 0, err
	}
	// Its last CRL, signed while its key is here.
	certs, err := s.Certificates(ctx, accountID, "", true)
	if err != nil {
		return nil, 0, err
	}
	der, next, err := lastCRL(ca, issuer, certs, s.clock())
	if err != nil {
		return nil, 0, err
	}
	if err := s.final.Add(ctx, accountID, domain.FinalCRL{IssuerKeyID: keyID, RetiredEarly: true, DER: der, NextUpdate: next}); err != nil {
		return nil, 0, err
	}
	var out *pki.CA
	err = s.store.Update(ctx, accountID, func(sealed []byte) ([]byte, domain.Event, error) {
		ca, err := pki.OpenCA(sealed, s.kek, accountID)
		if err != nil {
			return nil, nil, fmt.Errorf("opening the CA of %s: %w", accountID, err)
		}
		dropped, err := ca.DropRetired(issuer.SubjectKeyId)
		if err != nil {
			return nil, nil, errNoSuchIssuer
		}
		next, err := ca.Seal(s.kek)
		if err != nil {
			return nil, nil, err
		}
		out = ca
		sum := sha256.Sum256(dropped.Raw)
		return next, domain.IssuerRetired{AccountID: accountID, RetiredSHA256: hex.EncodeToString(sum[:]), Revoked: revoked,
			Audit: audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.CARotate), Target: "retire " + keyID}}, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, revoked, nil
}

// auditFailure records a refused change of the account's CA, unless the
// account has no CA.
func (s *Service) auditFailure(ctx context.Context, accountID string, actor audit.Actor, target string, err error) error {
	if errors.Is(err, domain.ErrCANotFound) || uuid.Validate(accountID) != nil {
		return err
	}
	if rerr := s.audit.Record(ctx, audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.CARotate), Target: target, Err: err}); rerr != nil {
		return errors.Join(err, fmt.Errorf("recording audit entry: %w", rerr))
	}
	return err
}

// CreateCA makes the account's CA unless it has one: AccountCreated may be
// delivered more than once.
func (s *Service) CreateCA(ctx context.Context, accountID string) error {
	if uuid.Validate(accountID) != nil {
		return errs.New(errs.Invalid, "account_id must be an account's id")
	}
	if _, err := s.store.Get(ctx, accountID); err == nil {
		return nil
	} else if !errors.Is(err, domain.ErrCANotFound) {
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
	err = s.store.Create(ctx, accountID, sealed, domain.Initialized{AccountID: accountID, RootSHA256: hex.EncodeToString(sum[:])})
	if errors.Is(err, domain.ErrCAExists) {
		return nil // another replica was first
	}
	return err
}

// DeleteCA revokes every certificate of a deleted account (announcing
// each), forgets its applications and domains, stores the final CRL of
// each of its issuing CAs, and then removes its CA; deleting a missing one
// is not an error. A redelivery after a crash signs the final CRLs again
// while the CA is there, and changes nothing once it is gone.
func (s *Service) DeleteCA(ctx context.Context, accountID string) error {
	if uuid.Validate(accountID) != nil {
		return nil
	}
	// First, so that no certificate issued from now on is handed out
	// (stillOpen), and every one handed out is on the list below.
	if err := s.final.MarkClosing(ctx, accountID); err != nil {
		return err
	}
	if err := s.issuance.Domains.RemoveApp(ctx, accountID, ""); err != nil {
		return err
	}
	if err := s.issuance.Images.RemoveWhere(ctx, accountID, "", func(domain.ApprovedImage) bool { return true }); err != nil {
		return err
	}
	if err := s.issuance.Apps.RemoveAccount(ctx, accountID); err != nil {
		return err
	}
	certs, err := s.Certificates(ctx, accountID, "", false)
	if err != nil {
		return err
	}
	for _, c := range certs {
		if _, err := s.Revoke(ctx, accountID, c.Serial, "account deleted", nil); err != nil {
			return err
		}
	}
	ca, err := s.CA(ctx, accountID)
	if errors.Is(err, domain.ErrCANotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.storeFinalCRLs(ctx, accountID, ca); err != nil {
		return fmt.Errorf("storing the final CRLs of %s: %w", accountID, err)
	}
	err = s.store.Delete(ctx, accountID)
	// Its keys should not outlive it in memory either.
	s.mu.Lock()
	delete(s.opened, accountID)
	s.mu.Unlock()
	if errors.Is(err, domain.ErrCANotFound) {
		return nil
	}
	return err
}

// CA returns the account's CA, keys unsealed.
func (s *Service) CA(ctx context.Context, accountID string) (*pki.CA, error) {
	if uuid.Validate(accountID) != nil {
		return nil, domain.ErrCANotFound
	}
	sealed, err := s.store.Get(ctx, accountID)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(sealed)
	s.mu.Lock()
	o, ok := s.opened[accountID]
	s.mu.Unlock()
	if ok && o.sealedHash == sum {
		return o.ca, nil
	}
	ca, err := pki.OpenCA(sealed, s.kek, accountID)
	if err != nil {
		return nil, fmt.Errorf("opening the CA of %s (is this the deployment's master key?): %w", accountID, err)
	}
	s.mu.Lock()
	if s.opened == nil || len(s.opened) >= maxOpened {
		s.opened = map[string]openedCA{}
	}
	s.opened[accountID] = openedCA{sealedHash: sum, ca: ca}
	s.mu.Unlock()
	return ca, nil
}
