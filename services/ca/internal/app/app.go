// Package app is the CA service's use cases: one CA hierarchy per account,
// created when the account is, and its CRL.
package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/pki"
)

// Errors of the CA service.
var (
	ErrCANotFound       = errs.New(errs.NotFound, "the account has no CA")
	ErrCAExists         = errs.New(errs.Conflict, "the account has a CA already")
	ErrConcurrentChange = errs.New(errs.Conflict, "changed by another request; retry")
)

// Initialized is announced when an account's CA is created.
type Initialized struct{ AccountID, RootSHA256 string }

// Authorities stores each account's CA in its sealed form.
type Authorities interface {
	// Create stores a new CA; ErrCAExists if the account has one.
	Create(ctx context.Context, accountID string, sealed []byte, ev Initialized) error
	Get(ctx context.Context, accountID string) ([]byte, error) // ErrCANotFound
	// Update replaces the sealed CA by what change makes of it, if nobody
	// changed it meanwhile (ErrConcurrentChange otherwise).
	Update(ctx context.Context, accountID string, change func(sealed []byte) ([]byte, IssuerRotated, error)) error
	Delete(ctx context.Context, accountID string) error
}

// FinalCRL is the last CRL of one issuing CA of a deleted account, signed
// before the CA's keys went, so relying parties that still trust the CA
// keep learning that its certificates were revoked.
type FinalCRL struct {
	IssuerKeyID string // hex, lower case
	Current     bool   // the issuing CA was the current one at deletion
	DER         []byte
	NextUpdate  time.Time
}

// FinalCRLs keeps the final CRLs of deleted accounts.
type FinalCRLs interface {
	// Put replaces the account's final CRLs by crls.
	Put(ctx context.Context, accountID string, crls []FinalCRL) error
	// Get returns the final CRL of one issuing CA (by lower-case hex key
	// id; empty for the one current at deletion); ErrCANotFound if none.
	Get(ctx context.Context, accountID, issuerKeyID string) (FinalCRL, error)
	// MarkClosing records that the account's CA is being deleted (again
	// is not an error); Closing tells whether it is.
	MarkClosing(ctx context.Context, accountID string) error
	Closing(ctx context.Context, accountID string) (bool, error)
}

// Certificate is an issued certificate as the CA records it.
type Certificate struct {
	Serial    string // hex
	AccountID string
	Kind      string // "node" or "app"
	SubjectID string
	DNSNames  []string
	NotBefore time.Time
	NotAfter  time.Time
	Revoked   bool
	RevokedAt time.Time
	Reason    string
	DER       []byte
	// Application certificates: what they were issued on.
	NodeID    string `json:",omitempty"`
	ImageID   string `json:",omitempty"`
	MRENCLAVE []byte `json:",omitempty"`
	VerdictID string `json:",omitempty"`
	Version   uint64
}

// Events of issuance and revocation. A revocation someone asked for
// carries its audit record, committed with it.
type (
	Issued  struct{ Certificate Certificate }
	Revoked struct {
		Certificate Certificate
		Audit       *audit.Entry
	}
	// IssuerRotated is announced when an account's issuing CA is replaced.
	IssuerRotated struct {
		AccountID, IssuerSHA256, RetiredSHA256 string
		Audit                                  audit.Entry
	}
)

// AuditLog records calls that failed; successes travel with their change.
type AuditLog interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Certificates records what each account's CA issued.
type Certificates interface {
	Create(ctx context.Context, c Certificate, ev Issued) error
	Get(ctx context.Context, accountID, serial string) (Certificate, error) // ErrCertificateNotFound
	// Update stores c if its version is unchanged.
	Update(ctx context.Context, c Certificate, ev Revoked) (Certificate, error)
	List(ctx context.Context, accountID string) ([]Certificate, error)
}

// ErrCertificateNotFound is returned for a serial the account's CA did not issue.
var ErrCertificateNotFound = errs.New(errs.NotFound, "certificate not found")

// NodeCertLifetime is how long a node's client certificate lasts.
const NodeCertLifetime = 90 * 24 * time.Hour

