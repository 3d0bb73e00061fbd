// Package app is the attestation service's use cases: verifying evidence
// for an account under its policy, keeping policies and Intel collateral.
package app

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/services/attestation/internal/domain"
)

// Policies stores each account's policy.
type Policies interface {
	Get(ctx context.Context, accountID string) (domain.Policy, error) // domain.ErrPolicyNotFound
	// Put stores p if the stored version is still p.Version (0: none yet).
	Put(ctx context.Context, accountID string, p domain.Policy, evs ...domain.Event) (domain.Policy, error)
}

// Collaterals stores Intel collateral by platform (FMSPC).
type Collaterals interface {
	Get(ctx context.Context, fmspc [6]byte) (*sgx.Collateral, error) // domain.ErrCollateralNotFound
	Put(ctx context.Context, fmspc [6]byte, c *sgx.Collateral) error
}

// Verdicts stores verdicts, so that the CA can be given a verdict's id and
// never has to trust a verdict a caller asserts.
type Verdicts interface {
	Create(ctx context.Context, v domain.Verdict, evs ...domain.Event) error
	Get(ctx context.Context, accountID, id string) (domain.Verdict, error)
}

// Fetcher gets collateral for a platform from Intel's PCS or a PCCS; ca is
// "processor" or "platform", the PCK CA of the platform's certificate.
type Fetcher interface {
	Fetch(ctx context.Context, fmspc [6]byte, ca string) (*sgx.Collateral, error)
}

// Simulation is the deployment's simulated quoting infrastructure: its
// root key, and collateral for its simulated platforms.
type Simulation interface {
	RootKey() *ecdsa.PublicKey
	Collateral(fmspc [6]byte, now time.Time) (*sgx.Collateral, error)
}

// Config holds the service's dependencies.
type Config struct {
	Policies    Policies
	Collaterals Collaterals
	Verdicts    Verdicts
	// Fetcher, when set, fetches collateral that is missing or past its
	// nextUpdate; fetched collateral is checked and stored like uploads.
	Fetcher Fetcher
	// Simulation, when set, lets accounts whose policy allows it present
	// simulated evidence.
	Simulation Simulation
	// IntelRoot overrides the pinned Intel SGX Root CA key (tests only).
	IntelRoot *ecdsa.PublicKey
	Clock     func() time.Time
}

// Service verifies evidence and keeps policies and collateral.
type Service struct {
	cfg   Config
	intel *sgx.Verifier
	sim   *sgx.Verifier
}

