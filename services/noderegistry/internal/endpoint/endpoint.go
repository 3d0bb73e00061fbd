// Package endpoint adapts the node registry's app to its generated NATS server
// interface: each method converts its protobuf request to domain values
// (through wire), calls the app and converts the result back.
package endpoint

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cloister-cc/cloister/libs/events"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/reply"
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
	spec := domain.TokenSpec{Name: r.GetName(), Labels: r.GetLabels(), TTL: time.Duration(r.GetTtlSeconds()) * time.Second,
		MaxUses: r.GetMaxUses(), RequireAttestation: r.GetRequireAttestation()}
	t, secret, err := sv.s.CreateJoinToken(ctx, r.GetAccountId(), spec, events.ActorOf(r.GetActor()), r.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.CreateJoinTokenResponse{Token: wire.TokenToProto(t), Secret: secret}, nil
}

func (sv *Server) ListJoinTokens(ctx context.Context, r *noderegistryv1.ListJoinTokensRequest) (*noderegistryv1.ListJoinTokensResponse, error) {
	ts, err := sv.s.JoinTokens(ctx, r.GetAccountId())
	return reply.With(err, func() *noderegistryv1.ListJoinTokensResponse {
		return &noderegistryv1.ListJoinTokensResponse{Tokens: reply.Map(ts, wire.TokenToProto)}
	})
}

func (sv *Server) RevokeJoinToken(ctx context.Context, r *noderegistryv1.RevokeJoinTokenRequest) (*noderegistryv1.RevokeJoinTokenResponse, error) {
	t, err := sv.s.RevokeJoinToken(ctx, r.GetAccountId(), r.GetTokenId(), events.ActorOf(r.GetActor()))
	return reply.With(err, func() *noderegistryv1.RevokeJoinTokenResponse {
		return &noderegistryv1.RevokeJoinTokenResponse{Token: wire.TokenToProto(t)}
	})
}

func (sv *Server) Enroll(ctx context.Context, r *noderegistryv1.EnrollRequest) (*noderegistryv1.EnrollResponse, error) {
	e, err := sv.s.Enroll(ctx, r.GetJoinToken(), app.NodeName{Asked: r.GetNodeName(), Host: r.GetHostName()}, r.GetCsr(),
		app.Evidence{TEE: r.GetTee(), Quote: r.GetEvidence(), Aux: r.GetEvidenceAux()}, r.GetNonce())
	return reply.With(err, func() *noderegistryv1.EnrollResponse {
		return &noderegistryv1.EnrollResponse{Node: wire.NodeToProto(e.Node), ChainPem: e.ChainPEM}
	})
}

func (sv *Server) CreateEnrolmentNonce(ctx context.Context, r *noderegistryv1.CreateEnrolmentNonceRequest) (*noderegistryv1.CreateEnrolmentNonceResponse, error) {
	nonce, expires, err := sv.s.CreateEnrolmentNonce(ctx, r.GetJoinToken())
	return reply.With(err, func() *noderegistryv1.CreateEnrolmentNonceResponse {
		return &noderegistryv1.CreateEnrolmentNonceResponse{Nonce: nodeNonce(nonce, expires)}
	})
}

func (sv *Server) CreateAttestationNonce(ctx context.Context, r *noderegistryv1.CreateAttestationNonceRequest) (*noderegistryv1.CreateAttestationNonceResponse, error) {
	nonce, expires, err := sv.s.CreateAttestationNonce(ctx, r.GetAccountId(), r.GetNodeId(), r.GetCertificateSerial())
	return reply.With(err, func() *noderegistryv1.CreateAttestationNonceResponse {
		return &noderegistryv1.CreateAttestationNonceResponse{Nonce: nodeNonce(nonce, expires)}
	})
}

func nodeNonce(nonce []byte, expires time.Time) *noderegistryv1.NodeNonce {
	return &noderegistryv1.NodeNonce{Nonce: nonce, ExpiresAt: timestamppb.New(expires)}
}

func (sv *Server) SimulatedQEForToken(ctx context.Context, r *noderegistryv1.SimulatedQEForTokenRequest) (*noderegistryv1.SimulatedQEForTokenResponse, error) {
	qe, err := sv.s.SimulatedQEForToken(ctx, r.GetJoinToken())
	return reply.With(err, func() *noderegistryv1.SimulatedQEForTokenResponse {
		return &noderegistryv1.SimulatedQEForTokenResponse{Qe: qe}
	})
}

func (sv *Server) Heartbeat(ctx context.Context, r *noderegistryv1.HeartbeatRequest) (*noderegistryv1.HeartbeatResponse, error) {
	n, err := sv.s.Heartbeat(ctx, r.GetAccountId(), r.GetNodeId(), r.GetCertificateSerial(), wire.InstancesFromProto(r.GetInstances()))
	return reply.With(err, func() *noderegistryv1.HeartbeatResponse {
		return &noderegistryv1.HeartbeatResponse{Node: wire.NodeToProto(n)}
	})
}

func (sv *Server) AuthenticateNode(ctx context.Context, r *noderegistryv1.AuthenticateNodeRequest) (*noderegistryv1.AuthenticateNodeResponse, error) {
	n, err := sv.s.AuthenticateNode(ctx, r.GetAccountId(), r.GetNodeId(), r.GetCertificateSerial())
	return reply.With(err, func() *noderegistryv1.AuthenticateNodeResponse {
		return &noderegistryv1.AuthenticateNodeResponse{Node: wire.NodeToProto(n)}
	})
}

func (sv *Server) Reattest(ctx context.Context, r *noderegistryv1.ReattestRequest) (*noderegistryv1.ReattestResponse, error) {
	n, err := sv.s.Reattest(ctx, r.GetAccountId(), r.GetNodeId(), r.GetCertificateSerial(),
		app.Evidence{TEE: r.GetTee(), Quote: r.GetEvidence(), Aux: r.GetEvidenceAux()}, r.GetNonce())
	return reply.With(err, func() *noderegistryv1.ReattestResponse {
		return &noderegistryv1.ReattestResponse{Node: wire.NodeToProto(n)}
	})
}

func (sv *Server) ListNodes(ctx context.Context, r *noderegistryv1.ListNodesRequest) (*noderegistryv1.ListNodesResponse, error) {
	ns, err := sv.s.Nodes(ctx, r.GetAccountId())
	return reply.With(err, func() *noderegistryv1.ListNodesResponse {
		return &noderegistryv1.ListNodesResponse{Nodes: reply.Map(ns, wire.NodeToProto)}
	})
}

func (sv *Server) GetNode(ctx context.Context, r *noderegistryv1.GetNodeRequest) (*noderegistryv1.GetNodeResponse, error) {
	n, err := sv.s.Node(ctx, r.GetAccountId(), r.GetNodeId())
	return reply.With(err, func() *noderegistryv1.GetNodeResponse {
		return &noderegistryv1.GetNodeResponse{Node: wire.NodeToProto(n)}
	})
}

func (sv *Server) DeregisterNode(ctx context.Context, r *noderegistryv1.DeregisterNodeRequest) (*noderegistryv1.DeregisterNodeResponse, error) {
	n, err := sv.s.DeregisterNode(ctx, r.GetAccountId(), r.GetNodeId(), events.ActorOf(r.GetActor()))
	return reply.With(err, func() *noderegistryv1.DeregisterNodeResponse {
		return &noderegistryv1.DeregisterNodeResponse{Node: wire.NodeToProto(n)}
	})
}

// New returns the endpoints of s.
func New(s *app.Service) *Server { return &Server{s: s} }
