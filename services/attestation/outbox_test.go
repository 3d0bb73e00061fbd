package attestation_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit/servicetest"
	"github.com/cloister-cc/cloister/services/attestation"
)

// TestOutboxRecoveredWithoutRestart: the event of a policy change whose
// publish failed after the policy was recorded is delivered by the
// service's periodic outbox recovery while the service runs on.
func TestOutboxRecoveredWithoutRestart(t *testing.T) {
	servicetest.CheckOutboxRecovery(t, servicetest.OutboxRecovery[*attestation.Service]{
		Name: "attestation",
		Start: func(ctx context.Context, o service.Options) (*attestation.Service, error) {
			return attestation.Start(ctx, attestation.Config{Options: o})
		},
		Write: func(t *testing.T, nc *nats.Conn, vouch natsrpc.CallOption) {
			if _, err := attestationv1.NewAttestationClient(nc, vouch).SetPolicy(context.Background(), &attestationv1.SetPolicyRequest{AccountId: uuid.NewString(),
				Policy: &attestationv1.Policy{AcceptStatuses: []string{"UpToDate"}}}); err != nil {
				t.Fatal(err)
			}
		},
		Producer: "attestation", Event: &attestationv1.PolicyChanged{},
	})
}
