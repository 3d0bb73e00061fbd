package attestation_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/attestation"
)

// TestOutboxRecoveredWithoutRestart: the event of a policy change whose
// publish failed after the policy was recorded is delivered by the
// service's periodic outbox recovery while the service runs on.
func TestOutboxRecoveredWithoutRestart(t *testing.T) {
	testkit.CheckOutboxRecovery(t, testkit.OutboxRecovery{
		Start: func(t *testing.T, n *testkit.NATS, every time.Duration, opts []kv.Option) {
			svc, err := attestation.Start(context.Background(), attestation.Config{Options: service.Options{NATS: n.Connect(t), RecoverEvery: every, KVOptions: opts}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(svc.Stop)
		},
		Write: func(t *testing.T, n *testkit.NATS) {
			if _, err := attestationv1.NewAttestationClient(n.Connect(t)).SetPolicy(context.Background(), &attestationv1.SetPolicyRequest{AccountId: uuid.NewString(),
				Policy: &attestationv1.Policy{AcceptStatuses: []string{"UpToDate"}}}); err != nil {
				t.Fatal(err)
			}
		},
		Producer: "attestation", Event: &attestationv1.PolicyChanged{},
	})
}
