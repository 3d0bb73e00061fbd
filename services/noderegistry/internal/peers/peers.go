// Package peers adapts the services the node registry calls to the ports
// its app declares: the attestation service and the CA.
package peers

import (
	"context"

	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/app"
)

// Attestation asks the attestation service to verify evidence.
type Attestation struct {
	C *attestationv1.AttestationClient
}

var _ app.Attestation = Attestation{}

// Verify implements app.Attestation.
func (a Attestation) Verify(ctx context.Context, accountID string, quote, binding, nonce []byte) (app.Verdict, error) {
	resp, err := a.C.Verify(ctx, &attestationv1.VerifyRequest{AccountId: accountID, Quote: quote, Binding: binding, Nonce: nonce})
	if err != nil {
		return app.Verdict{}, err
	}
	v := resp.GetVerdict()
	return app.Verdict{ID: v.GetId(), OK: v.GetOk(), Reason: v.GetReason(), Error: v.GetError(), Simulated: v.GetSimulated(),
		VerifiedAt: v.GetVerifiedAt().AsTime()}, nil
}

// RequiresNodeAttestation implements app.Attestation: it reads the
// account's policy (the default one, which does not, when it set none).
func (a Attestation) RequiresNodeAttestation(ctx context.Context, accountID string) (bool, error) {
	resp, err := a.C.GetPolicy(ctx, &attestationv1.GetPolicyRequest{AccountId: accountID})
	if err != nil {
		return false, err
	}
	return resp.GetPolicy().GetRequireNodeAttestation(), nil
}

// IssueSimulatedQE implements app.Attestation.
func (a Attestation) IssueSimulatedQE(ctx context.Context, accountID string) ([]byte, error) {
	resp, err := a.C.IssueSimulatedQE(ctx, &attestationv1.IssueSimulatedQERequest{AccountId: accountID})
	if err != nil {
		return nil, err
	}
	return resp.GetQe(), nil
}

// CA asks the CA service for nodes' certificates and their revocation.
type CA struct{ C *cav1.CAClient }

var _ app.CA = CA{}

// IssueNodeCertificate implements app.CA.
func (c CA) IssueNodeCertificate(ctx context.Context, accountID, nodeID string, csr []byte) (app.Certificate, error) {
	resp, err := c.C.IssueNodeCertificate(ctx, &cav1.IssueNodeCertificateRequest{AccountId: accountID, NodeId: nodeID, Csr: csr})
	if err != nil {
		return app.Certificate{}, err
	}
	return app.Certificate{Serial: resp.GetCertificate().GetSerial(), DER: resp.GetCertificate().GetDer(), ChainPEM: resp.GetChainPem()}, nil
}

// RevokeCertificate implements app.CA.
func (c CA) RevokeCertificate(ctx context.Context, accountID, serial, reason string) error {
	_, err := c.C.RevokeCertificate(ctx, &cav1.RevokeCertificateRequest{AccountId: accountID, Serial: serial, Reason: reason})
	return err
}

// Certificate implements app.CA.
func (c CA) Certificate(ctx context.Context, accountID, serial string) (app.Certificate, error) {
	resp, err := c.C.GetCertificate(ctx, &cav1.GetCertificateRequest{AccountId: accountID, Serial: serial})
	if err != nil {
		return app.Certificate{}, err
	}
	got := resp.GetCertificate()
	return app.Certificate{Serial: got.GetSerial(), DER: got.GetDer(), Kind: got.GetKind(), SubjectID: got.GetSubjectId(), NodeID: got.GetNodeId(),
		ImageID: got.GetImageId(), MRENCLAVE: got.GetMrenclave(), Revoked: got.GetRevoked()}, nil
}
