// Package client names the imageconverter service's API over NATS for its peers
// and its server: the method table and the typed client are generated
// from proto/cloister/imageconverter/v1 into libs/gen by protoc-gen-natsrpc
// (`make proto`); these are their short names.
package client

import (
	"github.com/nats-io/nats.go"

	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
)

// Service is the name of the service on the wire.
const Service = imageconverterv1.ImageConverterServiceName

// The methods, one per request subject cloister.imageconverter.v1.<Name>.
var (
	CreateApp                = imageconverterv1.ImageConverterCreateApp
	GetApp                   = imageconverterv1.ImageConverterGetApp
	ListApps                 = imageconverterv1.ImageConverterListApps
	UpdateApp                = imageconverterv1.ImageConverterUpdateApp
	DeleteApp                = imageconverterv1.ImageConverterDeleteApp
	GetSigningKey            = imageconverterv1.ImageConverterGetSigningKey
	ConvertImage             = imageconverterv1.ImageConverterConvertImage
	ListImages               = imageconverterv1.ImageConverterListImages
	GetImage                 = imageconverterv1.ImageConverterGetImage
	DeleteImage              = imageconverterv1.ImageConverterDeleteImage
	PutRegistryCredential    = imageconverterv1.ImageConverterPutRegistryCredential
	ListRegistryCredentials  = imageconverterv1.ImageConverterListRegistryCredentials
	DeleteRegistryCredential = imageconverterv1.ImageConverterDeleteRegistryCredential
)

// Client calls the imageconverter service over NATS.
type Client = imageconverterv1.ImageConverterClient

// New returns a client on nc.
func New(nc *nats.Conn) *Client { return imageconverterv1.NewImageConverterClient(nc) }
