// Package client is the image converter's API over NATS: its method
// table, shared with the server, and a typed client for peers.
package client

import (
	"context"

	"github.com/nats-io/nats.go"

	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
)

// Service is the name of the service on the wire.
const Service = "imageconverter"

// The methods, one per request subject cloister.imageconverter.v1.<Name>.
var (
	CreateApp     = natsrpc.NewMethod[*imageconverterv1.CreateAppRequest, *imageconverterv1.CreateAppResponse](Service, "CreateApp")
	GetApp        = natsrpc.NewMethod[*imageconverterv1.GetAppRequest, *imageconverterv1.GetAppResponse](Service, "GetApp")
	ListApps      = natsrpc.NewMethod[*imageconverterv1.ListAppsRequest, *imageconverterv1.ListAppsResponse](Service, "ListApps")
	UpdateApp     = natsrpc.NewMethod[*imageconverterv1.UpdateAppRequest, *imageconverterv1.UpdateAppResponse](Service, "UpdateApp")
	DeleteApp     = natsrpc.NewMethod[*imageconverterv1.DeleteAppRequest, *imageconverterv1.DeleteAppResponse](Service, "DeleteApp")
	GetSigningKey = natsrpc.NewMethod[*imageconverterv1.GetSigningKeyRequest, *imageconverterv1.GetSigningKeyResponse](Service, "GetSigningKey")

	ConvertImage = natsrpc.NewMethod[*imageconverterv1.ConvertImageRequest, *imageconverterv1.ConvertImageResponse](Service, "ConvertImage")
	ListImages   = natsrpc.NewMethod[*imageconverterv1.ListImagesRequest, *imageconverterv1.ListImagesResponse](Service, "ListImages")
	GetImage     = natsrpc.NewMethod[*imageconverterv1.GetImageRequest, *imageconverterv1.GetImageResponse](Service, "GetImage")
	DeleteImage  = natsrpc.NewMethod[*imageconverterv1.DeleteImageRequest, *imageconverterv1.DeleteImageResponse](Service, "DeleteImage")

	PutRegistryCredential    = natsrpc.NewMethod[*imageconverterv1.PutRegistryCredentialRequest, *imageconverterv1.PutRegistryCredentialResponse](Service, "PutRegistryCredential")
	ListRegistryCredentials  = natsrpc.NewMethod[*imageconverterv1.ListRegistryCredentialsRequest, *imageconverterv1.ListRegistryCredentialsResponse](Service, "ListRegistryCredentials")
	DeleteRegistryCredential = natsrpc.NewMethod[*imageconverterv1.DeleteRegistryCredentialRequest, *imageconverterv1.DeleteRegistryCredentialResponse](Service, "DeleteRegistryCredential")
)

// Client calls the image converter over NATS.
type Client struct{ nc *nats.Conn }

// New returns a client on nc.
func New(nc *nats.Conn) *Client { return &Client{nc: nc} }

func (c *Client) CreateApp(ctx context.Context, r *imageconverterv1.CreateAppRequest) (*imageconverterv1.CreateAppResponse, error) {
	return CreateApp.Invoke(ctx, c.nc, r)
}
func (c *Client) GetApp(ctx context.Context, r *imageconverterv1.GetAppRequest) (*imageconverterv1.GetAppResponse, error) {
	return GetApp.Invoke(ctx, c.nc, r)
}
func (c *Client) ListApps(ctx context.Context, r *imageconverterv1.ListAppsRequest) (*imageconverterv1.ListAppsResponse, error) {
	return ListApps.Invoke(ctx, c.nc, r)
}
func (c *Client) UpdateApp(ctx context.Context, r *imageconverterv1.UpdateAppRequest) (*imageconverterv1.UpdateAppResponse, error) {
	return UpdateApp.Invoke(ctx, c.nc, r)
}
func (c *Client) DeleteApp(ctx context.Context, r *imageconverterv1.DeleteAppRequest) (*imageconverterv1.DeleteAppResponse, error) {
	return DeleteApp.Invoke(ctx, c.nc, r)
}
func (c *Client) GetSigningKey(ctx context.Context, r *imageconverterv1.GetSigningKeyRequest) (*imageconverterv1.GetSigningKeyResponse, error) {
	return GetSigningKey.Invoke(ctx, c.nc, r)
}
func (c *Client) ConvertImage(ctx context.Context, r *imageconverterv1.ConvertImageRequest) (*imageconverterv1.ConvertImageResponse, error) {
	return ConvertImage.Invoke(ctx, c.nc, r)
}
func (c *Client) ListImages(ctx context.Context, r *imageconverterv1.ListImagesRequest) (*imageconverterv1.ListImagesResponse, error) {
	return ListImages.Invoke(ctx, c.nc, r)
}
func (c *Client) GetImage(ctx context.Context, r *imageconverterv1.GetImageRequest) (*imageconverterv1.GetImageResponse, error) {
	return GetImage.Invoke(ctx, c.nc, r)
}
func (c *Client) DeleteImage(ctx context.Context, r *imageconverterv1.DeleteImageRequest) (*imageconverterv1.DeleteImageResponse, error) {
	return DeleteImage.Invoke(ctx, c.nc, r)
}
func (c *Client) PutRegistryCredential(ctx context.Context, r *imageconverterv1.PutRegistryCredentialRequest) (*imageconverterv1.PutRegistryCredentialResponse, error) {
	return PutRegistryCredential.Invoke(ctx, c.nc, r)
}
func (c *Client) ListRegistryCredentials(ctx context.Context, r *imageconverterv1.ListRegistryCredentialsRequest) (*imageconverterv1.ListRegistryCredentialsResponse, error) {
	return ListRegistryCredentials.Invoke(ctx, c.nc, r)
}
func (c *Client) DeleteRegistryCredential(ctx context.Context, r *imageconverterv1.DeleteRegistryCredentialRequest) (*imageconverterv1.DeleteRegistryCredentialResponse, error) {
	return DeleteRegistryCredential.Invoke(ctx, c.nc, r)
}
