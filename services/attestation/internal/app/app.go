// Package app is the attestation service's use cases: verifying evidence
// for an account under its policy, keeping policies and Intel collateral.
package app

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/cache/local"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/libs/tee"
	"github.com/cloister-cc/cloister/services/attestation/internal/domain"
)

// Policies stores each account's policy.
type Policies interface {
	Get(ctx context.Context, accountID string) (domain.Policy, error) // domain.ErrPolicyNotFound
	// Put stores p if the stored version is still p.Version (0: none yet).
	Put(ctx context.Context, accountID string, p domain.Policy, evs ...domain.Event) (domain.Policy, error)
}

// Collaterals stores Intel collateral by platform: FMSPC and the kind of
// PCK CA ("processor" or "platform"), whose CRLs differ.
type Collaterals interface {
	Get(ctx context.Context, fmspc [6]byte, ca string) (domain.Collateral, error) // domain.ErrCollateralNotFound
	// Put stores c unless what is stored is newer (decided by newer), atomically.
	Put(ctx context.Context, fmspc [6]byte, ca string, c domain.Collateral, newer func(stored domain.Collateral) error) error
}

// Activity counts verdicts by account and hour, for the accounts'
// overviews.
type Activity interface {
	// Record counts v; it does not fail (counts are written later).
	Record(v domain.Verdict)
	// Hours returns the account's hours that start at or after since,
	// oldest first.
	Hours(ctx context.Context, accountID string, since time.Time) ([]domain.ActivityHour, error)
}

// Verdicts stores verdicts, so that the CA can be given a verdict's id and
// never has to trust a verdict a caller asserts.
type Verdicts interface {
	Create(ctx context.Context, v domain.Verdict, evs ...domain.Event) error
	Get(ctx context.Context, accountID, id string) (domain.Verdict, error)
}

// Images is the account's approved-image allowlist, by MRENCLAVE.
type Images interface {
	Lookup(ctx context.Context, accountID string, mrenclave [32]byte) (domain.ApprovedImage, bool, error)
	Put(ctx context.Context, accountID string, img domain.ApprovedImage) error
	Remove(ctx context.Context, accountID string, mrenclave [32]byte) error
	// RemoveWhere removes the account's entries for which drop is true.
	RemoveWhere(ctx context.Context, accountID string, drop func(domain.ApprovedImage) bool) error
}

// Withdrawals remembers withdrawn tasks, so that an approval delivered
// after its withdrawal changes nothing (allowlist.Ledger).
type Withdrawals interface {
	Withdraw(ctx context.Context, key string) error
	Apply(ctx context.Context, key string, put, remove func(context.Context) error) error
}

// AuditLog records calls that failed; successes travel with their change.
type AuditLog interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Fetcher gets collateral for a platform from Intel's PCS or a PCCS; ca is
// "processor" or "platform", the PCK CA of the platform's certificate,
// prefixed "tdx-" for a TDX platform's TDX collateral.
type Fetcher interface {
	Fetch(ctx context.Context, fmspc [6]byte, ca string) (*sgx.Collateral, error)
}

// Simulation is the deployment's simulated quoting infrastructure: its
// root key, and collateral for its simulated platforms.
type Simulation interface {
	RootKey() *ecdsa.PublicKey
	// Collateral is the SGX collateral of the simulated platform, or its
	// TDX collateral for teeName "tdx".
	Collateral(teeName string, fmspc [6]byte, now time.Time) (*sgx.Collateral, error)
	// NewQE makes a QE bound to the account: only its evidence is
	// accepted from it.
	NewQE(now time.Time, accountID string) (*sim.QE, error)
}

// SNP verifies AMD SEV-SNP reports (libs/snp, behind an adapter: it
// depends on protobuf, which the inner layers do not) with the VCEK, or
// the certificate table, aux; then checks them against p. What a verified
// report proves is returned even when p refuses it. An error is a
// *tee.Error naming what failed.
type SNP interface {
	Verify(ctx context.Context, report, aux []byte, at time.Time, p domain.SNPPolicy) (domain.SNPEvidence, error)
	// PutVCEK checks a VCEK (DER or PEM) at at and keeps it for the
	// reports of its chip and TCB that come without one.
	PutVCEK(ctx context.Context, vcek []byte, at time.Time) (domain.VCEK, error)
}

