package app

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/ca/internal/domain"
)

// Apps keeps the applications' certificate configurations. Lookup may
// answer from the cache; Fresh reads the store.
type Apps interface {
	Lookup(ctx context.Context, accountID, appID string) (domain.AppConfig, bool, error)
	Fresh(ctx context.Context, accountID, appID string) (domain.AppConfig, bool, error)
	Put(ctx context.Context, a domain.AppConfig) error
	Remove(ctx context.Context, accountID, appID string) error
	RemoveAccount(ctx context.Context, accountID string) error
}

// Domains is the approved-domain allowlist.
type Domains interface {
	Lookup(ctx context.Context, accountID, appID, domain string) (domain.ApprovedDomain, bool, error)
	Fresh(ctx context.Context, accountID, appID, domain string) (domain.ApprovedDomain, bool, error)
	Put(ctx context.Context, accountID string, d domain.ApprovedDomain) error
	Remove(ctx context.Context, accountID, appID, domain string) error
	// RemoveApp removes an application's domains; an empty appID, every
	// domain of the account.
	RemoveApp(ctx context.Context, accountID, appID string) error
}

// Images is the CA's image allowlist, by application and MRENCLAVE.
type Images interface {
	Lookup(ctx context.Context, accountID, appID string, mrenclave []byte) (domain.ApprovedImage, bool, error)
	Fresh(ctx context.Context, accountID, appID string, mrenclave []byte) (domain.ApprovedImage, bool, error)
	Put(ctx context.Context, accountID string, img domain.ApprovedImage) error
	Remove(ctx context.Context, accountID, appID string, mrenclave []byte) error
	// RemoveWhere removes the account's entries (of one application, or
	// all when appID is empty) for which drop is true.
	RemoveWhere(ctx context.Context, accountID, appID string, drop func(domain.ApprovedImage) bool) error
}

// Withdrawals remembers withdrawn and denied tasks, so that an approval
// delivered after them changes nothing (allowlist.Ledger).
type Withdrawals interface {
	Withdraw(ctx context.Context, key string) error
	Apply(ctx context.Context, key string, put, remove func(context.Context) error) error
}

// Nonces hands out single-use nonces, and remember what each was used for
// until it expires: the same request, sent again after its answer was
// lost, is given the certificate it was issued.
type Nonces interface {
	Create(ctx context.Context, accountID string, nonce []byte, expires time.Time) error
	// Consume marks the nonce used by the request whose REPORTDATA binds
	// binding, and returns the claim; ErrNonceUnknown when it was never
	// issued or has gone; a *NonceUsedError when a request used it
	// already.
	Consume(ctx context.Context, accountID string, nonce []byte, binding [32]byte) (NonceClaim, error)
	// Issued records the certificate issued for the claim's request.
	Issued(ctx context.Context, claim NonceClaim, serial string) error
	// Use reads what the nonce was used for (ErrNonceUnknown if it was not).
	Use(ctx context.Context, accountID string, nonce []byte) (NonceUse, error)
}

// ErrNonceUnknown is returned by Nonces.
var ErrNonceUnknown = errors.New("nonce unknown")

// NonceUse is what a used nonce was used for: the binding of the request
// that used it, and the serial of the certificate it was issued ("" until
// it is recorded).
type NonceUse struct {
	Binding [32]byte
	Serial  string
}

// NonceClaim is a nonce a request has just used: when it expires, and
// what Nonces.Issued needs to record its certificate without reading the
// nonce again.
type NonceClaim struct {
	Expires time.Time
	// Key is the nonce's key in the store, Version the version Consume
	// wrote, Binding the request's.
	Key     string
	Version uint64
	Binding [32]byte
}

// NonceUsedError is returned by Nonces.Consume for a nonce used already.
type NonceUsedError struct{ Use NonceUse }

func (e *NonceUsedError) Error() string { return "nonce used" }

// issuedWait is how long a request whose nonce its own earlier sending is
// using waits for that one to record its certificate; never past
// answerMargin before the caller's deadline, so that the caller hears the
// refusal (and asks for a new nonce) rather than a timeout it would
// answer by sending the same request again: an earlier sending that died
// after taking the nonce never records one.
const (
	issuedWait   = 10 * time.Second
	answerMargin = 500 * time.Millisecond
)

