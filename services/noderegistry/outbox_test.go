package noderegistry_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/noderegistry"
)

// TestOutboxRecoveredWithoutRestart: the event of a join token whose
// publish failed after the token was recorded is delivered by the
// service's periodic outbox recovery while the service runs on.
func TestOutboxRecoveredWithoutRestart(t *testing.T) {
	testkit.CheckOutboxRecovery(t, testkit.OutboxRecovery{
		Start: func(t *testing.T, n *testkit.NATS, every time.Duration, opts []kv.Option) {
			svc, err := noderegistry.Start(context.Background(), noderegistry.Config{Options: service.Options{NATS: n.Connect(t), RecoverEvery: every, KVOptions: opts}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(svc.Stop)
		},
		Write: func(t *testing.T, n *testkit.NATS) {
			if _, err := noderegistryv1.NewNodeRegistryClient(n.Connect(t)).CreateJoinToken(context.Background(), &noderegistryv1.CreateJoinTokenRequest{AccountId: uuid.NewString(),
				Name: "rack-1", Actor: actor}); err != nil {
				t.Fatal(err)
			}
		},
		Producer: "noderegistry", Event: &noderegistryv1.JoinTokenCreated{},
	})
}