// Issuance is what application issuance needs besides the CA: the
// applications' configurations, the domain allowlist, nonces, and the
// attestation service's verdicts.
type Issuance struct {
	Apps        Apps
	Domains     Domains
	Images      Images
	Withdrawals Withdrawals
	Nonces      Nonces
	Verdicts    Verdicts
}

// Config holds the service's dependencies.
type Config struct {
	Authorities  Authorities
	Certificates Certificates
	FinalCRLs    FinalCRLs
	Issuance     Issuance
	Audit        AuditLog
	// KEK seals the CAs' private keys.
	KEK   *pki.KEK
	Clock func() time.Time
	// PublicURL is where relying parties reach the gateway (its CRLs and
	// OCSP responder), e.g. https://cloister.example.com; application
	// certificates then name their CRL and OCSP URLs. Empty: they name
	// none.
	PublicURL string
}

// Service keeps the accounts' CAs.
type Service struct {
	store    Authorities
	certs    Certificates
	final    FinalCRLs
	kek      *pki.KEK
	clock    func() time.Time
	issuance Issuance
	audit    AuditLog
	public   string // PublicURL without a trailing slash

	// opened keeps unsealed CAs by the SHA-256 of their sealed record:
	// unsealing costs more than the signature it enables, and a changed
	// record (a rotation) has another hash, so nothing stale is used.
	mu     sync.Mutex
	opened map[string]openedCA
}

type openedCA struct {
	sealedHash [32]byte
	ca         *pki.CA
}

// maxOpened bounds the unsealed CAs kept in memory.
const maxOpened = 10000

// New returns the service.
func New(cfg Config) (*Service, error) {
	iss := cfg.Issuance
	if cfg.Authorities == nil || cfg.Certificates == nil || cfg.FinalCRLs == nil || cfg.KEK == nil || cfg.Audit == nil ||
		iss.Apps == nil || iss.Domains == nil || iss.Images == nil || iss.Withdrawals == nil || iss.Nonces == nil || iss.Verdicts == nil {
		return nil, errors.New("ca: the stores, the audit log, the verdict source and a key-encryption key are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.PublicURL != "" {
		if u, err := url.Parse(cfg.PublicURL); err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("ca: the public URL %q is not an http(s) URL with a host", cfg.PublicURL)
		}
	}
	return &Service{store: cfg.Authorities, certs: cfg.Certificates, final: cfg.FinalCRLs, kek: cfg.KEK, clock: cfg.Clock, issuance: iss,
		audit: cfg.Audit, public: strings.TrimSuffix(cfg.PublicURL, "/")}, nil
}

// revocationURLs are the OCSP responder and the CRL of the account's
// issuer (by key id, so that a certificate keeps naming its own issuer's
// CRL after a rotation), or nothing without a public URL.
func (s *Service) revocationURLs(accountID string, ca *pki.CA) (ocsp, crl string) {
	if s.public == "" {
		return "", ""
	}
	return s.public + "/v1/ocsp/" + accountID, s.public + "/v1/crl/" + accountID + ".crl?issuer=" + hex.EncodeToString(ca.Issuer.SubjectKeyId)
}

// randRead fills b from the system's secure random source.
var randRead = rand.Read

// IssueNodeCertificate issues a client certificate for an enrolling node,
// identified as urn:cloister:node:<account>:<node>.
func (s *Service) IssueNodeCertificate(ctx context.Context, accountID, nodeID string, csrBytes []byte) (Certificate, *pki.CA, error) {
	if uuid.Validate(nodeID) != nil {
		return Certificate{}, nil, errs.New(errs.Invalid, "node_id must be a node's id")
	}
	ca, err := s.openCA(ctx, accountID)
	if err != nil {
		return Certificate{}, nil, err
	}
	csr, err := pki.CheckCSRKey(csrBytes, pki.P256)
	if err != nil {
		return Certificate{}, nil, errs.New(errs.Invalid, err.Error())
	}
	uri := &url.URL{Scheme: "urn", Opaque: "cloister:node:" + accountID + ":" + nodeID}
	cert, err := ca.IssueClient(csr, "node "+nodeID, uri, NodeCertLifetime, s.clock())
	if err != nil {
		return Certificate{}, nil, err
	}
	rec := Certificate{Serial: cert.SerialNumber.Text(16), AccountID: accountID, Kind: "node", SubjectID: nodeID,
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.Raw}
	if err := s.certs.Create(ctx, rec, Issued{Certificate: rec}); err != nil {
		return Certificate{}, nil, err
	}
	if err := s.stillOpen(ctx, rec); err != nil {
		return Certificate{}, nil, err
	}
	return rec, ca, nil
}