// Evidence is what a TEE presents: an SGX or TDX quote (TEE "", "sgx" or
// "tdx": the quote's header tells which), or an SEV-SNP report (TEE
// "sev-snp") with its VCEK or certificate table in Aux.
type Evidence struct {
	TEE   string
	Quote []byte
	Aux   []byte
}

// Config holds the service's dependencies.
type Config struct {
	Policies    Policies
	Collaterals Collaterals
	Verdicts    Verdicts
	Activity    Activity
	Images      Images
	Withdrawals Withdrawals
	Audit       AuditLog
	// Fetcher, when set, fetches collateral that is missing or past its
	// nextUpdate; fetched collateral is checked and stored like uploads.
	Fetcher Fetcher
	// Simulation, when set, lets accounts whose policy allows it present
	// simulated evidence.
	Simulation Simulation
	// SNP, when set, verifies SEV-SNP evidence; without it such evidence
	// is refused as unsupported.
	SNP SNP
	// IntelRoot and IntelOptions override the pinned Intel SGX Root CA key
	// and Intel's names (tests only).
	IntelRoot    *ecdsa.PublicKey
	IntelOptions []sgx.VerifierOption
	Clock        func() time.Time
	// AcceptUnboundEvidence skips the check of REPORTDATA's binding and
	// nonce (tests replaying recorded hardware evidence only).
	AcceptUnboundEvidence bool
	// ReadTTL is how long verifications use what a replica read of an
	// account's policy or a platform's collateral before reading it again
	// (0: DefaultReadTTL). A change made through this replica applies to
	// its next verification; one made through another replica applies
	// when its PolicyChanged event arrives (DropPolicy), and collateral
	// within ReadTTL.
	ReadTTL time.Duration
}

// DefaultReadTTL is ReadTTL's default: reading both from KV for every
// verification was a third of its cost.
const DefaultReadTTL = 2 * time.Second

// Service verifies evidence and keeps policies and collateral.
type Service struct {
	cfg   Config
	intel *sgx.Verifier
	sim   *sgx.Verifier
	// What verifications read, kept for ReadTTL (by wall time, whatever
	// the verification clock): policies by account, collateral by
	// platform (platformKey).
	policies    *local.Map[domain.Policy]
	collaterals *local.Map[domain.Collateral]

	fetches       singleflight.Group
	mu            sync.Mutex
	failedFetches map[string]failedFetch
}

