package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/ca/internal/domain"
)

// OCSP answers a DER OCSP request about the account's certificates,
// signed by the issuing CA (current or retired) the request names: good,
// revoked, or unknown for a serial that CA did not issue.
func (s *Service) OCSP(ctx context.Context, accountID string, der []byte) ([]byte, error) {
	if len(der) == 0 || len(der) > 4096 {
		return nil, errs.New(errs.Invalid, "an OCSP request is 1 to 4096 bytes")
	}
	req, err := ocsp.ParseRequest(der)
	if err != nil {
		return nil, errs.Newf(errs.Invalid, "not an OCSP request: %v", err)
	}
	ca, err := s.CA(ctx, accountID)
	if err != nil {
		return nil, err
	}
	issuer := ca.Issuer
	for _, i := range ca.Issuers() {
		if keyHashMatches(req, i) {
			issuer = i
			break
		}
	}
	signer, _ := ca.SignerOf(issuer)
	now := s.clock().UTC()
	tmpl := ocsp.Response{SerialNumber: req.SerialNumber, ThisUpdate: now, NextUpdate: now.Add(time.Hour), Status: ocsp.Unknown}
	if c, err := s.certs.Get(ctx, accountID, req.SerialNumber.Text(16)); err == nil {
		if issued, err := x509.ParseCertificate(c.DER); err == nil && bytes.Equal(issued.AuthorityKeyId, issuer.SubjectKeyId) && keyHashMatches(req, issuer) {
			tmpl.Status = ocsp.Good
			if c.Revoked {
				tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, c.RevokedAt, ocsp.Unspecified
			}
		}
	} else if !errors.Is(err, domain.ErrCertificateNotFound) {
		return nil, err
	}
	return ocsp.CreateResponse(issuer, issuer, tmpl, signer)
}

// keyHashMatches tells whether an OCSP request names issuer, by the hash
// of its public key (RFC 6960 §4.1.1) in the request's hash algorithm.
func keyHashMatches(req *ocsp.Request, issuer *x509.Certificate) bool {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil || !req.HashAlgorithm.Available() {
		return false
	}
	h := req.HashAlgorithm.New()
	h.Write(spki.PublicKey.RightAlign())
	return bytes.Equal(h.Sum(nil), req.IssuerKeyHash)
}

func isHex(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// CRLLifetime is how long a CRL is valid; clients fetch a new one by then.
const CRLLifetime = 24 * time.Hour

// CRL returns the CRL of one of the account's issuing CAs (by hex subject
// key id; empty for the current one), signed by it, listing every
// certificate it issued that is revoked and not expired. A deleted
// account's CRL is the final one signed at deletion.
func (s *Service) CRL(ctx context.Context, accountID, issuerKeyID string) ([]byte, time.Time, error) {
	ca, err := s.CA(ctx, accountID)
	if errors.Is(err, domain.ErrCANotFound) {
		return s.finalCRL(ctx, accountID, issuerKeyID)
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	issuer := ca.Issuer
	if issuerKeyID != "" {
		issuer = nil
		for _, i := range ca.Issuers() {
			if strings.EqualFold(hex.EncodeToString(i.SubjectKeyId), issuerKeyID) {
				issuer = i
			}
		}
		if issuer == nil {
			// One retired early keeps its last CRL.
			crl, err := s.final.Get(ctx, accountID, strings.ToLower(issuerKeyID))
			if err != nil || !crl.RetiredEarly {
				return nil, time.Time{}, errNoSuchIssuer
			}
			return crl.DER, crl.NextUpdate, nil
		}
	}
	certs, err := s.Certificates(ctx, accountID, "", true)
	if err != nil {
		return nil, time.Time{}, err
	}
	now := s.clock()
	next := now.Add(CRLLifetime)
	der, err := signCRL(ca, issuer, certs, now, next)
	if err != nil {
		return nil, time.Time{}, err
	}
	return der, next, nil
}

var errNoSuchIssuer = errs.New(errs.NotFound, "the account has no issuing CA with that key id")

// finalCRL returns a deleted account's final CRL.
func (s *Service) finalCRL(ctx context.Context, accountID, issuerKeyID string) ([]byte, time.Time, error) {
	if uuid.Validate(accountID) != nil {
		return nil, time.Time{}, domain.ErrCANotFound
	}
	if issuerKeyID != "" && !isHex(issuerKeyID) {
		return nil, time.Time{}, domain.ErrCANotFound
	}
	crl, err := s.final.Get(ctx, accountID, strings.ToLower(issuerKeyID))
	if err != nil {
		return nil, time.Time{}, err
	}
	return crl.DER, crl.NextUpdate, nil
}

// storeFinalCRLs signs and stores the final CRL of each of the CA's
// issuing CAs. Each lasts until the last certificate its issuer signed
// expires, since no CRL will follow it; at least CRLLifetime.
func (s *Service) storeFinalCRLs(ctx context.Context, accountID string, ca *pki.CA) error {
	certs, err := s.Certificates(ctx, accountID, "", true)
	if err != nil {
		return err
	}
	now := s.clock()
	var crls []domain.FinalCRL
	for i, issuer := range ca.Issuers() {
		der, next, err := lastCRL(ca, issuer, certs, now)
		if err != nil {
			return err
		}
		crls = append(crls, domain.FinalCRL{IssuerKeyID: hex.EncodeToString(issuer.SubjectKeyId), Current: i == 0, DER: der, NextUpdate: next})
	}
	return s.final.Put(ctx, accountID, crls)
}

// lastCRL signs the last CRL issuer will sign: it lasts until the last
// certificate it signed expires, since no CRL will follow it; at least
// CRLLifetime.
func lastCRL(ca *pki.CA, issuer *x509.Certificate, certs []domain.Certificate, now time.Time) ([]byte, time.Time, error) {
	next := now.Add(CRLLifetime)
	for _, c := range certs {
		if c.NotAfter.After(next) && issuedBy(c, issuer) {
			next = c.NotAfter
		}
	}
	der, err := signCRL(ca, issuer, certs, now, next)
	return der, next, err
}

// issuedBy tells whether issuer signed c, by key id.
func issuedBy(c domain.Certificate, issuer *x509.Certificate) bool {
	cert, err := x509.ParseCertificate(c.DER)
	return err == nil && bytes.Equal(cert.AuthorityKeyId, issuer.SubjectKeyId)
}

// signCRL signs issuer's CRL, listing those of certs it issued that are
// revoked and not expired at now.
func signCRL(ca *pki.CA, issuer *x509.Certificate, certs []domain.Certificate, now, next time.Time) ([]byte, error) {
	signer, ok := ca.SignerOf(issuer)
	if !ok {
		return nil, errors.New("ca: no key for the issuing CA")
	}
	var entries []x509.RevocationListEntry
	for _, c := range certs {
		if !c.Revoked || !c.NotAfter.After(now) || !issuedBy(c, issuer) {
			continue
		}
		serial, _ := new(big.Int).SetString(c.Serial, 16)
		entries = append(entries, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: c.RevokedAt})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(now.UnixNano()),
		ThisUpdate:                now,
		NextUpdate:                next,
		RevokedCertificateEntries: entries,
	}, issuer, signer)
	if err != nil {
		return nil, fmt.Errorf("signing CRL: %w", err)
	}
	return der, nil
}
