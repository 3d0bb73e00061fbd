// Package noderegistry is the composition root of the node registry: join
// tokens, the enrolment of nodes, their heartbeats, status and instances.
package noderegistry

import (
	"context"

	"github.com/cloister-cc/cloister/libs/events"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/app"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/peers"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/store"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/transport"
)

// Service is a running node registry.
type Service struct {
	app *app.Service
	run *service.Runner
}

// Start opens the service's state, follows token revocations, serves its
// requests and account events, and starts the sweep of silent nodes.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	s := &Service{}
	r, err := service.Run(ctx, noderegistryv1.NodeRegistryServiceName, cfg.Options, func(r *service.Runner) error {
		st, err := store.Open(ctx, r.JetStream(), r.Replicas(), cfg.Cache, r.Logger(), r.KVOptions()...)
		if err != nil {
			return err
		}
		att := peers.Attestation{C: attestationv1.NewAttestationClient(r.NATS()), Policies: peers.NewPolicies(cfg.PolicyTTL)}
		s.app, err = app.New(app.Config{Tokens: st.Tokens, Nodes: st.Nodes, Nonces: st.Nonces, Audit: events.AuditLog{JS: r.JetStream(), Producer: store.Producer},
			Attestation: att, CA: peers.CA{C: cav1.NewCAClient(r.NATS())},
			Clock: cfg.Clock, HeartbeatTimeout: cfg.HeartbeatTimeout, ReattestEvery: cfg.ReattestEvery, Logger: r.Logger()})
		if err != nil {
			return err
		}
		return transport.Serve(r, s.app, st.Tokens, att, cfg.SweepEvery)
	})
	if err != nil {
		return nil, err
	}
	s.run = r
	return s, nil
}

// Stop stops taking requests and events, and the sweep.
func (s *Service) Stop() { s.run.Stop() }