// New returns the service.
func New(cfg Config) (*Service, error) {
	if cfg.Policies == nil || cfg.Collaterals == nil || cfg.Verdicts == nil || cfg.Activity == nil || cfg.Images == nil || cfg.Withdrawals == nil || cfg.Audit == nil {
		return nil, errors.New("attestation: the policy, collateral, verdict, activity and image stores and the audit log are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.ReadTTL < 0 {
		return nil, fmt.Errorf("attestation: read TTL %v is negative", cfg.ReadTTL)
	}
	if cfg.ReadTTL == 0 {
		cfg.ReadTTL = DefaultReadTTL
	}
	s := &Service{cfg: cfg, intel: sgx.NewVerifier(cfg.IntelRoot, cfg.IntelOptions...), failedFetches: map[string]failedFetch{},
		policies: local.New[domain.Policy](cfg.ReadTTL, 10000), collaterals: local.New[domain.Collateral](cfg.ReadTTL, 1000)}
	if cfg.Simulation != nil {
		s.sim = sgx.NewVerifier(cfg.Simulation.RootKey(), sim.VerifierOptions()...)
	}
	return s, nil
}

// MaxEvidenceSize bounds the evidence accepted, and what comes with it.
const MaxEvidenceSize = sgx.MaxQuoteSize

// Verify checks evidence for an account under the account's policy and
// records the verdict, which it returns whether or not the evidence
// passed. With appID set, the measurement must also be an approved image
// of that application (an enclave's). An error means the request itself
// was wrong or the service could not decide.
func (s *Service) Verify(ctx context.Context, accountID string, e Evidence, binding, nonce []byte, appID string) (domain.Verdict, error) {
	if uuid.Validate(accountID) != nil {
		return domain.Verdict{}, errs.New(errs.Invalid, "account_id must be an account's id")
	}
	if appID != "" && uuid.Validate(appID) != nil {
		return domain.Verdict{}, errs.New(errs.Invalid, "app_id must be an application's id")
	}
	if len(e.Quote) == 0 || len(e.Quote) > MaxEvidenceSize {
		return domain.Verdict{}, errs.Newf(errs.Invalid, "quote must be 1 to %d bytes", MaxEvidenceSize)
	}
	if len(e.Aux) > MaxEvidenceSize {
		return domain.Verdict{}, errs.Newf(errs.Invalid, "evidence_aux must be at most %d bytes", MaxEvidenceSize)
	}
	switch e.TEE {
	case "", tee.SGX, tee.TDX, tee.SEVSNP:
	default:
		return domain.Verdict{}, errs.Newf(errs.Invalid, "tee %q: want sgx, tdx or sev-snp (or none, for a quote)", e.TEE)
	}
	if (len(binding) != 0 || len(nonce) != 0) && (len(binding) != 32 || len(nonce) != 32) {
		return domain.Verdict{}, errs.New(errs.Invalid, "binding and nonce must be 32 bytes each, or both absent")
	}
	now := s.cfg.Clock().UTC()
	v := domain.Verdict{ID: uuid.Must(uuid.NewV7()).String(), AccountID: accountID, VerifiedAt: now}
	if err := s.judge(ctx, &v, e, binding, nonce, appID, now); err != nil {
		return domain.Verdict{}, err
	}
	var ev domain.Event = domain.AttestationFailed{Verdict: v}
	if v.OK {
		ev = domain.AttestationSucceeded{Verdict: v}
	}
	if err := s.cfg.Verdicts.Create(ctx, v, ev); err != nil {
		return domain.Verdict{}, err
	}
	s.cfg.Activity.Record(v)
	return v, nil
}

// ActivityWindow is how far back an account's activity goes: the last
// day, in whole hours.
const ActivityWindow = 24 * time.Hour

// GetActivity returns what the account's attestations came to, hour by
// hour, over the last ActivityWindow.
func (s *Service) GetActivity(ctx context.Context, accountID string) ([]domain.ActivityHour, error) {
	if uuid.Validate(accountID) != nil {
		return nil, errs.New(errs.Invalid, "account_id must be an account's id")
	}
	since := s.cfg.Clock().UTC().Truncate(time.Hour).Add(-ActivityWindow + time.Hour)
	return s.cfg.Activity.Hours(ctx, accountID, since)
}

// judge fills in the verdict; it returns an error only when it cannot
// decide (a store failing), never for bad evidence.
func (s *Service) judge(ctx context.Context, v *domain.Verdict, e Evidence, binding, nonce []byte, appID string, now time.Time) error {
	refuse := func(reason string, err error) error {
		v.OK, v.Reason, v.Error = false, reason, err.Error()
		return nil
	}
	policy, err := s.policyFor(ctx, v.AccountID)
	if err != nil {
		return err
	}
	if e.TEE == tee.SEVSNP {
		return s.judgeSNP(ctx, v, e, policy.SNP, binding, nonce, appID, now, refuse)
	}
	quote := e.Quote
	verifier, ev, simulated, err := s.evidence(quote, now)
	v.Simulated = simulated
	if err != nil {
		return refuse(string(sgx.ReasonOf(err)), err)
	}
	v.TEE = ev.TEE()
	if e.TEE != "" && e.TEE != v.TEE {
		return refuse(string(sgx.ReasonMismatch), fmt.Errorf("the evidence is a %s quote, not %s evidence", v.TEE, e.TEE))
	}
	if v.TEE == tee.TDX && appID != "" {
		return refuse(domain.ReasonImageNotApproved, errors.New("a TD is not an enclave: it cannot be an application's approved image"))
	}
	ext, ca := ev.Platform()
	fmspc := ext.FMSPC
	v.FMSPC = fmspc

	var col *sgx.Collateral
	switch {
	case simulated && !policy.AllowSimulation:
		return refuse(domain.ReasonSimulationNotAllowed, errors.New("the evidence is simulated and the account's policy does not allow simulation"))
	case simulated && simulatedAccount(quote) != v.AccountID:
		return refuse(domain.ReasonSimulationOtherAccount, errors.New("the evidence comes from a simulated quoting enclave issued for another account"))
	case simulated:
		if col, err = s.cfg.Simulation.Collateral(v.TEE, fmspc, now); err != nil {
			return refuse(domain.ReasonSimulationUnavailable, err)
		}
	default:
		col, err = s.collateralFor(ctx, v.TEE, fmspc, ca, now)
		if errors.Is(err, domain.ErrCollateralNotFound) {
			return refuse(domain.ReasonNoCollateral, fmt.Errorf("%s FMSPC %x: %w; upload it or configure a PCS", v.TEE, fmspc, err))
		}
		if err != nil {
			return err
		}
	}
	res, err := verifier.VerifyEvidence(ev, sgx.Options{At: now, Collateral: col})
	if err != nil {
		return refuse(string(sgx.ReasonOf(err)), err)
	}
	v.TCBStatus, v.Advisories = res.Status, res.Advisories
	v.Debug, v.ReportData = res.Debug, res.ReportData
	if td := res.TD; td != nil {
		v.Measurement, v.RTMRs = td.MRTD, td.RTMRs[:]
		if err := policy.TDX.Check(res); err != nil {
			return refuse(string(sgx.ReasonOf(err)), err)
		}
		if !s.bound(v, res.ReportData, binding, nonce) {
			return refuse(domain.ReasonBinding, errors.New("report data is not the expected key binding and nonce"))
		}
		v.OK = true
		return nil
	}
	v.MRENCLAVE, v.MRSIGNER, v.ISVProdID, v.ISVSVN = res.MRENCLAVE, res.MRSIGNER, res.ISVProdID, res.ISVSVN
	if err := policy.SGX().Check(res); err != nil {
		return refuse(string(sgx.ReasonOf(err)), err)
	}
	if !s.bound(v, res.ReportData, binding, nonce) {
		return refuse(domain.ReasonBinding, errors.New("report data is not the expected key binding and nonce"))
	}
	img, approved, err := s.cfg.Images.Lookup(ctx, v.AccountID, v.MRENCLAVE)
	if err != nil {
		return err
	}
	// The same measurement signed by another key is another identity
	// (MRSIGNER, ISVPRODID, ISVSVN come from the SIGSTRUCT): not approved.
	approved = approved && img.MRSIGNER == v.MRSIGNER
	if approved {
		v.AppID, v.ImageID = img.AppID, img.ImageID
	}
	if appID != "" && (!approved || img.AppID != appID) {
		return refuse(domain.ReasonImageNotApproved, fmt.Errorf("MRENCLAVE %x is not an approved image of application %s", v.MRENCLAVE, appID))
	}
	v.OK = true
	return nil
}

// bound reports whether REPORTDATA is binding followed by nonce, or no
// binding was asked for; or, when the service accepts unbound evidence
// (tests replaying recorded evidence), notes in v that it did not check.
func (s *Service) bound(v *domain.Verdict, reportData [64]byte, binding, nonce []byte) bool {
	if len(binding) == 0 || bytes.Equal(reportData[:32], binding) && bytes.Equal(reportData[32:], nonce) {
		return true
	}
	if s.cfg.AcceptUnboundEvidence {
		v.Error = "REPORTDATA not checked: this service accepts unbound evidence (a test replaying recorded evidence)"
		return true
	}
	return false
}

// judgeSNP judges an SEV-SNP report: there is no simulation of it, no
// collateral but the VCEK that comes with it, and no enclave image.
func (s *Service) judgeSNP(ctx context.Context, v *domain.Verdict, e Evidence, p domain.SNPPolicy, binding, nonce []byte, appID string, now time.Time,
	refuse func(string, error) error) error {
	v.TEE = tee.SEVSNP
	switch {
	case s.cfg.SNP == nil:
		return refuse(string(tee.ReasonUnsupported), errors.New("this deployment does not verify SEV-SNP evidence"))
	case appID != "":
		return refuse(domain.ReasonImageNotApproved, errors.New("an SEV-SNP VM is not an enclave: it cannot be an application's approved image"))
	}
	ev, err := s.cfg.SNP.Verify(ctx, e.Quote, e.Aux, now, p)
	v.Measurement, v.HostData, v.ReportData, v.Debug = ev.Measurement, ev.HostData, ev.ReportData, ev.Debug
	if err != nil {
		return refuse(string(tee.ReasonOf(err)), err)
	}
	if !s.bound(v, ev.ReportData, binding, nonce) {
		return refuse(domain.ReasonBinding, errors.New("report data is not the expected key binding and nonce"))
	}
	v.OK = true
	return nil
}

// collateralFor returns the stored collateral of a platform while every
// part of it is current, and otherwise what the fetcher (if any) brings,
// stored for the next verification. If fetching fails, stale collateral is
// still returned: the verifier then names what expired. Fetches are shared
// by concurrent callers and a failure is not retried for fetchBackoff.
func (s *Service) collateralFor(ctx context.Context, teeName string, fmspc [6]byte, ca string, now time.Time) (*sgx.Collateral, error) {
	ca = collateralKind(teeName, ca)
	key := platformKey(fmspc, ca)
	stored, err := s.storedCollateral(ctx, key, fmspc, ca)
	found := err == nil
	if err != nil && !errors.Is(err, domain.ErrCollateralNotFound) {
		return nil, err
	}
	if found && now.Before(stored.Expires) {
		return &stored.Col, nil
	}
	if s.cfg.Fetcher == nil {
		if found {
			return &stored.Col, nil
		}
		return nil, err
	}
	ferr := s.fetchFailedRecently(key, now)
	if ferr == nil {
		_, ferr, _ = s.fetches.Do(key, func() (any, error) {
			// Shared by every waiting caller: not bound to the first one's
			// context, which may end before the others'.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			fetched, err := s.cfg.Fetcher.Fetch(fctx, fmspc, ca)
			if err == nil {
				_, err = s.PutCollateral(fctx, fetched, audit.System)
			}
			if err != nil {
				s.noteFetchFailure(key, now, err)
			}
			return nil, err
		})
	}
	if ferr == nil {
		s.collaterals.Drop(key)
		if c, err := s.storedCollateral(ctx, key, fmspc, ca); err == nil {
			return &c.Col, nil
		}
	}
	if found {
		return &stored.Col, nil
	}
	return nil, fmt.Errorf("%w (fetching it from the PCS: %v)", domain.ErrCollateralNotFound, ferr)
}

// collateralKind is what the collateral of a platform is filed and
// fetched under besides its FMSPC: its PCK CA kind ("processor" or
// "platform"), prefixed "tdx-" for TDX collateral, which a TDX platform
// has beside its SGX collateral, under the same FMSPC.
func collateralKind(teeName, ca string) string {
	if teeName == tee.TDX {
		return "tdx-" + ca
	}
	return ca
}

// platformKey names a platform in the collateral kept and the fetches
// under way.
func platformKey(fmspc [6]byte, ca string) string { return hex.EncodeToString(fmspc[:]) + "/" + ca }

// storedCollateral is the platform's stored collateral, as this replica
// read it at most ReadTTL ago.
func (s *Service) storedCollateral(ctx context.Context, key string, fmspc [6]byte, ca string) (domain.Collateral, error) {
	now := time.Now()
	if c, ok := s.collaterals.Get(key, now); ok {
		return c, nil
	}
	epoch := s.collaterals.Epoch()
	c, err := s.cfg.Collaterals.Get(ctx, fmspc, ca)
	if err == nil {
		s.collaterals.Put(key, c, now, epoch)
	}
	return c, err
}

// policyFor is the account's policy, as this replica read it at most
// ReadTTL ago.
func (s *Service) policyFor(ctx context.Context, accountID string) (domain.Policy, error) {
	now := time.Now()
	if p, ok := s.policies.Get(accountID, now); ok {
		return p, nil
	}
	epoch := s.policies.Epoch()
	p, err := s.GetPolicy(ctx, accountID)
	if err == nil {
		s.policies.Put(accountID, p, now, epoch)
	}
	return p, err
}

// DropPolicy makes the next verification for the account read its policy
// again: the policy changed, through this replica or another.
func (s *Service) DropPolicy(accountID string) { s.policies.Drop(accountID) }

// fetchBackoff is how long a failed fetch for a platform is not repeated.
const fetchBackoff = time.Minute

func (s *Service) fetchFailedRecently(key string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.failedFetches[key]; ok && now.Sub(f.at) < fetchBackoff {
		return f.err
	}
	return nil
}

func (s *Service) noteFetchFailure(key string, now time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failedFetches) > 10000 {
		clear(s.failedFetches)
	}
	s.failedFetches[key] = failedFetch{at: now, err: err}
}

