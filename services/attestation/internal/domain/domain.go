// Package domain holds the attestation service's policy and verdict types
// and their rules. It imports no transport or storage package.
package domain

import (
	"fmt"
	"slices"
	"time"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/tee"
)

// Policy is an account's attestation policy.
type Policy struct {
	AcceptStatuses  []sgx.TCBStatus
	AllowDebug      bool
	AllowSimulation bool
	MinISVSVN       uint16
	// RequireNodeAttestation refuses the enrolment of a node that
	// presents no TEE evidence, whatever its join token says.
	RequireNodeAttestation bool
	// TDX and SNP are the rules for confidential VMs' evidence; the
	// fields above are SGX enclaves'.
	TDX     TDXPolicy
	SNP     SNPPolicy
	Version uint64
}

// TDXPolicy says which Intel TDX evidence an account accepts.
type TDXPolicy struct {
	// AcceptStatuses are the converged TCB statuses accepted; none
	// means the default ones (UpToDate, SWHardeningNeeded).
	AcceptStatuses []sgx.TCBStatus
	AllowDebug     bool
	// MRTDs, if any, are the TD measurements accepted.
	MRTDs [][48]byte
	// RTMRs, if set, are what RTMR0 to RTMR3 must be; a nil entry
	// accepts any value.
	RTMRs [4]*[48]byte
}

// Statuses are the TCB statuses the policy accepts.
func (p TDXPolicy) Statuses() []sgx.TCBStatus {
	if len(p.AcceptStatuses) == 0 {
		return sgx.DefaultPolicy().AcceptStatuses
	}
	return p.AcceptStatuses
}

// Check refuses a verified TD the policy does not accept, with an
// *sgx.Error whose reason names why.
func (p TDXPolicy) Check(r *sgx.Result) error {
	if err := (sgx.Policy{AcceptStatuses: p.Statuses(), AllowDebug: p.AllowDebug}).Check(r); err != nil {
		return err
	}
	td := r.TD
	if len(p.MRTDs) > 0 && !slices.Contains(p.MRTDs, td.MRTD) {
		return &tee.Error{TEE: tee.TDX, Reason: tee.ReasonPolicy, Item: "MRTD", Err: fmt.Errorf("%x is not one the account's policy allows", td.MRTD)}
	}
	for i, want := range p.RTMRs {
		if want != nil && *want != td.RTMRs[i] {
			return &tee.Error{TEE: tee.TDX, Reason: tee.ReasonPolicy, Item: fmt.Sprintf("RTMR%d", i),
				Err: fmt.Errorf("%x, not the %x the account's policy asks for", td.RTMRs[i], *want)}
		}
	}
	return nil
}

// SNPPolicy says which AMD SEV-SNP evidence an account accepts.
type SNPPolicy struct {
	AllowDebug bool
	// Measurements, if any, are the launch measurements accepted.
	Measurements [][48]byte
	// HostData, if set, is the HOST_DATA a VM must have been launched with.
	HostData *[32]byte
	// MinTCB is the least REPORTED_TCB accepted, level by level.
	MinTCB uint64
}

// DefaultPolicy is in force until an account sets its own: only platforms
// that are up to date (or need only software hardening), no debug
// enclaves, no simulation.
func DefaultPolicy() Policy {
	return Policy{AcceptStatuses: sgx.DefaultPolicy().AcceptStatuses}
}

// Check validates a policy someone wants to set.
func (p Policy) Check() error {
	if len(p.AcceptStatuses) == 0 {
		return errs.New(errs.Invalid, "accept_statuses must name at least one TCB status")
	}
	for _, s := range p.AcceptStatuses {
		if !slices.Contains(sgx.AllStatuses, s) {
			return errs.Newf(errs.Invalid, "accept_statuses: unknown TCB status %q", s)
		}
	}
	for _, s := range p.TDX.AcceptStatuses {
		if !slices.Contains(sgx.AllStatuses, s) {
			return errs.Newf(errs.Invalid, "tdx.accept_statuses: unknown TCB status %q", s)
		}
	}
	return nil
}

// SGX returns the policy as the verifier library applies it.
func (p Policy) SGX() sgx.Policy {
	return sgx.Policy{AcceptStatuses: p.AcceptStatuses, AllowDebug: p.AllowDebug, MinISVSVN: p.MinISVSVN}
}

// Collateral is Intel collateral for one platform kind (FMSPC and PCK CA)
// with what decides whether newer collateral may replace it and when it
// must be refreshed.
type Collateral struct {
	Col sgx.Collateral
	// Expires is the earliest nextUpdate of its parts.
	Expires time.Time
	// Evaluation numbers and CRL issue times only move forward.
	TCBEvaluation, QEEvaluation int
	RootCRLIssued, PCKCRLIssued time.Time
}