// Verdicts fetches attestation verdicts; ErrVerdictNotFound when the
// account has no verdict with that id.
type Verdicts interface {
	Get(ctx context.Context, accountID, id string) (domain.Verdict, error)
}

// ErrVerdictNotFound is returned by Verdicts.Get.
var ErrVerdictNotFound = errors.New("verdict not found")

// Lifetimes of application certificates and nonces.
const (
	DefaultAppCertLifetime = 30 * 24 * time.Hour
	// NonceLifetime bounds the time from a nonce to the issuance that
	// uses it; a verdict older than this is not accepted either.
	NonceLifetime = 10 * time.Minute
)

// refuse returns a domain.Refusal as an error of the kind its check calls for:
// a malformed CSR is the caller's mistake, everything else a denial.
func refuse(check, format string, args ...any) error {
	r := &domain.Refusal{Check: check, Detail: fmt.Sprintf(format, args...)}
	kind := errs.PermissionDenied
	if check == "csr" {
		kind = errs.Invalid
	}
	return errs.New(kind, r.Error())
}

// AppRequest asks for an application certificate.
type AppRequest struct {
	AccountID, AppID, VerdictID, NodeID string
	CSR                                 []byte
	// RecipientKey is the enclave's X25519 key its secrets are sealed to,
	// bound in REPORTDATA with the CSR's key (enclave.KeyBinding); nil for
	// an enclave that takes none.
	RecipientKey []byte
}

// CreateNonce returns a fresh nonce for an enclave's REPORTDATA.
func (s *Service) CreateNonce(ctx context.Context, accountID string) ([]byte, time.Time, error) {
	if uuid.Validate(accountID) != nil {
		return nil, time.Time{}, domain.ErrCANotFound
	}
	if _, err := s.store.Get(ctx, accountID); err != nil {
		return nil, time.Time{}, err
	}
	nonce := make([]byte, 32)
	if _, err := randRead(nonce); err != nil {
		return nil, time.Time{}, err
	}
	expires := s.clock().Add(NonceLifetime).UTC()
	if err := s.issuance.Nonces.Create(ctx, accountID, nonce, expires); err != nil {
		return nil, time.Time{}, err
	}
	return nonce, expires, nil
}

