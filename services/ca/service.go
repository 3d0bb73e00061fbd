// Package ca is the composition root of the CA service: one certificate
// authority per account, created when the account is, and its CRL.
package ca

import (
	"context"

	"github.com/cloister-cc/cloister/libs/events"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	"github.com/cloister-cc/cloister/services/ca/internal/peers"
	"github.com/cloister-cc/cloister/services/ca/internal/store"
	"github.com/cloister-cc/cloister/services/ca/internal/transport"
)

// Service is a running CA service.
type Service struct{ run *service.Runner }

// Start opens the service's state, subscribes its request subjects and
// starts consuming account and approval events.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r, err := service.Run(ctx, cav1.CAServiceName, cfg.Options, func(r *service.Runner) error {
		st, err := store.Open(ctx, r.JetStream(), r.Replicas(), cfg.Cache, r.Logger(), r.KVOptions()...)
		if err != nil {
			return err
		}
		st.Issuance.Verdicts = &peers.Verdicts{C: attestationv1.NewAttestationClient(r.NATS())}
		svc, err := app.New(app.Config{Authorities: st.Authorities, Certificates: st.Certificates, FinalCRLs: st.FinalCRLs, Issuance: st.Issuance,
			Audit: events.AuditLog{JS: r.JetStream(), Producer: store.Producer}, KEK: cfg.KEK, Clock: cfg.Clock, PublicURL: cfg.PublicURL})
		if err != nil {
			return err
		}
		return transport.Serve(r, svc)
	})
	if err != nil {
		return nil, err
	}
	return &Service{run: r}, nil
}

// Stop stops taking requests and events.
func (s *Service) Stop() { s.run.Stop() }