// Verdict is the outcome of verifying one piece of evidence for an account.
type Verdict struct {
	ID         string
	AccountID  string
	OK         bool
	Reason     string // an sgx.Reason, or one of the Reason* below
	Error      string
	TCBStatus  sgx.TCBStatus
	Advisories []string
	MRENCLAVE  [32]byte
	MRSIGNER   [32]byte
	ISVProdID  uint16
	ISVSVN     uint16
	Debug      bool
	Simulated  bool
	ReportData [64]byte
	FMSPC      [6]byte
	VerifiedAt time.Time
	// AppID and ImageID name the approved image whose measurement this
	// is, when there is one in the account.
	AppID   string
	ImageID string
	// TEE is "sgx", "tdx" or "sev-snp"; Measurement a TD's MRTD or an
	// SEV-SNP VM's launch measurement (an enclave's is MRENCLAVE); RTMRs
	// a TD's run-time registers, HostData an SEV-SNP VM's HOST_DATA.
	TEE         string
	Measurement [48]byte
	RTMRs       [][48]byte
	HostData    [32]byte
}

// VCEK is what an uploaded VCEK was issued for.
type VCEK struct {
	Product  string
	HWID     []byte
	TCB      string // hex
	NotAfter time.Time
}

// SNPEvidence is what a verified SEV-SNP report proves (the attestation
// service's copy of libs/snp's result, which this package does not
// import: it depends on protobuf).
type SNPEvidence struct {
	Measurement [48]byte
	HostData    [32]byte
	ReportData  [64]byte
	Debug       bool
	// ReportedTCB is the REPORTED_TCB, as hex.
	ReportedTCB string
}

// ActivityHour is what an account's attestations came to in one hour.
type ActivityHour struct {
	Start             time.Time
	Succeeded, Failed uint64
	// Failures are the hour's latest failed verdicts, newest first, at
	// most MaxFailuresPerHour.
	Failures []Verdict
}

// MaxFailuresPerHour bounds the failures an ActivityHour keeps: enough
// to see what goes wrong, not a log.
const MaxFailuresPerHour = 5

// Add counts v in the hour.
func (h *ActivityHour) Add(v Verdict) {
	if v.OK {
		h.Succeeded++
		return
	}
	h.Failed++
	h.Failures = append([]Verdict{v}, h.Failures[:min(len(h.Failures), MaxFailuresPerHour-1)]...)
}

// Merge adds o, another count of the same hour, to h: the failures stay
// the newest MaxFailuresPerHour of both.
func (h *ActivityHour) Merge(o ActivityHour) {
	h.Succeeded += o.Succeeded
	h.Failed += o.Failed
	h.Failures = append(h.Failures, o.Failures...)
	slices.SortStableFunc(h.Failures, func(a, b Verdict) int { return b.VerifiedAt.Compare(a.VerifiedAt) })
	h.Failures = h.Failures[:min(len(h.Failures), MaxFailuresPerHour)]
}

// ApprovedImage is an entry of an account's approved-image allowlist,
// keyed by MRENCLAVE: built from approved image tasks.
type ApprovedImage struct {
	MRENCLAVE [32]byte `json:"mrenclave"`
	MRSIGNER  [32]byte `json:"mrsigner"`
	AppID     string   `json:"app_id"`
	ImageID   string   `json:"image_id"`
	Tag       string   `json:"tag"`
	TaskID    string   `json:"task_id"`
}

// Reasons a verdict fails besides the verifier's own.
const (
	ReasonNoCollateral          = "no_collateral"
	ReasonSimulationNotAllowed  = "simulation_not_allowed"
	ReasonSimulationUnavailable = "simulation_unavailable"
	// ReasonSimulationOtherAccount: the simulated QE was issued for
	// another account (or for none).
	ReasonSimulationOtherAccount = "simulation_other_account"
	ReasonBinding                = "report_data_binding"
	ReasonImageNotApproved       = "image_not_approved"
)

// Errors of the attestation service.
var (
	ErrPolicyNotFound     = errs.Define(errs.NotFound, "policy_not_found", "no policy set")
	ErrCollateralNotFound = errs.Define(errs.NotFound, "collateral_not_found", "no collateral for this platform")
	ErrVerdictNotFound    = errs.Define(errs.NotFound, "verdict_not_found", "verdict not found")
	ErrConcurrentChange   = errs.Define(errs.Conflict, "concurrent_change", "changed by another request; retry")
)

// Event is a fact the service publishes when a write commits.
type Event interface{ isEvent() }

// The events of the attestation service.
type (
	AttestationSucceeded struct{ Verdict Verdict }
	AttestationFailed    struct{ Verdict Verdict }
	PolicyChanged        struct {
		AccountID string
		Policy    Policy
	}
	// Audited is an audit record: a success committed with its change,
	// or a failure on its own.
	Audited struct{ Entry audit.Entry }
)

func (AttestationSucceeded) isEvent() {}
func (AttestationFailed) isEvent()    {}
func (PolicyChanged) isEvent()        {}
func (Audited) isEvent()              {}
