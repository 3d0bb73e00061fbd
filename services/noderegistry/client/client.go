// Package client names the noderegistry service's API over NATS for its peers
// and its server: the method table and the typed client are generated
// from proto/cloister/noderegistry/v1 into libs/gen by protoc-gen-natsrpc
// (`make proto`); these are their short names.
package client

import (
	"github.com/nats-io/nats.go"

	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
)

// Service is the name of the service on the wire.
const Service = noderegistryv1.NodeRegistryServiceName

// The methods, one per request subject cloister.noderegistry.v1.<Name>.
var (
	CreateJoinToken     = noderegistryv1.NodeRegistryCreateJoinToken
	ListJoinTokens      = noderegistryv1.NodeRegistryListJoinTokens
	RevokeJoinToken     = noderegistryv1.NodeRegistryRevokeJoinToken
	Enroll              = noderegistryv1.NodeRegistryEnroll
	SimulatedQEForToken = noderegistryv1.NodeRegistrySimulatedQEForToken
	Heartbeat           = noderegistryv1.NodeRegistryHeartbeat
	AuthenticateNode    = noderegistryv1.NodeRegistryAuthenticateNode
	Reattest            = noderegistryv1.NodeRegistryReattest
	ListNodes           = noderegistryv1.NodeRegistryListNodes
	GetNode             = noderegistryv1.NodeRegistryGetNode
	DeregisterNode      = noderegistryv1.NodeRegistryDeregisterNode
)

// Client calls the noderegistry service over NATS.
type Client = noderegistryv1.NodeRegistryClient

// New returns a client on nc.
func New(nc *nats.Conn) *Client { return noderegistryv1.NewNodeRegistryClient(nc) }
