// Package client is the CA service's API over NATS: its method table,
// shared with the server, and a typed client for peers.
package client

import (
	"context"

	"github.com/nats-io/nats.go"

	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
)

// Service is the name of the service on the wire.
const Service = "ca"

// The methods, one per request subject cloister.ca.v1.<Name>.
var (
	GetCA  = natsrpc.NewMethod[*cav1.GetCARequest, *cav1.GetCAResponse](Service, "GetCA")
	GetCRL = natsrpc.NewMethod[*cav1.GetCRLRequest, *cav1.GetCRLResponse](Service, "GetCRL")
)

// Client calls the CA service over NATS.
type Client struct{ nc *nats.Conn }

// New returns a client on nc.
func New(nc *nats.Conn) *Client { return &Client{nc: nc} }

func (c *Client) GetCA(ctx context.Context, r *cav1.GetCARequest) (*cav1.GetCAResponse, error) {
	return GetCA.Invoke(ctx, c.nc, r)
}
func (c *Client) GetCRL(ctx context.Context, r *cav1.GetCRLRequest) (*cav1.GetCRLResponse, error) {
	return GetCRL.Invoke(ctx, c.nc, r)
}
