package gateway

import (
	"encoding/hex"
	"net/http"
	"time"

	"github.com/cloister-cc/cloister/libs/errs"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

func toPolicy(p *attestationv1.Policy) api.AttestationPolicy {
	out := api.AttestationPolicy{AcceptStatuses: p.GetAcceptStatuses(), AllowDebug: p.GetAllowDebug(),
		AllowSimulation: p.GetAllowSimulation(), MinISVSVN: p.GetMinIsvsvn(), RequireNodeAttestation: p.GetRequireNodeAttestation()}
	if out.AcceptStatuses == nil {
		out.AcceptStatuses = []string{}
	}
	return out
}

func toVerdict(v *attestationv1.Verdict) api.Verdict {
	return api.Verdict{ID: v.GetId(), OK: v.GetOk(), Reason: v.GetReason(), Error: v.GetError(), TCBStatus: v.GetTcbStatus(),
		Advisories: append([]string{}, v.GetAdvisories()...), MRENCLAVE: hex.EncodeToString(v.GetMrenclave()),
		MRSIGNER: hex.EncodeToString(v.GetMrsigner()), ISVProdID: v.GetIsvprodid(), ISVSVN: v.GetIsvsvn(), Debug: v.GetDebug(),
		Simulated: v.GetSimulated(), ReportData: hex.EncodeToString(v.GetReportData()), FMSPC: hex.EncodeToString(v.GetFmspc()),
		VerifiedAt: v.GetVerifiedAt().AsTime().UTC()}
}

func (g *Gateway) getAttestationPolicy(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.attestation.GetPolicy(r.Context(), &attestationv1.GetPolicyRequest{AccountId: r.PathValue("account_id")})
	return answer(err, http.StatusOK, func() any { return toPolicy(resp.GetPolicy()) })
}

func (g *Gateway) setAttestationPolicy(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.AttestationPolicy
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.attestation.SetPolicy(r.Context(), &attestationv1.SetPolicyRequest{AccountId: r.PathValue("account_id"), Actor: p.proto(),
		Policy: &attestationv1.Policy{AcceptStatuses: b.AcceptStatuses, AllowDebug: b.AllowDebug, AllowSimulation: b.AllowSimulation, MinIsvsvn: b.MinISVSVN,
			RequireNodeAttestation: b.RequireNodeAttestation}})
	return answer(err, http.StatusOK, func() any { return toPolicy(resp.GetPolicy()) })
}

func (g *Gateway) verifyEvidence(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.VerifyEvidence
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.attestation.Verify(r.Context(), &attestationv1.VerifyRequest{AccountId: r.PathValue("account_id"),
		Quote: b.Quote, Binding: b.Binding, Nonce: b.Nonce})
	return answer(err, http.StatusOK, func() any { return toVerdict(resp.GetVerdict()) })
}

func (g *Gateway) putCollateral(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.Collateral
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	if len(b.CollateralJSON) == 0 && len(b.TCBInfo) == 0 {
		return reply{}, errs.New(errs.Invalid, "send collateral_json, or tcb_info with qe_identity, signing_chain, root_crl and pck_crl")
	}
	resp, err := g.attestation.PutCollateral(r.Context(), &attestationv1.PutCollateralRequest{CollateralJson: b.CollateralJSON,
		TcbInfo: b.TCBInfo, QeIdentity: b.QEIdentity, SigningChain: []byte(b.SigningChain), RootCrl: b.RootCRL, PckCrl: b.PCKCRL, Actor: p.proto()})
	if err != nil {
		return reply{}, err
	}
	return reply{http.StatusOK, api.CollateralStored{FMSPC: hex.EncodeToString(resp.GetFmspc()),
		NextUpdate: resp.GetNextUpdate().AsTime().UTC().Truncate(time.Second)}}, nil
}
