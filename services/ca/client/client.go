// Package client names the ca service's API over NATS for its peers
// and its server: the method table and the typed client are generated
// from proto/cloister/ca/v1 into libs/gen by protoc-gen-natsrpc
// (`make proto`); these are their short names.
package client

import (
	"github.com/nats-io/nats.go"

	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
)

// Service is the name of the service on the wire.
const Service = cav1.CAServiceName

// The methods, one per request subject cloister.ca.v1.<Name>.
var (
	GetCA                = cav1.CAGetCA
	GetCRL               = cav1.CAGetCRL
	RotateIssuer         = cav1.CARotateIssuer
	IssueNodeCertificate = cav1.CAIssueNodeCertificate
	CreateNonce          = cav1.CACreateNonce
	IssueAppCertificate  = cav1.CAIssueAppCertificate
	ListCertificates     = cav1.CAListCertificates
	GetCertificate       = cav1.CAGetCertificate
	RevokeCertificate    = cav1.CARevokeCertificate
	OCSP                 = cav1.CAOCSP
)

// Client calls the ca service over NATS.
type Client = cav1.CAClient

// New returns a client on nc.
func New(nc *nats.Conn) *Client { return cav1.NewCAClient(nc) }
