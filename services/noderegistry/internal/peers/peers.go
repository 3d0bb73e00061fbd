// Package peers adapts the services the node registry calls to the ports
// its app declares: the attestation service and the CA.
package peers

import (
	"context"
	"time"

	"github.com/cloister-cc/cloister/libs/cache/local"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/app"
)

// Attestation asks the attestation service to verify evidence. Whether an
// account's policy requires node attestation is kept in Policies for a
// moment (libs/cache/local), since enrolments come in bursts: the
// policy's PolicyChanged event drops it in every process (DropPolicy),
// and the TTL bounds how long a missed event leaves it stale.
type Attestation struct {
	C        *attestationv1.AttestationClient
	Policies *local.Map[bool] // nil: ask every time
}

// PolicyTTL is how long a policy's answer is kept by default.
const PolicyTTL = 2 * time.Second

// NewPolicies is the Policies map of a registry process, whose answers
// are kept for ttl.
func NewPolicies(ttl time.Duration) *local.Map[bool] { return local.New[bool](ttl, 10000) }

var _ app.Attestation = Attestation{}

// Verify implements app.Attestation.
func (a Attestation) Verify(ctx context.Context, accountID string, e app.Evidence, binding, nonce []byte) (app.Verdict, error) {
	resp, err := a.C.Verify(ctx, &attestationv1.VerifyRequest{AccountId: accountID, Quote: e.Quote, Tee: e.TEE, EvidenceAux: e.Aux,
		Binding: binding, Nonce: nonce})
	if err != nil {
		return app.Verdict{}, err
	}
	v := resp.GetVerdict()
	return app.Verdict{ID: v.GetId(), OK: v.GetOk(), Reason: v.GetReason(), Error: v.GetError(), Simulated: v.GetSimulated(),
		VerifiedAt: v.GetVerifiedAt().AsTime(), TEE: v.GetTee(), Measurement: v.GetMeasurement()}, nil
}

// RequiresNodeAttestation implements app.Attestation: it reads the
// account's policy (the default one, which does not, when it set none).
func (a Attestation) RequiresNodeAttestation(ctx context.Context, accountID string) (bool, error) {
	now := time.Now()
	var epoch uint64
	if a.Policies != nil {
		if required, ok := a.Policies.Get(accountID, now); ok {
			return required, nil
		}
		epoch = a.Policies.Epoch()
	}
	resp, err := a.C.GetPolicy(ctx, &attestationv1.GetPolicyRequest{AccountId: accountID})
	if err != nil {
		return false, err
	}
	required := resp.GetPolicy().GetRequireNodeAttestation()
	if a.Policies != nil {
		a.Policies.Put(accountID, required, now, epoch)
	}
	return required, nil
}

// DropPolicy forgets what the account's policy said: it changed.
func (a Attestation) DropPolicy(accountID string) {
	if a.Policies != nil {
		a.Policies.Drop(accountID)
	}
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
