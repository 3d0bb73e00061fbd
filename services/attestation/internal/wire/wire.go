// Package wire converts the attestation service's domain values to and
// from their protobuf forms, for its endpoints and its events alike.
package wire

import (
	"fmt"

	"github.com/cloister-cc/cloister/libs/events"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/services/attestation/internal/domain"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// VerdictToProto converts a verdict.
func VerdictToProto(v domain.Verdict) *attestationv1.Verdict {
	return &attestationv1.Verdict{
		Id: v.ID, AccountId: v.AccountID, Ok: v.OK, Reason: v.Reason, Error: v.Error, TcbStatus: string(v.TCBStatus),
		Advisories: v.Advisories, Mrenclave: v.MRENCLAVE[:], Mrsigner: v.MRSIGNER[:], Isvprodid: uint32(v.ISVProdID),
		Isvsvn: uint32(v.ISVSVN), Debug: v.Debug, Simulated: v.Simulated, ReportData: v.ReportData[:], Fmspc: v.FMSPC[:],
		VerifiedAt: timestamppb.New(v.VerifiedAt), AppId: v.AppID, ImageId: v.ImageID,
	}
}

// PolicyToProto converts a policy.
func PolicyToProto(p domain.Policy) *attestationv1.Policy {
	out := &attestationv1.Policy{AllowDebug: p.AllowDebug, AllowSimulation: p.AllowSimulation, MinIsvsvn: uint32(p.MinISVSVN),
		RequireNodeAttestation: p.RequireNodeAttestation}
	for _, s := range p.AcceptStatuses {
		out.AcceptStatuses = append(out.AcceptStatuses, string(s))
	}
	return out
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
