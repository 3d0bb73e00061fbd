// Package transport serves the attestation service on its runner: its
// endpoints over NATS and the approvals it follows.
package transport

import (
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/attestation/internal/app"
	"github.com/cloister-cc/cloister/services/attestation/internal/endpoint"
)

// Serve serves the attestation service on r: its request subjects,
// through the generated attestationv1.RegisterAttestationServer, and the
// approvals it follows. simRoot is the PEM of the simulation root
// certificate, nil when simulation is off.
func Serve(r *service.Runner, s *app.Service, simRoot []byte) error {
	if err := attestationv1.RegisterAttestationServer(r.Mux(), endpoint.New(s, simRoot), r.Logger()); err != nil {
		return err
	}
	if err := r.ConsumeRoutes("attestation-approvals", approvalRoutes(s)); err != nil {
		return err
	}
	return watchPolicies(r, s)
}

// watchPolicies drops this replica's copy of an account's policy when the
// policy changes, whichever replica changed it.
func watchPolicies(r *service.Runner, s *app.Service) error {
	return service.WatchAccounts[attestationv1.PolicyChanged](r, attestationv1.AttestationServiceName, s.DropPolicy)
}
