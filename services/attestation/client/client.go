// Package client is the attestation service's API over NATS: its method
// table, shared with the server, and a typed client for peers.
package client

import (
	"context"

	"github.com/nats-io/nats.go"

	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
)

// Service is the name of the service on the wire.
const Service = "attestation"

// The methods, one per request subject cloister.attestation.v1.<Name>.
var (
	Verify            = natsrpc.NewMethod[*attestationv1.VerifyRequest, *attestationv1.VerifyResponse](Service, "Verify")
	GetVerdict        = natsrpc.NewMethod[*attestationv1.GetVerdictRequest, *attestationv1.GetVerdictResponse](Service, "GetVerdict")
	GetPolicy         = natsrpc.NewMethod[*attestationv1.GetPolicyRequest, *attestationv1.GetPolicyResponse](Service, "GetPolicy")
	SetPolicy         = natsrpc.NewMethod[*attestationv1.SetPolicyRequest, *attestationv1.SetPolicyResponse](Service, "SetPolicy")
	PutCollateral     = natsrpc.NewMethod[*attestationv1.PutCollateralRequest, *attestationv1.PutCollateralResponse](Service, "PutCollateral")
	GetSimulationRoot = natsrpc.NewMethod[*attestationv1.GetSimulationRootRequest, *attestationv1.GetSimulationRootResponse](Service, "GetSimulationRoot")
	IssueSimulatedQE  = natsrpc.NewMethod[*attestationv1.IssueSimulatedQERequest, *attestationv1.IssueSimulatedQEResponse](Service, "IssueSimulatedQE")
)

// Client calls the attestation service over NATS.
type Client struct{ nc *nats.Conn }

// New returns a client on nc.
func New(nc *nats.Conn) *Client { return &Client{nc: nc} }

func (c *Client) Verify(ctx context.Context, r *attestationv1.VerifyRequest) (*attestationv1.VerifyResponse, error) {
	return Verify.Invoke(ctx, c.nc, r)
}
func (c *Client) GetVerdict(ctx context.Context, r *attestationv1.GetVerdictRequest) (*attestationv1.GetVerdictResponse, error) {
	return GetVerdict.Invoke(ctx, c.nc, r)
}
func (c *Client) GetPolicy(ctx context.Context, r *attestationv1.GetPolicyRequest) (*attestationv1.GetPolicyResponse, error) {
	return GetPolicy.Invoke(ctx, c.nc, r)
}
func (c *Client) SetPolicy(ctx context.Context, r *attestationv1.SetPolicyRequest) (*attestationv1.SetPolicyResponse, error) {
	return SetPolicy.Invoke(ctx, c.nc, r)
}
func (c *Client) PutCollateral(ctx context.Context, r *attestationv1.PutCollateralRequest) (*attestationv1.PutCollateralResponse, error) {
	return PutCollateral.Invoke(ctx, c.nc, r)
}
func (c *Client) GetSimulationRoot(ctx context.Context, r *attestationv1.GetSimulationRootRequest) (*attestationv1.GetSimulationRootResponse, error) {
	return GetSimulationRoot.Invoke(ctx, c.nc, r)
}

// IssueSimulatedQE returns a simulated quoting enclave (sim.ParseQE) for a
// node agent of the account in simulation mode.
func (c *Client) IssueSimulatedQE(ctx context.Context, r *attestationv1.IssueSimulatedQERequest) (*attestationv1.IssueSimulatedQEResponse, error) {
	return IssueSimulatedQE.Invoke(ctx, c.nc, r)
}
