package noderegistry_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit/servicetest"
	"github.com/cloister-cc/cloister/services/noderegistry"
)

// TestOutboxRecoveredWithoutRestart: the event of a join token whose
// publish failed after the token was recorded is delivered by the
// service's periodic outbox recovery while the service runs on.
func TestOutboxRecoveredWithoutRestart(t *testing.T) {
	servicetest.CheckOutboxRecovery(t, servicetest.OutboxRecovery[*noderegistry.Service]{
		Name: "noderegistry",
		Start: func(ctx context.Context, o service.Options) (*noderegistry.Service, error) {
			return noderegistry.Start(ctx, noderegistry.Config{Options: o})
		},
		Write: func(t *testing.T, nc *nats.Conn, vouch natsrpc.CallOption) {
			if _, err := noderegistryv1.NewNodeRegistryClient(nc, vouch).CreateJoinToken(context.Background(), &noderegistryv1.CreateJoinTokenRequest{AccountId: uuid.NewString(),
				Name: "rack-1", Actor: actor}); err != nil {
				t.Fatal(err)
			}
		},
		Producer: "noderegistry", Event: &noderegistryv1.JoinTokenCreated{},
	})
}