type failedFetch struct {
	at  time.Time
	err error
}

// evidence tells whether the quote's chain ends at the simulation root,
// and returns the matching verifier and the quote with its chain verified
// by it, whose platform (FMSPC, PCK CA kind) picks the collateral: an FMSPC
// from an unverified certificate never reaches the collateral store or
// the PCS.
func (s *Service) evidence(quote []byte, now time.Time) (*sgx.Verifier, *sgx.Evidence, bool, error) {
	simulated := false
	if s.sim != nil {
		q, err := sgx.ParseQuote(quote)
		if err != nil {
			return nil, nil, false, err
		}
		certs, err := sgx.ParseCertificates(q.CertData)
		if err != nil {
			return nil, nil, false, err
		}
		for _, c := range certs {
			if k, ok := c.PublicKey.(*ecdsa.PublicKey); ok && bytes.Equal(c.RawSubject, c.RawIssuer) && k.Equal(s.cfg.Simulation.RootKey()) {
				simulated = true
			}
		}
	}
	verifier := s.intel
	if simulated {
		verifier = s.sim
	}
	ev, err := verifier.Evidence(quote, now)
	return verifier, ev, simulated, err
}

// ApproveImage puts an image on the account's allowlist (an image task
// was approved), unless the task was withdrawn meanwhile. Applying it
// twice changes nothing.
func (s *Service) ApproveImage(ctx context.Context, accountID string, img domain.ApprovedImage) error {
	if uuid.Validate(accountID) != nil || uuid.Validate(img.AppID) != nil || uuid.Validate(img.TaskID) != nil {
		return errs.New(errs.Invalid, "an approved image needs an account, an application and a task")
	}
	return s.cfg.Withdrawals.Apply(ctx, accountID+"."+img.TaskID,
		func(ctx context.Context) error { return s.cfg.Images.Put(ctx, accountID, img) },
		func(ctx context.Context) error { return s.removeIfTask(ctx, accountID, img.MRENCLAVE, img.TaskID) })
}

