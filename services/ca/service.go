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
		js, replicas, opts := r.JetStream(), r.Replicas(), r.KVOptions()
		st, err := store.Open(ctx, js, replicas, opts...)
		if err != nil {
			return err
		}
		certs, err := store.OpenCertificates(ctx, js, replicas, opts...)
		if err != nil {
			return err
		}
		final, err := store.OpenFinalCRLs(ctx, js, replicas, opts...)
		if err != nil {
			return err
		}
		iss, err := store.OpenIssuance(ctx, js, replicas, cfg.Cache, attestationv1.NewAttestationClient(r.NATS()), r.Logger(), opts...)
		if err != nil {
			return err
		}
		svc, err := app.New(app.Config{Authorities: st, Certificates: certs, FinalCRLs: final, Issuance: iss,
			Audit: events.AuditLog{JS: js, Producer: store.Producer}, KEK: cfg.KEK, Clock: cfg.Clock, PublicURL: cfg.PublicURL})
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
