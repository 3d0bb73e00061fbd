// Package amd verifies AMD SEV-SNP evidence for the attestation service
// with libs/snp, which depends on protobuf (go-sev-guest) and so stays out
// of the service's inner layers: they see domain types only.
package amd

import (
	"time"

	"github.com/cloister-cc/cloister/libs/snp"
	"github.com/cloister-cc/cloister/libs/tee"
	"github.com/cloister-cc/cloister/services/attestation/internal/app"
	"github.com/cloister-cc/cloister/services/attestation/internal/domain"
)

// Verifier is app.SNP on libs/snp. It remembers the VCEKs it chained to
// AMD's roots (a node sends the same one with each report).
type Verifier struct {
	v   *snp.Verifier
	kds *KDS
}

var _ app.SNP = (*Verifier)(nil)

// New returns a Verifier with nothing remembered; with kds (may be nil),
// a report that comes without its VCEK has it fetched.
func New(kds *KDS) *Verifier { return &Verifier{v: snp.NewVerifier(), kds: kds} }

// Verify checks report with the VCEK (or certificate table) aux at at, and
// then policy p; what a verified report proves is returned even when the
// policy refuses it.
func (a *Verifier) Verify(report, aux []byte, at time.Time, p domain.SNPPolicy) (domain.SNPEvidence, error) {
	vcek, chain, err := snp.Certificates(aux)
	if err != nil {
		return domain.SNPEvidence{}, err
	}
	if len(vcek) == 0 && a.kds != nil {
		if vcek, err = a.kds.VCEK(report, at); err != nil {
			return domain.SNPEvidence{}, &tee.Error{TEE: tee.SEVSNP, Reason: tee.ReasonChain, Item: "VCEK certificate", Err: err}
		}
	}
	res, err := a.v.Verify(report, snp.Options{At: at, VCEK: vcek, Chain: chain})
	if err != nil {
		return domain.SNPEvidence{}, err
	}
	ev := domain.SNPEvidence{Measurement: res.Measurement, HostData: res.HostData, ReportData: res.ReportData,
		Debug: res.Debug, ReportedTCB: res.ReportedTCB.String()}
	return ev, snp.Policy{AllowDebug: p.AllowDebug, MinTCB: snp.TCB(p.MinTCB), Measurements: p.Measurements, HostData: p.HostData}.Check(res)
}