// WithdrawImage takes an image off the allowlist when the task that
// approved it is withdrawn, for good; an entry a later task approved
// stays.
func (s *Service) WithdrawImage(ctx context.Context, accountID string, mrenclave [32]byte, taskID string) error {
	if uuid.Validate(accountID) != nil || uuid.Validate(taskID) != nil {
		return errs.New(errs.Invalid, "a withdrawal needs an account and a task")
	}
	if err := s.cfg.Withdrawals.Withdraw(ctx, accountID+"."+taskID); err != nil {
		return err
	}
	return s.removeIfTask(ctx, accountID, mrenclave, taskID)
}

func (s *Service) removeIfTask(ctx context.Context, accountID string, mrenclave [32]byte, taskID string) error {
	img, found, err := s.cfg.Images.Lookup(ctx, accountID, mrenclave)
	if err != nil || !found || img.TaskID != taskID {
		return err
	}
	return s.cfg.Images.Remove(ctx, accountID, mrenclave)
}

// ForgetImages removes the entries of a deleted application or image.
func (s *Service) ForgetImages(ctx context.Context, accountID, appID, imageID string) error {
	return s.cfg.Images.RemoveWhere(ctx, accountID, func(img domain.ApprovedImage) bool {
		return appID == "" && imageID == "" || appID != "" && img.AppID == appID || imageID != "" && img.ImageID == imageID
	})
}

