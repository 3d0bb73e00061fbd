// Package domain holds the CA service's own entities, events and errors:
// the certificates it records, the allowlists it keeps from other
// services' events, the verdicts it reads, and its refusals. The
// authorities themselves are libs/pki's.
package domain

import (
	"time"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/pki"
)

// Errors of the CA service.
var (
	ErrCANotFound       = errs.Define(errs.NotFound, "ca_not_found", "the account has no CA")
	ErrCAExists         = errs.Define(errs.Conflict, "ca_exists", "the account has a CA already")
	ErrConcurrentChange = errs.Define(errs.Conflict, "concurrent_change", "changed by another request; retry")
)

// Event is a fact the CA service publishes, with the change that causes
// it (sealed: only this package's types are events).
type Event interface{ isEvent() }

func (Initialized) isEvent()   {}
func (Issued) isEvent()        {}
func (Revoked) isEvent()       {}
func (IssuerRotated) isEvent() {}
func (IssuerRetired) isEvent() {}

// Initialized is announced when an account's CA is created.
type Initialized struct{ AccountID, RootSHA256 string }

// FinalCRL is the last CRL of one issuing CA of a deleted account, signed
// before the CA's keys went, so relying parties that still trust the CA
// keep learning that its certificates were revoked.
type FinalCRL struct {
	IssuerKeyID string // hex, lower case
	Current     bool   // the issuing CA was the current one at deletion
	// RetiredEarly: stored when the issuer was retired for good while the
	// account lived (RetireIssuer); kept when the account's CA goes.
	RetiredEarly bool
	DER          []byte
	NextUpdate   time.Time
}

// Events of issuance and revocation. A revocation someone asked for
// carries its audit record, committed with it.
type (
	Issued struct {
		Certificate Certificate
		Audit       audit.Entry
	}
	Revoked struct {
		Certificate Certificate
		Audit       *audit.Entry
	}
	// IssuerRotated is announced when an account's issuing CA is replaced.
	IssuerRotated struct {
		AccountID, IssuerSHA256, RetiredSHA256 string
		Audit                                  audit.Entry
	}
	// IssuerRetired is announced when a retired issuing CA is dropped for
	// good, Revoked certificates revoked with it.
	IssuerRetired struct {
		AccountID, RetiredSHA256 string
		Revoked                  int
		Audit                    audit.Entry
	}
)

var ErrCertificateNotFound = errs.Define(errs.NotFound, "certificate_not_found", "certificate not found")

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
	// RecipientKey is the X25519 key the enclave's secrets are sealed to,
	// bound with the certificate's key in its REPORTDATA.
	RecipientKey []byte `json:",omitempty"`
	Version      uint64
}

// AppConfig is what the CA keeps of an application, from its events: the
// certificate configuration its enclaves' CSRs are held to.
type AppConfig struct {
	AccountID string      `json:"account_id"`
	AppID     string      `json:"app_id"`
	Domain    string      `json:"domain"`
	Issuer    string      `json:"issuer"` // "cloister" or "none"
	KeyType   pki.KeyType `json:"key_type"`
	// Lifetime of issued certificates; 0 means DefaultAppCertLifetime.
	Lifetime time.Duration `json:"lifetime"`
	// Debug builds may be attested in debug mode.
	Debug bool `json:"debug"`
}

// ApprovedImage is an entry of the CA's own image allowlist: a
// measurement approved for an application. The attestation service keeps
// the same list; the CA keeps its own so that a withdrawal it has seen
// stops issuance at once, whatever the attestation service's pace.
type ApprovedImage struct {
	AppID     string `json:"app_id"`
	ImageID   string `json:"image_id"`
	MRENCLAVE []byte `json:"mrenclave"`
	MRSIGNER  []byte `json:"mrsigner"`
	TaskID    string `json:"task_id"`
}

// ApprovedDomain is an entry of the domain allowlist: a DNS name an
// application may serve, approved by a task.
type ApprovedDomain struct {
	AppID  string `json:"app_id"`
	Domain string `json:"domain"`
	TaskID string `json:"task_id"`
}

// Verdict is what the CA reads of an attestation verdict, fetched by id
// from the attestation service.
type Verdict struct {
	ID         string
	AccountID  string
	OK         bool
	Reason     string
	AppID      string // the approved image's application, now
	ImageID    string
	MRENCLAVE  []byte
	MRSIGNER   []byte
	ISVProdID  uint32
	ISVSVN     uint32
	TCBStatus  string
	Debug      bool
	Simulated  bool
	ReportData []byte
	VerifiedAt time.Time
}

// Refusal is an issuance refused by one of its checks. Check names the
// check: app, csr, key, verdict, image, binding, domain or nonce.
type Refusal struct{ Check, Detail string }

func (r *Refusal) Error() string {
	return "certificate refused by the " + r.Check + " check: " + r.Detail
}
