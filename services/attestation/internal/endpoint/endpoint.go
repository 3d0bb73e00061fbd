// Package endpoint adapts the attestation service's app to its generated NATS server
// interface: each method converts its protobuf request to domain values
// (through wire), calls the app and converts the result back.
package endpoint

import (
	"context"

	"github.com/cloister-cc/cloister/libs/reply"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/events"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/services/attestation/internal/app"
	"github.com/cloister-cc/cloister/services/attestation/internal/wire"
)

// Server is the service behind the generated AttestationServer.
type Server struct {
	s       *app.Service
	simRoot []byte
}

var _ attestationv1.AttestationServer = (*Server)(nil)

func (sv *Server) GetSimulationRoot(context.Context, *attestationv1.GetSimulationRootRequest) (*attestationv1.GetSimulationRootResponse, error) {
	simRoot := sv.simRoot
	if simRoot == nil {
		return nil, errs.New(errs.NotFound, "simulation is not enabled in this deployment")
	}
	return &attestationv1.GetSimulationRootResponse{Certificate: simRoot}, nil
}

func (sv *Server) IssueSimulatedQE(ctx context.Context, r *attestationv1.IssueSimulatedQERequest) (*attestationv1.IssueSimulatedQEResponse, error) {
	qe, err := sv.s.IssueSimulatedQE(ctx, r.GetAccountId())
	return reply.With(err, func() *attestationv1.IssueSimulatedQEResponse { return &attestationv1.IssueSimulatedQEResponse{Qe: qe} })
}

func (sv *Server) Verify(ctx context.Context, r *attestationv1.VerifyRequest) (*attestationv1.VerifyResponse, error) {
	v, err := sv.s.Verify(ctx, r.GetAccountId(), app.Evidence{TEE: r.GetTee(), Quote: r.GetQuote(), Aux: r.GetEvidenceAux()},
		r.GetBinding(), r.GetNonce(), r.GetAppId())
	return reply.With(err, func() *attestationv1.VerifyResponse {
		return &attestationv1.VerifyResponse{Verdict: wire.VerdictToProto(v)}
	})
}

func (sv *Server) GetVerdict(ctx context.Context, r *attestationv1.GetVerdictRequest) (*attestationv1.GetVerdictResponse, error) {
	v, err := sv.s.GetVerdict(ctx, r.GetAccountId(), r.GetId())
	return reply.With(err, func() *attestationv1.GetVerdictResponse {
		return &attestationv1.GetVerdictResponse{Verdict: wire.VerdictToProto(v)}
	})
}

func (sv *Server) GetActivity(ctx context.Context, r *attestationv1.GetActivityRequest) (*attestationv1.GetActivityResponse, error) {
	hours, err := sv.s.GetActivity(ctx, r.GetAccountId())
	return reply.With(err, func() *attestationv1.GetActivityResponse {
		out := &attestationv1.GetActivityResponse{}
		for _, h := range hours {
			ph := &attestationv1.ActivityHour{Start: timestamppb.New(h.Start), Succeeded: h.Succeeded, Failed: h.Failed}
			for _, v := range h.Failures {
				ph.Failures = append(ph.Failures, wire.VerdictToProto(v))
			}
			out.Hours = append(out.Hours, ph)
		}
		return out
	})
}

func (sv *Server) GetPolicy(ctx context.Context, r *attestationv1.GetPolicyRequest) (*attestationv1.GetPolicyResponse, error) {
	p, err := sv.s.GetPolicy(ctx, r.GetAccountId())
	return reply.With(err, func() *attestationv1.GetPolicyResponse {
		return &attestationv1.GetPolicyResponse{Policy: wire.PolicyToProto(p)}
	})
}

func (sv *Server) SetPolicy(ctx context.Context, r *attestationv1.SetPolicyRequest) (*attestationv1.SetPolicyResponse, error) {
	p, err := wire.PolicyFromProto(r.GetPolicy())
	if err != nil {
		return nil, err
	}
	p, err = sv.s.SetPolicy(ctx, r.GetAccountId(), p, events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &attestationv1.SetPolicyResponse{Policy: wire.PolicyToProto(p)}, nil
}

func (sv *Server) PutVCEK(ctx context.Context, r *attestationv1.PutVCEKRequest) (*attestationv1.PutVCEKResponse, error) {
	v, err := sv.s.PutVCEK(ctx, r.GetVcek(), events.ActorOf(r.GetActor()))
	return reply.With(err, func() *attestationv1.PutVCEKResponse {
		return &attestationv1.PutVCEKResponse{Product: v.Product, Hwid: v.HWID, Tcb: v.TCB, NotAfter: timestamppb.New(v.NotAfter)}
	})
}

func (sv *Server) PutCollateral(ctx context.Context, r *attestationv1.PutCollateralRequest) (*attestationv1.PutCollateralResponse, error) {
	col, err := collateralFrom(r)
	if err != nil {
		return nil, err
	}
	info, err := sv.s.PutCollateral(ctx, col, events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &attestationv1.PutCollateralResponse{Fmspc: info.FMSPC[:], NextUpdate: timestamppb.New(info.NextUpdate)}, nil
}

// collateralFrom reads collateral in either of its accepted forms.
func collateralFrom(r *attestationv1.PutCollateralRequest) (*sgx.Collateral, error) {
	if len(r.GetCollateralJson()) > 0 {
		col, err := sgx.ParseCollateralJSON(r.GetCollateralJson())
		if err != nil {
			return nil, errs.Newf(errs.Invalid, "collateral_json: %v", err)
		}
		return col, nil
	}
	col := &sgx.Collateral{TCBInfoIssuerChain: r.GetSigningChain(), QEIdentityIssuerChain: r.GetSigningChain()}
	var err error
	if col.TCBInfoJSON, col.TCBInfoSignature, err = sgx.SplitPCSBody(r.GetTcbInfo()); err != nil {
		return nil, errs.Newf(errs.Invalid, "tcb_info: %v", err)
	}
	if col.QEIdentityJSON, col.QEIdentitySignature, err = sgx.SplitPCSBody(r.GetQeIdentity()); err != nil {
		return nil, errs.Newf(errs.Invalid, "qe_identity: %v", err)
	}
	for _, c := range []struct {
		name string
		in   []byte
		out  *[]byte
	}{{"root_crl", r.GetRootCrl(), &col.RootCACRL}, {"pck_crl", r.GetPckCrl(), &col.PCKCRL}} {
		crl, err := sgx.ParseCRL(c.in)
		if err != nil {
			return nil, errs.Newf(errs.Invalid, "%s: %v", c.name, err)
		}
		*c.out = crl.Raw
	}
	return col, nil
}

// New returns the endpoints of s; simRoot is the PEM of the simulation
// root certificate, nil when simulation is off.
func New(s *app.Service, simRoot []byte) *Server { return &Server{s: s, simRoot: simRoot} }