// GetVerdict returns a recorded verdict of the account. The approved
// image it names is the one approved now, not at verification: an
// approval withdrawn since then no longer stands behind the verdict.
func (s *Service) GetVerdict(ctx context.Context, accountID, id string) (domain.Verdict, error) {
	if uuid.Validate(accountID) != nil || uuid.Validate(id) != nil {
		return domain.Verdict{}, domain.ErrVerdictNotFound
	}
	v, err := s.cfg.Verdicts.Get(ctx, accountID, id)
	if err != nil {
		return domain.Verdict{}, err
	}
	img, approved, err := s.cfg.Images.Lookup(ctx, accountID, v.MRENCLAVE)
	if err != nil {
		return domain.Verdict{}, err
	}
	v.AppID, v.ImageID = "", ""
	if approved && img.MRSIGNER == v.MRSIGNER {
		v.AppID, v.ImageID = img.AppID, img.ImageID
	}
	return v, nil
}

// IssueSimulatedQE makes a simulated quoting enclave under the
// deployment's simulation root for a node agent of the account, serialised
// with its private keys (sim.QE.MarshalBinary). It is refused with
// NotFound when simulation is off in the deployment and with
// PermissionDenied unless the account's policy allows simulation.
func (s *Service) IssueSimulatedQE(ctx context.Context, accountID string) ([]byte, error) {
	if uuid.Validate(accountID) != nil {
		return nil, errs.New(errs.Invalid, "account_id must be an account's id")
	}
	if s.cfg.Simulation == nil {
		return nil, errs.New(errs.NotFound, "simulation is not enabled in this deployment")
	}
	p, err := s.GetPolicy(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if !p.AllowSimulation {
		return nil, errs.New(errs.PermissionDenied, "simulation is not allowed by the account's policy")
	}
	qe, err := s.cfg.Simulation.NewQE(s.cfg.Clock(), accountID)
	if err != nil {
		return nil, err
	}
	return qe.MarshalBinary()
}

// GetPolicy returns the account's policy, or the default.
func (s *Service) GetPolicy(ctx context.Context, accountID string) (domain.Policy, error) {
	p, err := s.cfg.Policies.Get(ctx, accountID)
	if errors.Is(err, domain.ErrPolicyNotFound) {
		return domain.DefaultPolicy(), nil
	}
	return p, err
}

// SetPolicy replaces the account's policy; actor is who asked. Audited,
// whether it succeeds or not.
func (s *Service) SetPolicy(ctx context.Context, accountID string, p domain.Policy, actor audit.Actor) (domain.Policy, error) {
	if uuid.Validate(accountID) != nil {
		return domain.Policy{}, errs.New(errs.Invalid, "account_id must be an account's id")
	}
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.AttestationPolicySet), Target: accountID}
	out, err := s.setPolicy(ctx, accountID, p, entry)
	if err != nil {
		entry.Err = err
		if rerr := s.cfg.Audit.Record(ctx, entry); rerr != nil {
			err = errors.Join(err, fmt.Errorf("recording audit entry: %w", rerr))
		}
	}
	return out, err
}

