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
	return r.ConsumeRoutes("attestation-approvals", approvalRoutes(s))
}
