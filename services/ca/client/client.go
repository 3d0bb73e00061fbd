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
	// RotateIssuer is for admins, through the gateway.
	RotateIssuer = natsrpc.NewMethod[*cav1.RotateIssuerRequest, *cav1.RotateIssuerResponse](Service, "RotateIssuer")
	// IssueNodeCertificate is for the node registry only.
	IssueNodeCertificate = natsrpc.NewMethod[*cav1.IssueNodeCertificateRequest, *cav1.IssueNodeCertificateResponse](Service, "IssueNodeCertificate")
	// CreateNonce and IssueAppCertificate serve enclaves, through their node.
	CreateNonce         = natsrpc.NewMethod[*cav1.CreateNonceRequest, *cav1.CreateNonceResponse](Service, "CreateNonce")
	IssueAppCertificate = natsrpc.NewMethod[*cav1.IssueAppCertificateRequest, *cav1.IssueAppCertificateResponse](Service, "IssueAppCertificate")
	ListCertificates    = natsrpc.NewMethod[*cav1.ListCertificatesRequest, *cav1.ListCertificatesResponse](Service, "ListCertificates")
	GetCertificate      = natsrpc.NewMethod[*cav1.GetCertificateRequest, *cav1.GetCertificateResponse](Service, "GetCertificate")
	RevokeCertificate   = natsrpc.NewMethod[*cav1.RevokeCertificateRequest, *cav1.RevokeCertificateResponse](Service, "RevokeCertificate")
	OCSP                = natsrpc.NewMethod[*cav1.OCSPRequest, *cav1.OCSPResponse](Service, "OCSP")
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
func (c *Client) IssueNodeCertificate(ctx context.Context, r *cav1.IssueNodeCertificateRequest) (*cav1.IssueNodeCertificateResponse, error) {
	return IssueNodeCertificate.Invoke(ctx, c.nc, r)
}
func (c *Client) ListCertificates(ctx context.Context, r *cav1.ListCertificatesRequest) (*cav1.ListCertificatesResponse, error) {
	return ListCertificates.Invoke(ctx, c.nc, r)
}
func (c *Client) RevokeCertificate(ctx context.Context, r *cav1.RevokeCertificateRequest) (*cav1.RevokeCertificateResponse, error) {
	return RevokeCertificate.Invoke(ctx, c.nc, r)
}
func (c *Client) OCSP(ctx context.Context, r *cav1.OCSPRequest) (*cav1.OCSPResponse, error) {
	return OCSP.Invoke(ctx, c.nc, r)
}
func (c *Client) GetCertificate(ctx context.Context, r *cav1.GetCertificateRequest) (*cav1.GetCertificateResponse, error) {
	return GetCertificate.Invoke(ctx, c.nc, r)
}
func (c *Client) CreateNonce(ctx context.Context, r *cav1.CreateNonceRequest) (*cav1.CreateNonceResponse, error) {
	return CreateNonce.Invoke(ctx, c.nc, r)
}
func (c *Client) IssueAppCertificate(ctx context.Context, r *cav1.IssueAppCertificateRequest) (*cav1.IssueAppCertificateResponse, error) {
	return IssueAppCertificate.Invoke(ctx, c.nc, r)
}
func (c *Client) RotateIssuer(ctx context.Context, r *cav1.RotateIssuerRequest) (*cav1.RotateIssuerResponse, error) {
	return RotateIssuer.Invoke(ctx, c.nc, r)
}