func (s *Service) setPolicy(ctx context.Context, accountID string, p domain.Policy, entry audit.Entry) (domain.Policy, error) {
	if err := p.Check(); err != nil {
		return domain.Policy{}, err
	}
	current, err := s.cfg.Policies.Get(ctx, accountID)
	switch {
	case errors.Is(err, domain.ErrPolicyNotFound):
		p.Version = 0
	case err != nil:
		return domain.Policy{}, err
	default:
		p.Version = current.Version
	}
	p, err = s.cfg.Policies.Put(ctx, accountID, p, domain.PolicyChanged{AccountID: accountID, Policy: p}, domain.Audited{Entry: entry})
	if err == nil {
		s.DropPolicy(accountID)
	}
	return p, err
}

// PutCollateral checks collateral (chains, signatures, dates, Root CA CRL)
// and stores it for its platform. Collateral only moves forward: TCB and QE
// evaluation numbers may not go down, nor CRLs get older, so nobody can
// roll a platform back to an evaluation that missed newer advisories or
// to a CRL from before a revocation.
func (s *Service) PutCollateral(ctx context.Context, col *sgx.Collateral, actor audit.Actor) (*sgx.TCBInfo, error) {
	info, err := s.putCollateral(ctx, col)
	// Collateral is the deployment's, not an account's: recorded under
	// none, success or refusal.
	entry := audit.Entry{Actor: actor, Action: actionCollateralPut, Err: err}
	if actor.Credential == audit.CredentialSystem {
		entry.Cause = "fetched from the PCS"
	}
	if info != nil {
		entry.Target = hex.EncodeToString(info.FMSPC[:])
	}
	if rerr := s.cfg.Audit.Record(ctx, entry); rerr != nil {
		return nil, errors.Join(err, fmt.Errorf("recording audit entry: %w", rerr))
	}
	return info, err
}

// PutVCEK keeps an AMD VCEK an admin uploaded, for the SEV-SNP reports
// of its chip and TCB that come without one, once it chains to AMD's
// root; recorded in the audit log under no account, as collateral is.
func (s *Service) PutVCEK(ctx context.Context, vcek []byte, actor audit.Actor) (domain.VCEK, error) {
	if len(vcek) == 0 || len(vcek) > MaxEvidenceSize {
		return domain.VCEK{}, errs.Newf(errs.Invalid, "vcek must be 1 to %d bytes", MaxEvidenceSize)
	}
	var info domain.VCEK
	var err error = errs.New(errs.Invalid, "this deployment does not verify SEV-SNP evidence")
	if s.cfg.SNP != nil {
		if info, err = s.cfg.SNP.PutVCEK(ctx, vcek, s.cfg.Clock()); tee.ReasonOf(err) != "" {
			err = errs.Newf(errs.Invalid, "VCEK refused: %v", err)
		}
	}
	entry := audit.Entry{Actor: actor, Action: actionVCEKPut, Err: err, Target: hex.EncodeToString(info.HWID)}
	if rerr := s.cfg.Audit.Record(ctx, entry); rerr != nil {
		return domain.VCEK{}, errors.Join(err, fmt.Errorf("recording audit entry: %w", rerr))
	}
	return info, err
}

