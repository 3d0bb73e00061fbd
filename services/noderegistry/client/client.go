// Package client is the node registry's API over NATS: its method table,
// shared with the server, and a typed client for the gateway and peers.
package client

import (
	"context"

	"github.com/nats-io/nats.go"

	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
)

// Service is the name of the service on the wire.
const Service = "noderegistry"

// The methods, one per request subject cloister.noderegistry.v1.<Name>.
var (
	// CreateJoinToken, ListJoinTokens and RevokeJoinToken are for account
	// members; the gateway authorizes them (node.token.*) before calling.
	CreateJoinToken = natsrpc.NewMethod[*noderegistryv1.CreateJoinTokenRequest, *noderegistryv1.CreateJoinTokenResponse](Service, "CreateJoinToken")
	ListJoinTokens  = natsrpc.NewMethod[*noderegistryv1.ListJoinTokensRequest, *noderegistryv1.ListJoinTokensResponse](Service, "ListJoinTokens")
	RevokeJoinToken = natsrpc.NewMethod[*noderegistryv1.RevokeJoinTokenRequest, *noderegistryv1.RevokeJoinTokenResponse](Service, "RevokeJoinToken")
	// Enroll comes from a node agent: the join token is its credential.
	Enroll = natsrpc.NewMethod[*noderegistryv1.EnrollRequest, *noderegistryv1.EnrollResponse](Service, "Enroll")
	// SimulatedQEForToken comes from a node agent in simulation mode before
	// it enrols: the join token is its credential; no use is taken.
	SimulatedQEForToken = natsrpc.NewMethod[*noderegistryv1.SimulatedQEForTokenRequest, *noderegistryv1.SimulatedQEForTokenResponse](Service, "SimulatedQEForToken")
	// Heartbeat and AuthenticateNode come from the gateway's node-facing
	// (mTLS) endpoints, with the identity of the client certificate.
	Heartbeat        = natsrpc.NewMethod[*noderegistryv1.HeartbeatRequest, *noderegistryv1.HeartbeatResponse](Service, "Heartbeat")
	AuthenticateNode = natsrpc.NewMethod[*noderegistryv1.AuthenticateNodeRequest, *noderegistryv1.AuthenticateNodeResponse](Service, "AuthenticateNode")
	// Reattest comes from the gateway's POST /v1/node/attest: a node's
	// periodic re-attestation; a refusal marks the node untrusted.
	Reattest = natsrpc.NewMethod[*noderegistryv1.ReattestRequest, *noderegistryv1.ReattestResponse](Service, "Reattest")
	// ListNodes, GetNode and DeregisterNode are for account members; the
	// gateway authorizes them (node.list, node.deregister).
	ListNodes      = natsrpc.NewMethod[*noderegistryv1.ListNodesRequest, *noderegistryv1.ListNodesResponse](Service, "ListNodes")
	GetNode        = natsrpc.NewMethod[*noderegistryv1.GetNodeRequest, *noderegistryv1.GetNodeResponse](Service, "GetNode")
	DeregisterNode = natsrpc.NewMethod[*noderegistryv1.DeregisterNodeRequest, *noderegistryv1.DeregisterNodeResponse](Service, "DeregisterNode")
)

// Client calls the node registry over NATS.
type Client struct{ nc *nats.Conn }

// New returns a client on nc.
func New(nc *nats.Conn) *Client { return &Client{nc: nc} }

func (c *Client) CreateJoinToken(ctx context.Context, r *noderegistryv1.CreateJoinTokenRequest) (*noderegistryv1.CreateJoinTokenResponse, error) {
	return CreateJoinToken.Invoke(ctx, c.nc, r)
}
func (c *Client) ListJoinTokens(ctx context.Context, r *noderegistryv1.ListJoinTokensRequest) (*noderegistryv1.ListJoinTokensResponse, error) {
	return ListJoinTokens.Invoke(ctx, c.nc, r)
}
func (c *Client) RevokeJoinToken(ctx context.Context, r *noderegistryv1.RevokeJoinTokenRequest) (*noderegistryv1.RevokeJoinTokenResponse, error) {
	return RevokeJoinToken.Invoke(ctx, c.nc, r)
}
func (c *Client) Enroll(ctx context.Context, r *noderegistryv1.EnrollRequest) (*noderegistryv1.EnrollResponse, error) {
	return Enroll.Invoke(ctx, c.nc, r)
}
func (c *Client) SimulatedQEForToken(ctx context.Context, r *noderegistryv1.SimulatedQEForTokenRequest) (*noderegistryv1.SimulatedQEForTokenResponse, error) {
	return SimulatedQEForToken.Invoke(ctx, c.nc, r)
}
func (c *Client) Heartbeat(ctx context.Context, r *noderegistryv1.HeartbeatRequest) (*noderegistryv1.HeartbeatResponse, error) {
	return Heartbeat.Invoke(ctx, c.nc, r)
}
func (c *Client) AuthenticateNode(ctx context.Context, r *noderegistryv1.AuthenticateNodeRequest) (*noderegistryv1.AuthenticateNodeResponse, error) {
	return AuthenticateNode.Invoke(ctx, c.nc, r)
}
func (c *Client) Reattest(ctx context.Context, r *noderegistryv1.ReattestRequest) (*noderegistryv1.ReattestResponse, error) {
	return Reattest.Invoke(ctx, c.nc, r)
}
func (c *Client) ListNodes(ctx context.Context, r *noderegistryv1.ListNodesRequest) (*noderegistryv1.ListNodesResponse, error) {
	return ListNodes.Invoke(ctx, c.nc, r)
}
func (c *Client) GetNode(ctx context.Context, r *noderegistryv1.GetNodeRequest) (*noderegistryv1.GetNodeResponse, error) {
	return GetNode.Invoke(ctx, c.nc, r)
}
func (c *Client) DeregisterNode(ctx context.Context, r *noderegistryv1.DeregisterNodeRequest) (*noderegistryv1.DeregisterNodeResponse, error) {
	return DeregisterNode.Invoke(ctx, c.nc, r)
}