// IssueAppCertificate issues an application's TLS certificate, only if
// every check passes: the application is known and has the CA as issuer;
// the CSR is well formed with the configured key type; the verdict is the
// attestation service's, of this account, succeeded, recent, and for an
// image that is approved now for this application; the enclave's
// REPORTDATA binds SHA-256 of the CSR's key and a nonce from CreateNonce
// that nobody used; every name is an approved domain of the application.
// The nonce is consumed last, so a refusal for another reason does not
// burn it, and two requests racing with one nonce get one certificate.
func (s *Service) IssueAppCertificate(ctx context.Context, r AppRequest) (domain.Certificate, *pki.CA, error) {
	for _, id := range []struct{ name, v string }{{"account_id", r.AccountID}, {"app_id", r.AppID}, {"verdict_id", r.VerdictID}} {
		if uuid.Validate(id.v) != nil {
			return domain.Certificate{}, nil, errs.Newf(errs.Invalid, "%s must be an id", id.name)
		}
	}
	if r.NodeID != "" && uuid.Validate(r.NodeID) != nil {
		return domain.Certificate{}, nil, errs.New(errs.Invalid, "node_id must be a node's id")
	}
	if r.RecipientKey != nil && len(r.RecipientKey) != enclave.RecipientKeySize {
		return domain.Certificate{}, nil, errs.Newf(errs.Invalid, "recipient_key must be an X25519 public key of %d bytes", enclave.RecipientKeySize)
	}
	ca, err := s.openCA(ctx, r.AccountID)
	if err != nil {
		return domain.Certificate{}, nil, err
	}
	app, found, err := s.issuance.Apps.Lookup(ctx, r.AccountID, r.AppID)
	if err != nil {
		return domain.Certificate{}, nil, err
	}
	if !found {
		return domain.Certificate{}, nil, refuse("app", "application %s is not known to the CA", r.AppID)
	}
	v, err := s.issuance.Verdicts.Get(ctx, r.AccountID, r.VerdictID)
	if errors.Is(err, ErrVerdictNotFound) || err == nil && (v.AccountID != r.AccountID || v.ID != r.VerdictID) {
		return domain.Certificate{}, nil, refuse("verdict", "the account has no attestation verdict %s (verdicts are kept an hour)", r.VerdictID)
	}
	if err != nil {
		return domain.Certificate{}, nil, err
	}
	csr, err := Decide(app, v, r.CSR, r.RecipientKey, s.clock())
	if err != nil {
		return domain.Certificate{}, nil, err
	}
	if err := s.approved(ctx, r.AccountID, r.AppID, v, csr.DNSNames, false); err != nil {
		return domain.Certificate{}, nil, err
	}
	nonce, binding := v.ReportData[32:], [32]byte(v.ReportData[:32])
	claim, err := s.issuance.Nonces.Consume(ctx, r.AccountID, nonce, binding)
	if used := (*NonceUsedError)(nil); errors.As(err, &used) && used.Use.Binding == binding {
		// This request was sent before: its answer was lost.
		return s.issuedBefore(ctx, r, nonce, used.Use)
	}
	if errors.Is(err, ErrNonceUnknown) || errors.As(err, new(*NonceUsedError)) || err == nil && !s.clock().Before(claim.Expires) {
		return domain.Certificate{}, nil, refuse("nonce", "the nonce in REPORTDATA was not issued by this CA, has expired, or was used already")
	}
	if err != nil {
		return domain.Certificate{}, nil, err
	}
	lifetime := app.Lifetime
	if lifetime == 0 {
		lifetime = DefaultAppCertLifetime
	}
	ocsp, crl := s.revocationURLs(r.AccountID, ca)
	cert, err := ca.Issue(pki.Leaf{CSR: csr, Lifetime: lifetime, OCSPURL: ocsp, CRLURL: crl, Attestation: pki.Attestation{
		MRENCLAVE: v.MRENCLAVE, MRSIGNER: v.MRSIGNER, ISVProdID: int(v.ISVProdID), ISVSVN: int(v.ISVSVN),
		TCBStatus: v.TCBStatus, Simulated: v.Simulated, Debug: v.Debug,
	}}, s.clock())
	if err != nil {
		return domain.Certificate{}, nil, err
	}
	rec := domain.Certificate{Serial: cert.Serial.Text(16), AccountID: r.AccountID, Kind: "app", SubjectID: r.AppID,
		DNSNames: csr.DNSNames, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.DER,
		NodeID: r.NodeID, ImageID: v.ImageID, MRENCLAVE: v.MRENCLAVE, VerdictID: v.ID, RecipientKey: r.RecipientKey}
	issued := domain.Issued{Certificate: rec, Audit: audit.Entry{AccountID: r.AccountID, Actor: audit.Actor{Credential: audit.CredentialNode, CredentialID: r.NodeID},
		Action: actionIssue, Target: rec.Serial, Cause: "an enclave of application " + r.AppID + " (image " + v.ImageID + ") attested"}}
	if err := s.certs.Create(ctx, rec, issued); err != nil {
		return domain.Certificate{}, nil, err
	}
	if err := s.issuance.Nonces.Issued(ctx, claim, rec.Serial); err != nil {
		return domain.Certificate{}, nil, err
	}
	if err := s.stillOpen(ctx, rec); err != nil {
		return domain.Certificate{}, nil, err
	}
	// An approval withdrawn while this request was under way has had its
	// revocation sweep, which could not see this certificate: check again,
	// from the stores rather than the cache, now that it is recorded, and
	// revoke it if its grounds went away.
	if err := s.approved(ctx, r.AccountID, r.AppID, v, csr.DNSNames, true); err != nil {
		if _, rerr := s.Revoke(ctx, r.AccountID, rec.Serial, "approval withdrawn during issuance", nil); rerr != nil {
			return domain.Certificate{}, nil, errors.Join(err, rerr)
		}
		return domain.Certificate{}, nil, err
	}
	return rec, ca, nil
}

