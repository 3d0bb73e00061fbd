// Package app is the CA service's use cases: one CA hierarchy per account,
// created when the account is, and its CRL.
package app

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/ca/internal/domain"
)

// Authorities stores each account's CA in its sealed form.
type Authorities interface {
	// Create stores a new CA; domain.ErrCAExists if the account has one.
	Create(ctx context.Context, accountID string, sealed []byte, ev domain.Initialized) error
	Get(ctx context.Context, accountID string) ([]byte, error) // domain.ErrCANotFound
	// Update replaces the sealed CA by what change makes of it, if nobody
	// changed it meanwhile (domain.ErrConcurrentChange otherwise).
	Update(ctx context.Context, accountID string, change func(sealed []byte) ([]byte, domain.Event, error)) error
	Delete(ctx context.Context, accountID string) error
}

// FinalCRLs keeps the final CRLs of deleted accounts.
type FinalCRLs interface {
	// Put replaces the account's final CRLs by crls, but for those of
	// issuers retired early, which it keeps.
	Put(ctx context.Context, accountID string, crls []domain.FinalCRL) error
	// Add stores the final CRL of one issuer retired early.
	Add(ctx context.Context, accountID string, crl domain.FinalCRL) error
	// Get returns the final CRL of one issuing CA (by lower-case hex key
	// id; empty for the one current at deletion); domain.ErrCANotFound if none.
	Get(ctx context.Context, accountID, issuerKeyID string) (domain.FinalCRL, error)
	// MarkClosing records that the account's CA is being deleted (again
	// is not an error); Closing tells whether it is.
	MarkClosing(ctx context.Context, accountID string) error
	Closing(ctx context.Context, accountID string) (bool, error)
}

// AuditLog records calls that failed; successes travel with their change.
type AuditLog interface {
	Record(ctx context.Context, e audit.Entry) error
}

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
