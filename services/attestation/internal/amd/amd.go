// Package amd verifies AMD SEV-SNP evidence for the attestation service
// with libs/snp, which depends on protobuf (go-sev-guest) and so stays out
// of the service's inner layers: they see domain types only.
package amd

import (
	"context"
	"time"

	"github.com/cloister-cc/cloister/libs/snp"
	"github.com/cloister-cc/cloister/libs/tee"
	"github.com/cloister-cc/cloister/services/attestation/internal/app"
	"github.com/cloister-cc/cloister/services/attestation/internal/domain"
)

// Verifier is app.SNP on libs/snp. It remembers the VCEKs it chained to
// AMD's roots (a node sends the same one with each report).
type Verifier struct {
	v      *snp.Verifier
	kds    *KDS
	stored VCEKs
}

// VCEKs keeps the VCEKs admins uploaded, by snp.VCEKInfo.Key.
type VCEKs interface {
	Get(ctx context.Context, key string) ([]byte, error) // nil when there is none
	Put(ctx context.Context, key string, der []byte, notAfter time.Time) error
}

var _ app.SNP = (*Verifier)(nil)

// New returns a Verifier with nothing remembered. A report that comes
// without its VCEK has it from stored (the uploaded ones), else fetched
// from kds (may be nil).
func New(stored VCEKs, kds *KDS) *Verifier {
	return &Verifier{v: snp.NewVerifier(), kds: kds, stored: stored}
}

// PutVCEK implements app.SNP.
func (a *Verifier) PutVCEK(ctx context.Context, vcek []byte, at time.Time) (domain.VCEK, error) {
	info, der, err := a.v.CheckVCEK(vcek, at)
	if err != nil {
		return domain.VCEK{}, err
	}
	if err := a.stored.Put(ctx, info.Key(), der, info.NotAfter); err != nil {
		return domain.VCEK{}, err
	}
	return domain.VCEK{Product: info.ProductLine, HWID: info.HWID, TCB: info.TCB.String(), NotAfter: info.NotAfter}, nil
}

// vcekFor finds the VCEK of a report that came without one: uploaded,
// else fetched from the KDS; nil if neither has it.
func (a *Verifier) vcekFor(ctx context.Context, report []byte, at time.Time) ([]byte, error) {
	key, err := snp.ReportVCEKKey(report)
	if err != nil {
		return nil, err
	}
	if der, err := a.stored.Get(ctx, key); err != nil || der != nil {
		return der, err
	}
	if a.kds == nil {
		return nil, nil
	}
	der, err := a.kds.VCEK(report, at)
	if err != nil {
		return nil, &tee.Error{TEE: tee.SEVSNP, Reason: tee.ReasonChain, Item: "VCEK certificate", Err: err}
	}
	return der, nil
}

// Verify checks report with the VCEK (or certificate table) aux at at, and
// then policy p; what a verified report proves is returned even when the
// policy refuses it.
func (a *Verifier) Verify(ctx context.Context, report, aux []byte, at time.Time, p domain.SNPPolicy) (domain.SNPEvidence, error) {
	vcek, chain, err := snp.Certificates(aux)
	if err != nil {
		return domain.SNPEvidence{}, err
	}
	if len(vcek) == 0 {
		if vcek, err = a.vcekFor(ctx, report, at); err != nil {
			return domain.SNPEvidence{}, err
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