// actionVCEKPut is the audit action of a VCEK upload.
const actionVCEKPut = "vcek.put"

// actionCollateralPut is the audit action of a collateral upload.
const actionCollateralPut = "collateral.put"

func (s *Service) putCollateral(ctx context.Context, col *sgx.Collateral) (*sgx.TCBInfo, error) {
	if col == nil || len(col.RootCACRL) == 0 || len(col.PCKCRL) == 0 {
		return nil, errs.New(errs.Invalid, "collateral must include the Root CA CRL and the PCK CRL")
	}
	info, err := s.intel.CheckCollateral(col, s.cfg.Clock(), false)
	if err != nil {
		return nil, errs.Newf(errs.Invalid, "collateral refused: %v", err)
	}
	qe, err := sgx.ParseQEIdentity(col.QEIdentityJSON)
	if err != nil {
		return nil, errs.Newf(errs.Invalid, "collateral refused: %v", err)
	}
	rootCRL, err := sgx.ParseCRL(col.RootCACRL)
	if err != nil {
		return nil, errs.Newf(errs.Invalid, "collateral refused: %v", err)
	}
	pckCRL, err := sgx.ParseCRL(col.PCKCRL)
	if err != nil {
		return nil, errs.Newf(errs.Invalid, "collateral refused: %v", err)
	}
	c := domain.Collateral{Col: *col, TCBEvaluation: info.TCBEvaluationDataNumber, QEEvaluation: qe.TCBEvaluationDataNumber,
		RootCRLIssued: rootCRL.ThisUpdate, PCKCRLIssued: pckCRL.ThisUpdate}
	c.Expires = info.NextUpdate
	for _, t := range []time.Time{qe.NextUpdate, rootCRL.NextUpdate, pckCRL.NextUpdate} {
		if t.Before(c.Expires) {
			c.Expires = t
		}
	}
	teeName := tee.SGX
	if info.ID == "TDX" {
		teeName = tee.TDX
	}
	ca := collateralKind(teeName, sgx.PCKCAKind(pckCRL.Issuer.CommonName))
	defer s.collaterals.Drop(platformKey(info.FMSPC, ca))
	err = s.cfg.Collaterals.Put(ctx, info.FMSPC, ca, c, func(stored domain.Collateral) error {
		switch {
		case c.TCBEvaluation < stored.TCBEvaluation:
			return errs.Newf(errs.Conflict, "TCB Info evaluation %d is older than the stored %d", c.TCBEvaluation, stored.TCBEvaluation)
		case c.QEEvaluation < stored.QEEvaluation:
			return errs.Newf(errs.Conflict, "QE Identity evaluation %d is older than the stored %d", c.QEEvaluation, stored.QEEvaluation)
		case c.RootCRLIssued.Before(stored.RootCRLIssued):
			return errs.Newf(errs.Conflict, "Root CA CRL of %s is older than the stored one of %s", c.RootCRLIssued.Format(time.RFC3339), stored.RootCRLIssued.Format(time.RFC3339))
		case c.PCKCRLIssued.Before(stored.PCKCRLIssued):
			return errs.Newf(errs.Conflict, "PCK CRL of %s is older than the stored one of %s", c.PCKCRLIssued.Format(time.RFC3339), stored.PCKCRLIssued.Format(time.RFC3339))
		}
		return nil
	})
	if err != nil {
		return info, err
	}
	return info, nil
}

// simulatedAccount is the account the simulated QE that signed quote was
// issued for ("" when it names none, or the quote cannot be read).
func simulatedAccount(quote []byte) string {
	q, err := sgx.ParseQuote(quote)
	if err != nil {
		return ""
	}
	certs, err := sgx.ParseCertificates(q.CertData)
	if err != nil || len(certs) == 0 {
		return ""
	}
	return sim.AccountOf(certs[0])
}
