// Package endpoint adapts the node registry's app to its generated NATS server
// interface: each method converts its protobuf request to domain values
// (through wire), calls the app and converts the result back.
package endpoint

import (
	"context"
	"time"

	"github.com/cloister-cc/cloister/libs/events"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/app"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/domain"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/wire"
)

// Server is the service behind the generated NodeRegistryServer.
type Server struct {
	s *app.Service
}

var _ noderegistryv1.NodeRegistryServer = (*Server)(nil)

func (sv *Server) CreateJoinToken(ctx context.Context, r *noderegistryv1.CreateJoinTokenRequest) (*noderegistryv1.CreateJoinTokenResponse, error) {
	s := sv.s
	spec := domain.TokenSpec{Name: r.GetName(), Labels: r.GetLabels(), TTL: time.Duration(r.GetTtlSeconds()) * time.Second,
		MaxUses: r.GetMaxUses(), RequireAttestation: r.GetRequireAttestation()}
	t, secret, err := s.CreateJoinToken(ctx, r.GetAccountId(), spec, events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.CreateJoinTokenResponse{Token: wire.TokenToProto(t), Secret: secret}, nil
}

func (sv *Server) ListJoinTokens(ctx context.Context, r *noderegistryv1.ListJoinTokensRequest) (*noderegistryv1.ListJoinTokensResponse, error) {
	s := sv.s
	ts, err := s.JoinTokens(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	out := &noderegistryv1.ListJoinTokensResponse{}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, wire.TokenToProto(t))
	}
	return out, nil
}

func (sv *Server) RevokeJoinToken(ctx context.Context, r *noderegistryv1.RevokeJoinTokenRequest) (*noderegistryv1.RevokeJoinTokenResponse, error) {
	s := sv.s
	t, err := s.RevokeJoinToken(ctx, r.GetAccountId(), r.GetTokenId(), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.RevokeJoinTokenResponse{Token: wire.TokenToProto(t)}, nil
}

func (sv *Server) Enroll(ctx context.Context, r *noderegistryv1.EnrollRequest) (*noderegistryv1.EnrollResponse, error) {
	s := sv.s
	e, err := s.Enroll(ctx, r.GetJoinToken(), r.GetNodeName(), r.GetCsr(), r.GetEvidence())
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.EnrollResponse{Node: wire.NodeToProto(e.Node), ChainPem: e.ChainPEM}, nil
}

func (sv *Server) SimulatedQEForToken(ctx context.Context, r *noderegistryv1.SimulatedQEForTokenRequest) (*noderegistryv1.SimulatedQEForTokenResponse, error) {
	s := sv.s
	qe, err := s.SimulatedQEForToken(ctx, r.GetJoinToken())
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.SimulatedQEForTokenResponse{Qe: qe}, nil
}

func (sv *Server) Heartbeat(ctx context.Context, r *noderegistryv1.HeartbeatRequest) (*noderegistryv1.HeartbeatResponse, error) {
	s := sv.s
	n, err := s.Heartbeat(ctx, r.GetAccountId(), r.GetNodeId(), r.GetCertificateSerial(), wire.InstancesFromProto(r.GetInstances()))
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.HeartbeatResponse{Node: wire.NodeToProto(n)}, nil
}

func (sv *Server) AuthenticateNode(ctx context.Context, r *noderegistryv1.AuthenticateNodeRequest) (*noderegistryv1.AuthenticateNodeResponse, error) {
	s := sv.s
	n, err := s.AuthenticateNode(ctx, r.GetAccountId(), r.GetNodeId(), r.GetCertificateSerial())
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.AuthenticateNodeResponse{Node: wire.NodeToProto(n)}, nil
}

func (sv *Server) Reattest(ctx context.Context, r *noderegistryv1.ReattestRequest) (*noderegistryv1.ReattestResponse, error) {
	s := sv.s
	n, err := s.Reattest(ctx, r.GetAccountId(), r.GetNodeId(), r.GetCertificateSerial(), r.GetEvidence())
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.ReattestResponse{Node: wire.NodeToProto(n)}, nil
}

func (sv *Server) ListNodes(ctx context.Context, r *noderegistryv1.ListNodesRequest) (*noderegistryv1.ListNodesResponse, error) {
	s := sv.s
	ns, err := s.Nodes(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	out := &noderegistryv1.ListNodesResponse{}
	for _, n := range ns {
		out.Nodes = append(out.Nodes, wire.NodeToProto(n))
	}
	return out, nil
}

func (sv *Server) GetNode(ctx context.Context, r *noderegistryv1.GetNodeRequest) (*noderegistryv1.GetNodeResponse, error) {
	s := sv.s
	n, err := s.Node(ctx, r.GetAccountId(), r.GetNodeId())
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.GetNodeResponse{Node: wire.NodeToProto(n)}, nil
}

func (sv *Server) DeregisterNode(ctx context.Context, r *noderegistryv1.DeregisterNodeRequest) (*noderegistryv1.DeregisterNodeResponse, error) {
	s := sv.s
	n, err := s.DeregisterNode(ctx, r.GetAccountId(), r.GetNodeId(), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.DeregisterNodeResponse{Node: wire.NodeToProto(n)}, nil
}

// New returns the endpoints of s.
func New(s *app.Service) *Server { return &Server{s: s} }