// New returns the service.
func New(cfg Config) (*Service, error) {
	if cfg.Policies == nil || cfg.Collaterals == nil || cfg.Verdicts == nil {
		return nil, errors.New("attestation: the policy, collateral and verdict stores are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	s := &Service{cfg: cfg, intel: sgx.NewVerifier(cfg.IntelRoot)}
	if cfg.Simulation != nil {
		s.sim = sgx.NewVerifier(cfg.Simulation.RootKey(), sim.VerifierOptions()...)
	}
	return s, nil
}

// MaxEvidenceSize bounds the evidence accepted.
const MaxEvidenceSize = sgx.MaxQuoteSize

// Verify checks a quote for an account under the account's policy and
// records the verdict, which it returns whether or not the evidence
// passed. An error means the request itself was wrong or the service
// could not decide.
func (s *Service) Verify(ctx context.Context, accountID string, quote, binding, nonce []byte) (domain.Verdict, error) {
	if uuid.Validate(accountID) != nil {
		return domain.Verdict{}, errs.New(errs.Invalid, "account_id must be an account's id")
	}
	if len(quote) == 0 || len(quote) > MaxEvidenceSize {
		return domain.Verdict{}, errs.Newf(errs.Invalid, "quote must be 1 to %d bytes", MaxEvidenceSize)
	}
	if (len(binding) != 0 || len(nonce) != 0) && (len(binding) != 32 || len(nonce) != 32) {
		return domain.Verdict{}, errs.New(errs.Invalid, "binding and nonce must be 32 bytes each, or both absent")
	}
	now := s.cfg.Clock().UTC()
	v := domain.Verdict{ID: uuid.Must(uuid.NewV7()).String(), AccountID: accountID, VerifiedAt: now}
	if err := s.judge(ctx, &v, quote, binding, nonce, now); err != nil {
		return domain.Verdict{}, err
	}
	var ev domain.Event = domain.AttestationFailed{Verdict: v}
	if v.OK {
		ev = domain.AttestationSucceeded{Verdict: v}
	}
	if err := s.cfg.Verdicts.Create(ctx, v, ev); err != nil {
		return domain.Verdict{}, err
	}
	return v, nil
}

// judge fills in the verdict; it returns an error only when it cannot
// decide (a store failing), never for bad evidence.
func (s *Service) judge(ctx context.Context, v *domain.Verdict, quote, binding, nonce []byte, now time.Time) error {
	refuse := func(reason string, err error) error {
		v.OK, v.Reason, v.Error = false, reason, err.Error()
		return nil
	}
	policy, err := s.GetPolicy(ctx, v.AccountID)
	if err != nil {
		return err
	}
	fmspc, ca, simulated, err := s.platformOf(quote)
	if err != nil {
		return refuse(string(sgx.ReasonOf(err)), err)
	}
	v.Simulated, v.FMSPC = simulated, fmspc

	verifier := s.intel
	var col *sgx.Collateral
	switch {
	case simulated && !policy.AllowSimulation:
		return refuse(domain.ReasonSimulationNotAllowed, errors.New("the evidence is simulated and the account's policy does not allow simulation"))
	case simulated:
		verifier = s.sim
		if col, err = s.cfg.Simulation.Collateral(fmspc, now); err != nil {
			return refuse(domain.ReasonSimulationUnavailable, err)
		}
	default:
		col, err = s.collateralFor(ctx, fmspc, ca, now)
		if errors.Is(err, domain.ErrCollateralNotFound) {
			return refuse(domain.ReasonNoCollateral, fmt.Errorf("FMSPC %x: %w; upload it or configure a PCS", fmspc, err))
		}
		if err != nil {
			return err
		}
	}
	res, err := verifier.Verify(quote, sgx.Options{At: now, Collateral: col})
	if err != nil {
		return refuse(string(sgx.ReasonOf(err)), err)
	}
	v.TCBStatus, v.Advisories = res.Status, res.Advisories
	v.MRENCLAVE, v.MRSIGNER, v.ISVProdID, v.ISVSVN = res.MRENCLAVE, res.MRSIGNER, res.ISVProdID, res.ISVSVN
	v.Debug, v.ReportData = res.Debug, res.ReportData
	if err := policy.SGX().Check(res); err != nil {
		return refuse(string(sgx.ReasonOf(err)), err)
	}
	if len(binding) != 0 && (!bytes.Equal(res.ReportData[:32], binding) || !bytes.Equal(res.ReportData[32:], nonce)) {
		return refuse(domain.ReasonBinding, errors.New("report data is not the expected key binding and nonce"))
	}
	v.OK = true
	return nil
}

// collateralFor returns the stored collateral of a platform while it is
// current, and otherwise what the fetcher (if any) brings, stored for the
// next verification. If fetching fails, stale collateral is still returned:
// the verifier then names what expired.
func (s *Service) collateralFor(ctx context.Context, fmspc [6]byte, ca string, now time.Time) (*sgx.Collateral, error) {
	stored, err := s.cfg.Collaterals.Get(ctx, fmspc)
	if err != nil && !errors.Is(err, domain.ErrCollateralNotFound) {
		return nil, err
	}
	if stored != nil {
		if info, perr := sgx.ParseTCBInfo(stored.TCBInfoJSON); perr == nil && now.Before(info.NextUpdate) {
			return stored, nil
		}
	}
	if s.cfg.Fetcher == nil {
		return stored, err
	}
	fetched, ferr := s.cfg.Fetcher.Fetch(ctx, fmspc, ca)
	if ferr == nil {
		if _, ferr = s.PutCollateral(ctx, fetched); ferr == nil {
			return fetched, nil
		}
	}
	if stored != nil {
		return stored, nil
	}
	return nil, fmt.Errorf("%w (fetching it from the PCS: %v)", domain.ErrCollateralNotFound, ferr)
}

// platformOf reads the FMSPC and the issuing PCK CA ("processor" or
// "platform") from the quote's PCK chain and tells whether the chain ends
// at the simulation root.
func (s *Service) platformOf(quote []byte) ([6]byte, string, bool, error) {
	q, err := sgx.ParseQuote(quote)
	if err != nil {
		return [6]byte{}, "", false, err
	}
	certs, err := sgx.ParseCertificates(q.CertData)
	if err != nil {
		return [6]byte{}, "", false, err
	}
	var fmspc [6]byte
	ca := "processor"
	found, simulated := false, false
	for _, c := range certs {
		if ext, err := sgx.ParsePCKExtension(c); err == nil && !found {
			fmspc, found = ext.FMSPC, true
			if strings.Contains(c.Issuer.CommonName, "Platform") {
				ca = "platform"
			}
		}
		if s.sim != nil && bytes.Equal(c.RawSubject, c.RawIssuer) {
			if k, ok := c.PublicKey.(*ecdsa.PublicKey); ok && k.Equal(s.cfg.Simulation.RootKey()) {
				simulated = true
			}
		}
	}
	if !found {
		return [6]byte{}, "", false, &sgx.Error{Reason: sgx.ReasonChain, Item: "PCK certificate chain", Err: errors.New("no certificate carries the SGX extension")}
	}
	return fmspc, ca, simulated, nil
}

// GetVerdict returns a recorded verdict of the account.
func (s *Service) GetVerdict(ctx context.Context, accountID, id string) (domain.Verdict, error) {
	return s.cfg.Verdicts.Get(ctx, accountID, id)
}

// GetPolicy returns the account's policy, or the default.
func (s *Service) GetPolicy(ctx context.Context, accountID string) (domain.Policy, error) {
	p, err := s.cfg.Policies.Get(ctx, accountID)
	if errors.Is(err, domain.ErrPolicyNotFound) {
		return domain.DefaultPolicy(), nil
	}
	return p, err
}

// SetPolicy replaces the account's policy.
func (s *Service) SetPolicy(ctx context.Context, accountID string, p domain.Policy) (domain.Policy, error) {
	if uuid.Validate(accountID) != nil {
		return domain.Policy{}, errs.New(errs.Invalid, "account_id must be an account's id")
	}
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
	return s.cfg.Policies.Put(ctx, accountID, p, domain.PolicyChanged{AccountID: accountID, Policy: p})
}

// PutCollateral checks collateral (chains, signatures, dates, Root CA CRL)
// and stores it under its FMSPC.
func (s *Service) PutCollateral(ctx context.Context, col *sgx.Collateral) (*sgx.TCBInfo, error) {
	if col == nil || len(col.RootCACRL) == 0 || len(col.PCKCRL) == 0 {
		return nil, errs.New(errs.Invalid, "collateral must include the Root CA CRL and the PCK CRL")
	}
	info, err := s.intel.CheckCollateral(col, s.cfg.Clock(), false)
	if err != nil {
		return nil, errs.Newf(errs.Invalid, "collateral refused: %v", err)
	}
	// Collateral only moves forward: older (even if still valid) collateral
	// must not replace what is stored, or a caller could roll a platform
	// back to a TCB evaluation that missed newer advisories.
	if stored, err := s.cfg.Collaterals.Get(ctx, info.FMSPC); err == nil {
		if old, err := sgx.ParseTCBInfo(stored.TCBInfoJSON); err == nil && info.IssueDate.Before(old.IssueDate) {
			return nil, errs.Newf(errs.Conflict, "newer collateral for FMSPC %x is stored (issued %s)", info.FMSPC, old.IssueDate.Format(time.RFC3339))
		}
	} else if !errors.Is(err, domain.ErrCollateralNotFound) {
		return nil, err
	}
	if err := s.cfg.Collaterals.Put(ctx, info.FMSPC, col); err != nil {
		return nil, err
	}
	return info, nil
}