// errClosing refuses issuance for an account being deleted.
var errClosing = errs.New(errs.NotFound, "the account is being deleted")

// openCA is CA for issuance: an account being deleted gets nothing.
func (s *Service) openCA(ctx context.Context, accountID string) (*pki.CA, error) {
	ca, err := s.CA(ctx, accountID)
	if err != nil {
		return nil, err
	}
	closing, err := s.final.Closing(ctx, accountID)
	if err != nil {
		return nil, err
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
func (s *Service) stillOpen(ctx context.Context, rec Certificate) error {
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

// Certificate returns one certificate the account's CA issued.
func (s *Service) Certificate(ctx context.Context, accountID, serial string) (Certificate, error) {
	if uuid.Validate(accountID) != nil || !isHex(serial) {
		return Certificate{}, ErrCertificateNotFound
	}
	return s.certs.Get(ctx, accountID, strings.ToLower(serial))
}

// Certificates lists what the account's CA issued, ordered by serial.
func (s *Service) Certificates(ctx context.Context, accountID, kind string, includeRevoked bool) ([]Certificate, error) {
	return s.CertificatesOf(ctx, accountID, kind, "", includeRevoked)
}

// CertificatesOf lists what the account's CA issued to one subject (a
// node's or an application's id; empty for every subject), ordered by serial.
func (s *Service) CertificatesOf(ctx context.Context, accountID, kind, subjectID string, includeRevoked bool) ([]Certificate, error) {
	if uuid.Validate(accountID) != nil {
		return nil, nil
	}
	all, err := s.certs.List(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, c := range all {
		if (kind == "" || c.Kind == kind) && (subjectID == "" || c.SubjectID == subjectID) && (includeRevoked || !c.Revoked) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Revoke revokes a certificate; revoking a revoked one changes nothing.
// actor is who asked, nil when the CA revokes on its own (what a
// certificate depended on went away); a person's request is audited,
// whether it succeeds or not.
func (s *Service) Revoke(ctx context.Context, accountID, serial, reason string, actor *audit.Actor) (Certificate, error) {
	c, err := s.revoke(ctx, accountID, serial, reason, actor)
	if err != nil && actor != nil && !errors.Is(err, ErrCANotFound) && uuid.Validate(accountID) == nil {
		if rerr := s.audit.Record(ctx, audit.Entry{AccountID: accountID, Actor: *actor, Action: "cert.revoke", Target: serial, Err: err}); rerr != nil {
			return Certificate{}, errors.Join(err, fmt.Errorf("recording audit entry: %w", rerr))
		}
	}
	return c, err
}

func (s *Service) revoke(ctx context.Context, accountID, serial, reason string, actor *audit.Actor) (Certificate, error) {
	c, err := s.Certificate(ctx, accountID, serial)
	if err != nil {
		return Certificate{}, err
	}
	if c.Revoked {
		return c, nil
	}
	if len(reason) > 200 {
		return Certificate{}, errs.New(errs.Invalid, "reason is longer than 200 characters")
	}
	c.Revoked, c.RevokedAt, c.Reason = true, s.clock().UTC(), reason
	ev := Revoked{Certificate: c}
	if actor != nil {
		ev.Audit = &audit.Entry{AccountID: accountID, Actor: *actor, Action: "cert.revoke", Target: c.Serial}
	}
	return s.certs.Update(ctx, c, ev)
}

// RotateIssuer replaces the account's issuing CA with a new key under
// the same root. The retired issuer signs nothing new, but keeps signing
// the CRL and OCSP answers of the certificates it issued. Audited.
func (s *Service) RotateIssuer(ctx context.Context, accountID string, actor audit.Actor) (*pki.CA, error) {
	var rotated *pki.CA
	err := s.store.Update(ctx, accountID, func(sealed []byte) ([]byte, IssuerRotated, error) {
		ca, err := pki.OpenCA(sealed, s.kek, accountID)
		if err != nil {
			return nil, IssuerRotated{}, fmt.Errorf("opening the CA of %s: %w", accountID, err)
		}
		old := sha256.Sum256(ca.Issuer.Raw)
		if err := ca.RotateIssuer(s.clock()); errors.Is(err, pki.ErrTooManyRetired) {
			return nil, IssuerRotated{}, errs.New(errs.Conflict, strings.TrimPrefix(err.Error(), "pki: "))
		} else if err != nil {
			return nil, IssuerRotated{}, err
		}
		next, err := ca.Seal(s.kek)
		if err != nil {
			return nil, IssuerRotated{}, err
		}
		rotated = ca
		sum := sha256.Sum256(ca.Issuer.Raw)
		return next, IssuerRotated{AccountID: accountID, IssuerSHA256: hex.EncodeToString(sum[:]), RetiredSHA256: hex.EncodeToString(old[:]),
			Audit: audit.Entry{AccountID: accountID, Actor: actor, Action: "ca.rotate", Target: hex.EncodeToString(sum[:])}}, nil
	})
	if err != nil {
		if !errors.Is(err, ErrCANotFound) && uuid.Validate(accountID) == nil {
			if rerr := s.audit.Record(ctx, audit.Entry{AccountID: accountID, Actor: actor, Action: "ca.rotate", Err: err}); rerr != nil {
				err = errors.Join(err, fmt.Errorf("recording audit entry: %w", rerr))
			}
		}
		return nil, err
	}
	return rotated, nil
}

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
	} else if !errors.Is(err, ErrCertificateNotFound) {
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
	if err := s.issuance.Images.RemoveWhere(ctx, accountID, "", func(ApprovedImage) bool { return true }); err != nil {
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
	if errors.Is(err, ErrCANotFound) {
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

// CRLLifetime is how long a CRL is valid; clients fetch a new one by then.
const CRLLifetime = 24 * time.Hour

// CRL returns the CRL of one of the account's issuing CAs (by hex subject
// key id; empty for the current one), signed by it, listing every
// certificate it issued that is revoked and not expired. A deleted
// account's CRL is the final one signed at deletion.
func (s *Service) CRL(ctx context.Context, accountID, issuerKeyID string) ([]byte, time.Time, error) {
	ca, err := s.CA(ctx, accountID)
	if errors.Is(err, ErrCANotFound) {
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
			return nil, time.Time{}, errNoSuchIssuer
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
		return nil, time.Time{}, ErrCANotFound
	}
	if issuerKeyID != "" && !isHex(issuerKeyID) {
		return nil, time.Time{}, ErrCANotFound
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
	var crls []FinalCRL
	for i, issuer := range ca.Issuers() {
		next := now.Add(CRLLifetime)
		for _, c := range certs {
			if c.NotAfter.After(next) && issuedBy(c, issuer) {
				next = c.NotAfter
			}
		}
		der, err := signCRL(ca, issuer, certs, now, next)
		if err != nil {
			return err
		}
		crls = append(crls, FinalCRL{IssuerKeyID: hex.EncodeToString(issuer.SubjectKeyId), Current: i == 0, DER: der, NextUpdate: next})
	}
	return s.final.Put(ctx, accountID, crls)
}

// issuedBy tells whether issuer signed c, by key id.
func issuedBy(c Certificate, issuer *x509.Certificate) bool {
	cert, err := x509.ParseCertificate(c.DER)
	return err == nil && bytes.Equal(cert.AuthorityKeyId, issuer.SubjectKeyId)
}

// signCRL signs issuer's CRL, listing those of certs it issued that are
// revoked and not expired at now.
func signCRL(ca *pki.CA, issuer *x509.Certificate, certs []Certificate, now, next time.Time) ([]byte, error) {
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