// issuedBefore answers a request sent again (the same nonce, the same key
// bound to it) with the certificate its first sending was issued, once
// that is recorded; a certificate since revoked, or of another
// application, is refused as a used nonce is.
func (s *Service) issuedBefore(ctx context.Context, r AppRequest, nonce []byte, use NonceUse) (domain.Certificate, *pki.CA, error) {
	usedAgain := refuse("nonce", "the nonce in REPORTDATA was not issued by this CA, has expired, or was used already")
	deadline := time.Now().Add(issuedWait)
	if d, ok := ctx.Deadline(); ok && d.Add(-answerMargin).Before(deadline) {
		deadline = d.Add(-answerMargin)
	}
	for use.Serial == "" {
		if time.Now().After(deadline) {
			return domain.Certificate{}, nil, usedAgain
		}
		select {
		case <-ctx.Done():
			return domain.Certificate{}, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		var err error
		if use, err = s.issuance.Nonces.Use(ctx, r.AccountID, nonce); err != nil {
			return domain.Certificate{}, nil, err
		}
	}
	rec, err := s.certs.Get(ctx, r.AccountID, use.Serial)
	if err != nil {
		return domain.Certificate{}, nil, err
	}
	if rec.Revoked || rec.Kind != "app" || rec.SubjectID != r.AppID {
		return domain.Certificate{}, nil, usedAgain
	}
	ca, err := s.openCA(ctx, r.AccountID)
	if err != nil {
		return domain.Certificate{}, nil, err
	}
	return rec, ca, nil
}

// approved checks that the application still takes certificates from the
// CA with the same key type, that the attested measurement is an approved
// image of it, and that every name is an approved domain of it; fresh
// reads the stores, bypassing the cache.
func (s *Service) approved(ctx context.Context, accountID, appID string, v domain.Verdict, names []string, fresh bool) error {
	apps, images, domains := s.issuance.Apps.Lookup, s.issuance.Images.Lookup, s.issuance.Domains.Lookup
	if fresh {
		apps, images, domains = s.issuance.Apps.Fresh, s.issuance.Images.Fresh, s.issuance.Domains.Fresh
	}
	if app, found, err := apps(ctx, accountID, appID); err != nil {
		return err
	} else if !found || app.Issuer != "cloister" {
		return refuse("app", "application %s no longer takes certificates from the account CA", appID)
	}
	img, found, err := images(ctx, accountID, appID, v.MRENCLAVE)
	if err != nil {
		return err
	}
	if !found || !bytes.Equal(img.MRSIGNER, v.MRSIGNER) {
		return refuse("image", "MRENCLAVE %x signed by MRSIGNER %x is not an approved image of application %s", v.MRENCLAVE, v.MRSIGNER, appID)
	}
	for _, name := range names {
		if _, ok, err := domains(ctx, accountID, appID, name); err != nil {
			return err
		} else if !ok {
			return refuse("domain", "%q is not an approved domain of application %s", name, appID)
		}
	}
	return nil
}

// Decide runs the checks of an issuance that need no lookups: the
// application's configuration, the CSR and its key, the verdict and the
// key binding of the CSR's key and the recipient key (nil if none). It
// returns the checked CSR.
func Decide(app domain.AppConfig, v domain.Verdict, csrBytes, recipient []byte, now time.Time) (*pki.CSR, error) {
	if app.Issuer != "cloister" {
		return nil, refuse("app", "application %s does not take its certificates from the account CA (issuer %q)", app.AppID, app.Issuer)
	}
	csr, err := pki.CheckCSR(csrBytes, app.KeyType)
	if ce := (*pki.CSRError)(nil); errors.As(err, &ce) {
		if ce.Check == "key" {
			return nil, refuse("key", "%s", ce.Detail)
		}
		return nil, refuse("csr", "%s: %s", ce.Check, ce.Detail)
	} else if err != nil {
		return nil, err
	}
	switch {
	case !v.OK:
		return nil, refuse("verdict", "attestation %s failed (%s)", v.ID, v.Reason)
	case v.Debug && !app.Debug:
		return nil, refuse("verdict", "the enclave runs in debug mode, where the host can read its memory, and application %s is not a debug build", app.AppID)
	case now.Sub(v.VerifiedAt) > NonceLifetime:
		return nil, refuse("verdict", "attestation %s is older than %s; attest again", v.ID, NonceLifetime)
	case v.AppID != app.AppID:
		return nil, refuse("image", "MRENCLAVE %x is not an approved image of application %s", v.MRENCLAVE, app.AppID)
	case len(v.ReportData) != 64:
		return nil, refuse("binding", "the verdict carries no REPORTDATA")
	}
	if want := enclave.KeyBinding(csr.KeyHash, recipient); subtle.ConstantTimeCompare(v.ReportData[:32], want[:]) != 1 {
		if recipient != nil {
			return nil, refuse("binding", "the CSR's public key and the recipient key (binding %x) are not what the enclave's REPORTDATA binds (%x)",
				want, v.ReportData[:32])
		}
		return nil, refuse("binding", "SHA-256 of the CSR's public key (%x) is not the key binding in the enclave's REPORTDATA (%x)",
			csr.KeyHash, v.ReportData[:32])
	}
	return csr, nil
}

// RevokeWhere revokes the account's live certificates for which match is
// true, announcing each, and returns how many it revoked.
func (s *Service) RevokeWhere(ctx context.Context, accountID, reason string, match func(domain.Certificate) bool) (int, error) {
	certs, err := s.Certificates(ctx, accountID, "", false)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range certs {
		if !match(c) {
			continue
		}
		if _, err := s.Revoke(ctx, accountID, c.Serial, reason, nil); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// PutApp records an application's certificate configuration (AppCreated,
// AppUpdated). A configuration the CA cannot use removes the application
// instead, so that issuance fails closed rather than on the old settings.
func (s *Service) PutApp(ctx context.Context, a domain.AppConfig) error {
	if uuid.Validate(a.AccountID) != nil || uuid.Validate(a.AppID) != nil {
		return errs.New(errs.Invalid, "an application needs an account and an id")
	}
	if _, err := pki.ParseKeyType(string(a.KeyType)); err != nil && a.Issuer == "cloister" {
		return s.issuance.Apps.Remove(ctx, a.AccountID, a.AppID)
	}
	return s.issuance.Apps.Put(ctx, a)
}

// DeleteApp forgets a deleted application, its images and domains, and
// revokes its certificates.
func (s *Service) DeleteApp(ctx context.Context, accountID, appID string) error {
	if uuid.Validate(accountID) != nil || uuid.Validate(appID) != nil {
		return nil
	}
	if err := s.issuance.Apps.Remove(ctx, accountID, appID); err != nil {
		return err
	}
	if err := s.issuance.Images.RemoveWhere(ctx, accountID, appID, func(domain.ApprovedImage) bool { return true }); err != nil {
		return err
	}
	if err := s.issuance.Domains.RemoveApp(ctx, accountID, appID); err != nil {
		return err
	}
	_, err := s.RevokeWhere(ctx, accountID, "application deleted", func(c domain.Certificate) bool {
		return c.Kind == "app" && c.SubjectID == appID
	})
	return err
}

// taskKey names a task in the ledger of withdrawals.
func taskKey(accountID, taskID string) string { return accountID + "." + taskID }

func checkTask(accountID, appID, taskID string) error {
	if uuid.Validate(accountID) != nil || uuid.Validate(appID) != nil || uuid.Validate(taskID) != nil {
		return errs.New(errs.Invalid, "a task needs an account, an application and an id")
	}
	return nil
}

// ApproveDomain puts a domain on the allowlist (a domain task approved),
// unless the task was withdrawn or denied meanwhile.
func (s *Service) ApproveDomain(ctx context.Context, accountID string, d domain.ApprovedDomain) error {
	if err := checkTask(accountID, d.AppID, d.TaskID); err != nil {
		return err
	}
	if err := pki.CheckDNSName(d.Domain); err != nil {
		return errs.New(errs.Invalid, err.Error())
	}
	return s.issuance.Withdrawals.Apply(ctx, taskKey(accountID, d.TaskID),
		func(ctx context.Context) error { return s.issuance.Domains.Put(ctx, accountID, d) },
		func(ctx context.Context) error { return s.removeDomainOf(ctx, accountID, d) })
}

// WithdrawDomain takes a domain off the allowlist for good, if the
// withdrawn task is what put it there, and revokes the certificates of
// the application that name it.
func (s *Service) WithdrawDomain(ctx context.Context, accountID string, d domain.ApprovedDomain) error {
	if err := checkTask(accountID, d.AppID, d.TaskID); err != nil {
		return err
	}
	if err := s.issuance.Withdrawals.Withdraw(ctx, taskKey(accountID, d.TaskID)); err != nil {
		return err
	}
	if err := s.removeDomainOf(ctx, accountID, d); err != nil {
		return err
	}
	_, err := s.RevokeWhere(ctx, accountID, "domain approval withdrawn", func(c domain.Certificate) bool {
		return c.Kind == "app" && c.SubjectID == d.AppID && slices.ContainsFunc(c.DNSNames, func(n string) bool { return strings.EqualFold(n, d.Domain) })
	})
	return err
}

func (s *Service) removeDomainOf(ctx context.Context, accountID string, d domain.ApprovedDomain) error {
	cur, found, err := s.issuance.Domains.Fresh(ctx, accountID, d.AppID, d.Domain)
	if err != nil || !found || cur.TaskID != d.TaskID {
		return err
	}
	return s.issuance.Domains.Remove(ctx, accountID, d.AppID, d.Domain)
}

// ApproveImage puts a measurement on the CA's image allowlist (an image
// task approved), unless the task was withdrawn or denied meanwhile.
func (s *Service) ApproveImage(ctx context.Context, accountID string, img domain.ApprovedImage) error {
	if err := checkTask(accountID, img.AppID, img.TaskID); err != nil {
		return err
	}
	if len(img.MRENCLAVE) != 32 || len(img.MRSIGNER) != 32 {
		return errs.New(errs.Invalid, "an approved image needs a 32-byte MRENCLAVE and MRSIGNER")
	}
	return s.issuance.Withdrawals.Apply(ctx, taskKey(accountID, img.TaskID),
		func(ctx context.Context) error { return s.issuance.Images.Put(ctx, accountID, img) },
		func(ctx context.Context) error { return s.removeImageOf(ctx, accountID, img) })
}

// WithdrawImage takes an image off the allowlist for good and revokes the
// certificates issued on its measurement.
func (s *Service) WithdrawImage(ctx context.Context, accountID string, img domain.ApprovedImage) error {
	if err := checkTask(accountID, img.AppID, img.TaskID); err != nil {
		return err
	}
	if err := s.issuance.Withdrawals.Withdraw(ctx, taskKey(accountID, img.TaskID)); err != nil {
		return err
	}
	if err := s.removeImageOf(ctx, accountID, img); err != nil {
		return err
	}
	return s.revokeImage(ctx, accountID, img.AppID, "", img.MRENCLAVE, "image approval withdrawn")
}

func (s *Service) removeImageOf(ctx context.Context, accountID string, img domain.ApprovedImage) error {
	return s.issuance.Images.RemoveWhere(ctx, accountID, img.AppID, func(cur domain.ApprovedImage) bool {
		return cur.TaskID == img.TaskID
	})
}

// DenyTask records a denied task, so that a stray approval of it later
// changes nothing.
func (s *Service) DenyTask(ctx context.Context, accountID, taskID string) error {
	if uuid.Validate(accountID) != nil || uuid.Validate(taskID) != nil {
		return errs.New(errs.Invalid, "a task needs an account and an id")
	}
	return s.issuance.Withdrawals.Withdraw(ctx, taskKey(accountID, taskID))
}

// DeleteImage forgets a deleted image and revokes the certificates issued
// on it.
func (s *Service) DeleteImage(ctx context.Context, accountID, appID, imageID string, mrenclave []byte) error {
	if uuid.Validate(accountID) != nil || uuid.Validate(appID) != nil {
		return nil
	}
	if err := s.issuance.Images.RemoveWhere(ctx, accountID, appID, func(cur domain.ApprovedImage) bool {
		return imageID != "" && cur.ImageID == imageID || len(mrenclave) > 0 && bytes.Equal(cur.MRENCLAVE, mrenclave)
	}); err != nil {
		return err
	}
	return s.revokeImage(ctx, accountID, appID, imageID, mrenclave, "image deleted")
}

// revokeImage revokes the certificates issued on an image: by id, or by
// measurement when mrenclave is given.
func (s *Service) revokeImage(ctx context.Context, accountID, appID, imageID string, mrenclave []byte, reason string) error {
	_, err := s.RevokeWhere(ctx, accountID, reason, func(c domain.Certificate) bool {
		if c.Kind != "app" || c.SubjectID != appID {
			return false
		}
		return imageID != "" && c.ImageID == imageID || len(mrenclave) > 0 && bytes.Equal(c.MRENCLAVE, mrenclave)
	})
	return err
}

// RevokeNode revokes a deregistered node's certificate and those of the
// enclaves it obtained certificates for.
func (s *Service) RevokeNode(ctx context.Context, accountID, nodeID string) error {
	if nodeID == "" {
		return nil
	}
	_, err := s.RevokeWhere(ctx, accountID, "node deregistered", func(c domain.Certificate) bool {
		return c.Kind == "node" && c.SubjectID == nodeID || c.Kind == "app" && c.NodeID == nodeID
	})
	return err
}
