package gateway

import (
	"encoding/hex"
	"net/http"

	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/idempotency"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

func (g *Gateway) createJoinToken(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.CreateJoinToken
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.nodes.CreateJoinToken(r.Context(), &noderegistryv1.CreateJoinTokenRequest{Actor: p.proto(), AccountId: r.PathValue("account_id"),
		Name: b.Name, Labels: b.Labels, TtlSeconds: b.TTLSeconds, MaxUses: b.MaxUses, RequireAttestation: b.RequireAttestation,
		IdempotencyKey: r.Header.Get(idempotency.Header)})
	if err != nil {
		return reply{}, err
	}
	out := toJoinToken(resp.GetToken())
	out.Secret = resp.GetSecret()
	return reply{http.StatusCreated, out}, nil
}

func (g *Gateway) listJoinTokens(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.nodes.ListJoinTokens(r.Context(), &noderegistryv1.ListJoinTokensRequest{Actor: p.proto(), AccountId: r.PathValue("account_id")})
	return answer(err, http.StatusOK, func() any { return list(resp.GetTokens(), "", toJoinToken) })
}

func (g *Gateway) revokeJoinToken(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.nodes.RevokeJoinToken(r.Context(), &noderegistryv1.RevokeJoinTokenRequest{Actor: p.proto(), AccountId: r.PathValue("account_id"),
		TokenId: r.PathValue("token_id")})
	return answer(err, http.StatusOK, func() any { return toJoinToken(resp.GetToken()) })
}

func (g *Gateway) listNodes(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.nodes.ListNodes(r.Context(), &noderegistryv1.ListNodesRequest{Actor: p.proto(), AccountId: r.PathValue("account_id")})
	return answer(err, http.StatusOK, func() any { return list(resp.GetNodes(), "", toNode) })
}

func (g *Gateway) getNode(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.nodes.GetNode(r.Context(), &noderegistryv1.GetNodeRequest{Actor: p.proto(), AccountId: r.PathValue("account_id"), NodeId: r.PathValue("node_id")})
	return answer(err, http.StatusOK, func() any { return toNode(resp.GetNode()) })
}

func (g *Gateway) deregisterNode(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.nodes.DeregisterNode(r.Context(), &noderegistryv1.DeregisterNodeRequest{Actor: p.proto(), AccountId: r.PathValue("account_id"),
		NodeId: r.PathValue("node_id")})
	return answer(err, http.StatusOK, func() any { return toNode(resp.GetNode()) })
}

// enroll serves POST /v1/agent/enroll: the join token in the body is the
// node agent's only credential, checked by the node registry.
func (g *Gateway) enroll(w http.ResponseWriter, r *http.Request) (reply, error) {
	var b api.Enroll
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.nodes.Enroll(r.Context(), &noderegistryv1.EnrollRequest{JoinToken: b.JoinToken, NodeName: b.NodeName, HostName: b.HostName,
		Csr: []byte(b.CSR), Evidence: b.Evidence, Nonce: b.Nonce, Tee: b.TEE, EvidenceAux: b.EvidenceAux})
	return answer(err, http.StatusCreated, func() any { return api.Enrolled{Node: toNode(resp.GetNode()), ChainPEM: string(resp.GetChainPem())} })
}

// agentSimulatedQE serves POST /v1/agent/simulation-qe: a simulated
// quoting enclave for a node agent in simulation mode before it enrols, so
// that it can present evidence at enrolment. The join token is its
// credential, checked by the node registry as for an enrolment but without
// taking a use; the attestation service refuses unless the deployment runs
// simulation and the account's policy allows it.
func (g *Gateway) agentSimulatedQE(w http.ResponseWriter, r *http.Request) (reply, error) {
	var b api.AgentSimulatedQE
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.nodes.SimulatedQEForToken(r.Context(), &noderegistryv1.SimulatedQEForTokenRequest{JoinToken: b.JoinToken})
	return answer(err, http.StatusCreated, func() any { return api.SimulatedQE{QE: resp.GetQe()} })
}

// agentNonce serves POST /v1/agent/nonce: a nonce for a node agent to
// bind into the evidence of its enrolment, on its join token's word
// (checked as for an enrolment, without taking a use).
func (g *Gateway) agentNonce(w http.ResponseWriter, r *http.Request) (reply, error) {
	var b api.AgentNonce
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.nodes.CreateEnrolmentNonce(r.Context(), &noderegistryv1.CreateEnrolmentNonceRequest{JoinToken: b.JoinToken})
	return answer(err, http.StatusCreated, func() any { return toNonce(resp.GetNonce()) })
}

func toNonce(n *noderegistryv1.NodeNonce) api.Nonce {
	return api.Nonce{Nonce: n.GetNonce(), ExpiresAt: ts(n.GetExpiresAt())}
}

func toJoinToken(t *noderegistryv1.JoinToken) api.JoinToken {
	out := api.JoinToken{ID: t.GetId(), Name: t.GetName(), Labels: t.GetLabels(), ExpiresAt: ts(t.GetExpiresAt()), MaxUses: t.GetMaxUses(),
		Uses: t.GetUses(), Revoked: t.GetRevoked(), RequireAttestation: t.GetRequireAttestation(), CreatedAt: ts(t.GetCreatedAt()), CreatedBy: t.GetCreatedBy()}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	return out
}

func toNode(n *noderegistryv1.Node) api.Node {
	out := api.Node{ID: n.GetId(), Name: n.GetName(), Labels: n.GetLabels(), Status: n.GetStatus(), StatusReason: n.GetStatusReason(),
		JoinTokenID: n.GetJoinTokenId(), CertificateSerial: n.GetCertificateSerial(), Attested: n.GetAttested(), Simulated: n.GetSimulated(),
		TEE: n.GetTee(), Measurement: hex.EncodeToString(n.GetMeasurement()),
		VerdictID: n.GetVerdictId(), EnrolledAt: ts(n.GetEnrolledAt()), Instances: []api.Instance{}}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if n.GetLastHeartbeat() != nil {
		t := ts(n.GetLastHeartbeat())
		out.LastHeartbeat = &t
	}
	if n.GetLastAttested() != nil {
		t := ts(n.GetLastAttested())
		out.LastAttested = &t
	}
	for _, i := range n.GetInstances() {
		out.Instances = append(out.Instances, api.Instance{ID: i.GetId(), AppID: i.GetAppId(), ImageID: i.GetImageId(),
			MRENCLAVE: hex.EncodeToString(i.GetMrenclave()), Status: i.GetStatus(), StartedAt: ts(i.GetStartedAt()), LastSeen: ts(i.GetLastSeen()),
			CertificateSerial: i.GetCertificateSerial()})
	}
	return out
}
