// Package client names the attestation service's API over NATS for its peers
// and its server: the method table and the typed client are generated
// from proto/cloister/attestation/v1 into libs/gen by protoc-gen-natsrpc
// (`make proto`); these are their short names.
package client

import (
	"github.com/nats-io/nats.go"

	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
)

// Service is the name of the service on the wire.
const Service = attestationv1.AttestationServiceName

// The methods, one per request subject cloister.attestation.v1.<Name>.
var (
	Verify            = attestationv1.AttestationVerify
	GetVerdict        = attestationv1.AttestationGetVerdict
	GetPolicy         = attestationv1.AttestationGetPolicy
	SetPolicy         = attestationv1.AttestationSetPolicy
	PutCollateral     = attestationv1.AttestationPutCollateral
	GetSimulationRoot = attestationv1.AttestationGetSimulationRoot
	IssueSimulatedQE  = attestationv1.AttestationIssueSimulatedQE
)

// Client calls the attestation service over NATS.
type Client = attestationv1.AttestationClient

// New returns a client on nc.
func New(nc *nats.Conn) *Client { return attestationv1.NewAttestationClient(nc) }
