// Package attestation is the composition root of the attestation service:
// verification of SGX, TDX and SEV-SNP evidence under per-account policy,
// with Intel collateral kept by platform.
package attestation

import (
	"context"
	"time"

	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/attestation/internal/app"
	"github.com/cloister-cc/cloister/services/attestation/internal/simulation"
	"github.com/cloister-cc/cloister/services/attestation/internal/store"
	"github.com/cloister-cc/cloister/services/attestation/internal/transport"
)

// Service is a running attestation service.
type Service struct {
	run   *service.Runner
	sim   *simulation.Simulation
	clock func() time.Time
}

// Start opens the service's state, subscribes its request subjects and
// starts consuming approvals.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	s := &Service{clock: cfg.Clock}
	r, err := service.Run(ctx, attestationv1.AttestationServiceName, cfg.Options, func(r *service.Runner) error {
		st, err := store.Open(ctx, r.JetStream(), r.Replicas(), cfg.Cache, cfg.Clock, r.Logger(), r.KVOptions()...)
		if err != nil {
			return err
		}
		acfg, err := cfg.app(ctx, r, st)
		if err != nil {
			return err
		}
		svc, err := app.New(acfg)
		if err != nil {
			return err
		}
		s.sim, _ = acfg.Simulation.(*simulation.Simulation)
		r.Go(st.Activity.Run)
		// Verifications compute more than they wait.
		r.Mux().SetWorkersPerCore(natsrpc.CPUBoundWorkersPerCore)
		return transport.Serve(r, svc, s.sim.RootPEM())
	})
	if err != nil {
		return nil, err
	}
	s.run = r
	return s, nil
}

// Stop stops taking requests and events, and waits for those under way.
func (s *Service) Stop() { s.run.Stop() }
