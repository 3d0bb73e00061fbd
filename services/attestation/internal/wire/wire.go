// Package wire converts the attestation service's domain values to and
// from their protobuf forms, for its endpoints and its events alike.
package wire

import (
	"fmt"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/events"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/tee"
	"github.com/cloister-cc/cloister/services/attestation/internal/domain"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// VerdictToProto converts a verdict.
func VerdictToProto(v domain.Verdict) *attestationv1.Verdict {
	out := &attestationv1.Verdict{
		Id: v.ID, AccountId: v.AccountID, Ok: v.OK, Reason: v.Reason, Error: v.Error, TcbStatus: string(v.TCBStatus),
		Advisories: v.Advisories, Mrenclave: v.MRENCLAVE[:], Mrsigner: v.MRSIGNER[:], Isvprodid: uint32(v.ISVProdID),
		Isvsvn: uint32(v.ISVSVN), Debug: v.Debug, Simulated: v.Simulated, ReportData: v.ReportData[:], Fmspc: v.FMSPC[:],
		VerifiedAt: timestamppb.New(v.VerifiedAt), AppId: v.AppID, ImageId: v.ImageID, Tee: v.TEE,
	}
	if v.TEE == tee.TDX || v.TEE == tee.SEVSNP {
		out.Measurement = v.Measurement[:]
	}
	for _, r := range v.RTMRs {
		out.Rtmrs = append(out.Rtmrs, r[:])
	}
	if v.TEE == tee.SEVSNP {
		out.HostData = v.HostData[:]
	}
	return out
}

// PolicyToProto converts a policy.
func PolicyToProto(p domain.Policy) *attestationv1.Policy {
	out := &attestationv1.Policy{AllowDebug: p.AllowDebug, AllowSimulation: p.AllowSimulation, MinIsvsvn: uint32(p.MinISVSVN),
		RequireNodeAttestation: p.RequireNodeAttestation}
	for _, s := range p.AcceptStatuses {
		out.AcceptStatuses = append(out.AcceptStatuses, string(s))
	}
	out.Tdx = &attestationv1.TDXPolicy{AllowDebug: p.TDX.AllowDebug}
	for _, s := range p.TDX.Statuses() {
		out.Tdx.AcceptStatuses = append(out.Tdx.AcceptStatuses, string(s))
	}
	for _, m := range p.TDX.MRTDs {
		out.Tdx.Mrtds = append(out.Tdx.Mrtds, m[:])
	}
	if p.TDX.RTMRs != ([4]*[48]byte{}) {
		for _, r := range p.TDX.RTMRs {
			var b []byte
			if r != nil {
				b = r[:]
			}
			out.Tdx.Rtmrs = append(out.Tdx.Rtmrs, b)
		}
	}
	out.SevSnp = &attestationv1.SNPPolicy{AllowDebug: p.SNP.AllowDebug, MinTcb: p.SNP.MinTCB}
	for _, m := range p.SNP.Measurements {
		out.SevSnp.Measurements = append(out.SevSnp.Measurements, m[:])
	}
	if p.SNP.HostData != nil {
		out.SevSnp.HostData = p.SNP.HostData[:]
	}
	return out
}

// PolicyFromProto reads a policy someone wants to set: the byte fields
// must have their sizes.
func PolicyFromProto(in *attestationv1.Policy) (domain.Policy, error) {
	if in.GetMinIsvsvn() > 0xffff {
		return domain.Policy{}, errs.New(errs.Invalid, "min_isvsvn must be at most 65535")
	}
	p := domain.Policy{AllowDebug: in.GetAllowDebug(), AllowSimulation: in.GetAllowSimulation(), MinISVSVN: uint16(in.GetMinIsvsvn()),
		RequireNodeAttestation: in.GetRequireNodeAttestation()}
	for _, st := range in.GetAcceptStatuses() {
		p.AcceptStatuses = append(p.AcceptStatuses, sgx.TCBStatus(st))
	}
	td := in.GetTdx()
	p.TDX.AllowDebug = td.GetAllowDebug()
	for _, st := range td.GetAcceptStatuses() {
		p.TDX.AcceptStatuses = append(p.TDX.AcceptStatuses, sgx.TCBStatus(st))
	}
	var err error
	if p.TDX.MRTDs, err = measurements("tdx.mrtds", td.GetMrtds()); err != nil {
		return domain.Policy{}, err
	}
	switch rs := td.GetRtmrs(); len(rs) {
	case 0:
	case 4:
		for i, r := range rs {
			switch len(r) {
			case 0:
			case 48:
				p.TDX.RTMRs[i] = (*[48]byte)(r)
			default:
				return domain.Policy{}, errs.Newf(errs.Invalid, "tdx.rtmrs[%d]: %d bytes; an RTMR is 48 (or empty: any value)", i, len(r))
			}
		}
	default:
		return domain.Policy{}, errs.Newf(errs.Invalid, "tdx.rtmrs: %d entries; give none or four (RTMR0 to RTMR3, empty for any value)", len(rs))
	}
	sn := in.GetSevSnp()
	p.SNP.AllowDebug, p.SNP.MinTCB = sn.GetAllowDebug(), sn.GetMinTcb()
	if p.SNP.Measurements, err = measurements("sev_snp.measurements", sn.GetMeasurements()); err != nil {
		return domain.Policy{}, err
	}
	switch h := sn.GetHostData(); len(h) {
	case 0:
	case 32:
		p.SNP.HostData = (*[32]byte)(h)
	default:
		return domain.Policy{}, errs.Newf(errs.Invalid, "sev_snp.host_data: %d bytes; HOST_DATA is 32", len(h))
	}
	return p, nil
}

// measurements reads 48-byte measurements.
func measurements(field string, in [][]byte) ([][48]byte, error) {
	var out [][48]byte
	for i, m := range in {
		if len(m) != 48 {
			return nil, errs.Newf(errs.Invalid, "%s[%d]: %d bytes; a measurement is 48", field, i, len(m))
		}
		out = append(out, [48]byte(m))
	}
	return out, nil
}

// Event is an event's wire form: its account and protobuf form, or the
// audit record it is.
func Event(ev domain.Event) events.Outgoing {
	switch e := ev.(type) {
	case domain.AttestationSucceeded:
		return events.Outgoing{AccountID: e.Verdict.AccountID, Payload: &attestationv1.AttestationSucceeded{Verdict: VerdictToProto(e.Verdict)}}
	case domain.AttestationFailed:
		return events.Outgoing{AccountID: e.Verdict.AccountID, Payload: &attestationv1.AttestationFailed{Verdict: VerdictToProto(e.Verdict)}}
	case domain.PolicyChanged:
		return events.Outgoing{AccountID: e.AccountID, Payload: &attestationv1.PolicyChanged{AccountId: e.AccountID, Policy: PolicyToProto(e.Policy)}}
	case domain.Audited:
		return events.Outgoing{Audit: &e.Entry}
	}
	panic(fmt.Sprintf("wire: no wire form for event %T", ev))
}
