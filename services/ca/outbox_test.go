package ca_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit/servicetest"
	"github.com/cloister-cc/cloister/services/ca"
)

// TestOutboxRecoveredWithoutRestart: the event of an account's new CA,
// whose publish failed after the CA was recorded, is delivered by the
// service's periodic outbox recovery while the service runs on.
func TestOutboxRecoveredWithoutRestart(t *testing.T) {
	kek, _ := pki.NewKEK(bytes.Repeat([]byte{5}, pki.KEKSize))
	servicetest.CheckOutboxRecovery(t, servicetest.OutboxRecovery[*ca.Service]{
		Name: "ca",
		Start: func(ctx context.Context, o service.Options) (*ca.Service, error) {
			return ca.Start(ctx, ca.Config{Options: o, KEK: kek})
		},
		// A new account's CA is recorded with its event.
		Write: func(t *testing.T, nc *nats.Conn, vouch natsrpc.CallOption) {
			ctx := context.Background()
			id := uuid.NewString()
			created := &accountv1.AccountCreated{Account: &accountv1.Account{Id: id, Name: "A"}}
			msg, _, err := events.NewMessage(ctx, events.Subject("account", created), "account", id, created)
			if err != nil {
				t.Fatal(err)
			}
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			if err := events.Publish(ctx, js, msg); err != nil {
				t.Fatal(err)
			}
		},
		Producer: "ca", Event: &cav1.AccountCAInitialized{},
	})
}
