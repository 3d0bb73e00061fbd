package gateway

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
	td := p.GetTdx()
	out.TDX = &api.TDXPolicy{AcceptStatuses: append([]string{}, td.GetAcceptStatuses()...), AllowDebug: td.GetAllowDebug(),
		MRTDs: hexes(td.GetMrtds()), RTMRs: hexes(td.GetRtmrs())}
	sn := p.GetSevSnp()
	out.SNP = &api.SNPPolicy{AllowDebug: sn.GetAllowDebug(), Measurements: hexes(sn.GetMeasurements()), HostData: hex.EncodeToString(sn.GetHostData())}
	if sn.GetMinTcb() != 0 {
		out.SNP.MinTCB = fmt.Sprintf("0x%016x", sn.GetMinTcb())
	}
	return out
}

// fromPolicy reads the policy someone wants to set; hex that does not
// decode is a 400 naming its field (sizes are the service's to check).
func fromPolicy(b api.AttestationPolicy) (*attestationv1.Policy, error) {
	out := &attestationv1.Policy{AcceptStatuses: b.AcceptStatuses, AllowDebug: b.AllowDebug, AllowSimulation: b.AllowSimulation,
		MinIsvsvn: b.MinISVSVN, RequireNodeAttestation: b.RequireNodeAttestation}
	var err error
	if td := b.TDX; td != nil {
		out.Tdx = &attestationv1.TDXPolicy{AcceptStatuses: td.AcceptStatuses, AllowDebug: td.AllowDebug}
		if out.Tdx.Mrtds, err = unhexes("tdx.mrtds", td.MRTDs); err != nil {
			return nil, err
		}
		if out.Tdx.Rtmrs, err = unhexes("tdx.rtmrs", td.RTMRs); err != nil {
			return nil, err
		}
	}
	if sn := b.SNP; sn != nil {
		out.SevSnp = &attestationv1.SNPPolicy{AllowDebug: sn.AllowDebug}
		if out.SevSnp.Measurements, err = unhexes("sev_snp.measurements", sn.Measurements); err != nil {
			return nil, err
		}
		if out.SevSnp.HostData, err = hex.DecodeString(sn.HostData); err != nil {
			return nil, errs.Newf(errs.Invalid, "sev_snp.host_data: not hex: %v", err)
		}
		if sn.MinTCB != "" {
			if out.SevSnp.MinTcb, err = strconv.ParseUint(strings.TrimPrefix(strings.ToLower(sn.MinTCB), "0x"), 16, 64); err != nil {
				return nil, errs.Newf(errs.Invalid, "sev_snp.min_tcb: %q is not a TCB_VERSION in hex (e.g. 0x7308000000000003)", sn.MinTCB)
			}
		}
	}
	return out, nil
}

// hexes is bs in hex, never nil.
func hexes(bs [][]byte) []string {
	out := []string{}
	for _, b := range bs {
		out = append(out, hex.EncodeToString(b))
	}
	return out
}

// unhexes decodes field's hex strings.
func unhexes(field string, ss []string) ([][]byte, error) {
	var out [][]byte
	for i, s := range ss {
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, errs.Newf(errs.Invalid, "%s[%d]: not hex: %v", field, i, err)
		}
		out = append(out, b)
	}
	return out, nil
}

func toVerdict(v *attestationv1.Verdict) api.Verdict {
	out := api.Verdict{ID: v.GetId(), OK: v.GetOk(), Reason: v.GetReason(), Error: v.GetError(), TCBStatus: v.GetTcbStatus(),
		Advisories: append([]string{}, v.GetAdvisories()...), MRENCLAVE: hex.EncodeToString(v.GetMrenclave()),
		MRSIGNER: hex.EncodeToString(v.GetMrsigner()), ISVProdID: v.GetIsvprodid(), ISVSVN: v.GetIsvsvn(), Debug: v.GetDebug(),
		Simulated: v.GetSimulated(), ReportData: hex.EncodeToString(v.GetReportData()), FMSPC: hex.EncodeToString(v.GetFmspc()),
		VerifiedAt: v.GetVerifiedAt().AsTime().UTC(), TEE: v.GetTee(), Measurement: hex.EncodeToString(v.GetMeasurement()),
		HostData: hex.EncodeToString(v.GetHostData())}
	if len(v.GetRtmrs()) > 0 {
		out.RTMRs = hexes(v.GetRtmrs())
	}
	return out
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
	policy, err := fromPolicy(b)
	if err != nil {
		return reply{}, err
	}
	resp, err := g.attestation.SetPolicy(r.Context(), &attestationv1.SetPolicyRequest{AccountId: r.PathValue("account_id"), Actor: p.proto(),
		Policy: policy})
	return answer(err, http.StatusOK, func() any { return toPolicy(resp.GetPolicy()) })
}

func (g *Gateway) verifyEvidence(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.VerifyEvidence
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.attestation.Verify(r.Context(), &attestationv1.VerifyRequest{AccountId: r.PathValue("account_id"),
		Quote: b.Quote, Binding: b.Binding, Nonce: b.Nonce, Tee: b.TEE, EvidenceAux: b.EvidenceAux})
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

func (g *Gateway) putVCEK(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.VCEK
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.attestation.PutVCEK(r.Context(), &attestationv1.PutVCEKRequest{Vcek: b.VCEK, Actor: p.proto()})
	return answer(err, http.StatusOK, func() any {
		return api.VCEKStored{Product: resp.GetProduct(), HWID: hex.EncodeToString(resp.GetHwid()), TCB: resp.GetTcb(),
			NotAfter: resp.GetNotAfter().AsTime().UTC()}
	})
}
