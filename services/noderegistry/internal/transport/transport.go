// Package transport serves the node registry on its runner, consumes the
// account events that purge a deleted account, follows revocations into
// this process's cache, and runs the heartbeat sweep.
package transport

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/app"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/domain"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/store"
)

// Serve serves the node registry on r. The revocation watch starts before
// requests are taken, so no revocation made elsewhere slips by this
// process's cache of tokens. Then its request subjects, through the
// generated noderegistryv1.RegisterNodeRegistryServer, the account events
// it follows and the sweep.
func Serve(r *service.Runner, s *app.Service, tokens *store.Tokens) error {
	if err := watchRevocations(r, tokens); err != nil {
		return err
	}
	if err := noderegistryv1.RegisterNodeRegistryServer(r.Mux(), &server{s: s}, r.Logger()); err != nil {
		return err
	}
	if err := r.ConsumeRoutes("noderegistry-accounts", accountRoutes(s)); err != nil {
		return err
	}
	// Often enough to catch a silent node within a third of the timeout,
	// and an overdue one within its grace.
	every := max(min(s.HeartbeatTimeout()/3, s.ReattestEvery()/10), time.Millisecond)
	r.Every(every, func(ctx context.Context) { sweep(ctx, s, r.Logger()) })
	return nil
}

// server is the service behind the generated NodeRegistryServer interface.
type server struct {
	s *app.Service
}

var _ noderegistryv1.NodeRegistryServer = (*server)(nil)

func (sv *server) CreateJoinToken(ctx context.Context, r *noderegistryv1.CreateJoinTokenRequest) (*noderegistryv1.CreateJoinTokenResponse, error) {
	s := sv.s
	spec := domain.TokenSpec{Name: r.GetName(), Labels: r.GetLabels(), TTL: time.Duration(r.GetTtlSeconds()) * time.Second,
		MaxUses: r.GetMaxUses(), RequireAttestation: r.GetRequireAttestation()}
	t, secret, err := s.CreateJoinToken(ctx, r.GetAccountId(), spec, events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.CreateJoinTokenResponse{Token: store.TokenToProto(t), Secret: secret}, nil
}

func (sv *server) ListJoinTokens(ctx context.Context, r *noderegistryv1.ListJoinTokensRequest) (*noderegistryv1.ListJoinTokensResponse, error) {
	s := sv.s
	ts, err := s.JoinTokens(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	out := &noderegistryv1.ListJoinTokensResponse{}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, store.TokenToProto(t))
	}
	return out, nil
}

func (sv *server) RevokeJoinToken(ctx context.Context, r *noderegistryv1.RevokeJoinTokenRequest) (*noderegistryv1.RevokeJoinTokenResponse, error) {
	s := sv.s
	t, err := s.RevokeJoinToken(ctx, r.GetAccountId(), r.GetTokenId(), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.RevokeJoinTokenResponse{Token: store.TokenToProto(t)}, nil
}

func (sv *server) Enroll(ctx context.Context, r *noderegistryv1.EnrollRequest) (*noderegistryv1.EnrollResponse, error) {
	s := sv.s
	e, err := s.Enroll(ctx, r.GetJoinToken(), r.GetNodeName(), r.GetCsr(), r.GetEvidence())
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.EnrollResponse{Node: store.NodeToProto(e.Node), ChainPem: e.ChainPEM}, nil
}

func (sv *server) SimulatedQEForToken(ctx context.Context, r *noderegistryv1.SimulatedQEForTokenRequest) (*noderegistryv1.SimulatedQEForTokenResponse, error) {
	s := sv.s
	qe, err := s.SimulatedQEForToken(ctx, r.GetJoinToken())
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.SimulatedQEForTokenResponse{Qe: qe}, nil
}

func (sv *server) Heartbeat(ctx context.Context, r *noderegistryv1.HeartbeatRequest) (*noderegistryv1.HeartbeatResponse, error) {
	s := sv.s
	n, err := s.Heartbeat(ctx, r.GetAccountId(), r.GetNodeId(), r.GetCertificateSerial(), store.InstancesFromProto(r.GetInstances()))
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.HeartbeatResponse{Node: store.NodeToProto(n)}, nil
}

func (sv *server) AuthenticateNode(ctx context.Context, r *noderegistryv1.AuthenticateNodeRequest) (*noderegistryv1.AuthenticateNodeResponse, error) {
	s := sv.s
	n, err := s.AuthenticateNode(ctx, r.GetAccountId(), r.GetNodeId(), r.GetCertificateSerial())
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.AuthenticateNodeResponse{Node: store.NodeToProto(n)}, nil
}

func (sv *server) Reattest(ctx context.Context, r *noderegistryv1.ReattestRequest) (*noderegistryv1.ReattestResponse, error) {
	s := sv.s
	n, err := s.Reattest(ctx, r.GetAccountId(), r.GetNodeId(), r.GetCertificateSerial(), r.GetEvidence())
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.ReattestResponse{Node: store.NodeToProto(n)}, nil
}

func (sv *server) ListNodes(ctx context.Context, r *noderegistryv1.ListNodesRequest) (*noderegistryv1.ListNodesResponse, error) {
	s := sv.s
	ns, err := s.Nodes(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	out := &noderegistryv1.ListNodesResponse{}
	for _, n := range ns {
		out.Nodes = append(out.Nodes, store.NodeToProto(n))
	}
	return out, nil
}

func (sv *server) GetNode(ctx context.Context, r *noderegistryv1.GetNodeRequest) (*noderegistryv1.GetNodeResponse, error) {
	s := sv.s
	n, err := s.Node(ctx, r.GetAccountId(), r.GetNodeId())
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.GetNodeResponse{Node: store.NodeToProto(n)}, nil
}

func (sv *server) DeregisterNode(ctx context.Context, r *noderegistryv1.DeregisterNodeRequest) (*noderegistryv1.DeregisterNodeResponse, error) {
	s := sv.s
	n, err := s.DeregisterNode(ctx, r.GetAccountId(), r.GetNodeId(), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &noderegistryv1.DeregisterNodeResponse{Node: store.NodeToProto(n)}, nil
}

// accountRoutes forget a deleted account's tokens and nodes, through a
// durable consumer shared by the replicas.
func accountRoutes(s *app.Service) *events.Router {
	r := events.NewRouter()
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountDeleted) error {
		return s.DeleteAccount(ctx, m.GetAccountId())
	})
	return r
}

// watchRevocations writes every revocation of a join token, whichever
// replica made it, into this process's cache: an in-process cache is not
// shared, and a write-through reaches only the revoking process's.
func watchRevocations(r *service.Runner, tokens *store.Tokens) error {
	return r.Watch(events.StreamEvents, []string{events.Subject(store.Producer, &noderegistryv1.JoinTokenRevoked{})},
		func(ctx context.Context, ev events.Event) error {
			var r noderegistryv1.JoinTokenRevoked
			if err := ev.Decode(&r); err != nil {
				return err
			}
			if r.GetTokenHash() == "" {
				return errors.New("JoinTokenRevoked without a token hash")
			}
			tokens.Revoked(ctx, r.GetTokenHash(), store.TokenRefFromProto(r.GetToken()))
			return nil
		})
}

// sweep marks silent nodes unreachable, and attested nodes overdue for
// re-attestation untrusted.
func sweep(ctx context.Context, s *app.Service, logger *slog.Logger) {
	if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
		logger.WarnContext(ctx, "sweeping silent and unattested nodes", obs.KeyError, err)
	} else if n > 0 {
		logger.InfoContext(ctx, "silent nodes marked unreachable or overdue nodes untrusted", "nodes", n)
	}
}
