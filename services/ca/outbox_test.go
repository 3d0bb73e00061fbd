package ca_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/ca"
)

// TestOutboxRecoveredWithoutRestart: the event of an account's new CA,
// whose publish failed after the CA was recorded, is delivered by the
// service's periodic outbox recovery while the service runs on.
func TestOutboxRecoveredWithoutRestart(t *testing.T) {
	kek, _ := pki.NewKEK(bytes.Repeat([]byte{5}, pki.KEKSize))
	testkit.CheckOutboxRecovery(t, testkit.OutboxRecovery{
		Start: func(t *testing.T, n *testkit.NATS, every time.Duration, opts []kv.Option) {
			svc, err := ca.Start(context.Background(), ca.Config{Options: service.Options{NATS: n.Connect(t), RecoverEvery: every, KVOptions: opts}, KEK: kek})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(svc.Stop)
		},
		// A new account's CA is recorded with its event.
		Write: func(t *testing.T, n *testkit.NATS) {
			ctx := context.Background()
			id := uuid.NewString()
			created := &accountv1.AccountCreated{Account: &accountv1.Account{Id: id, Name: "A"}}
			msg, _, err := events.NewMessage(ctx, events.Subject("account", created), "account", id, created)
			if err != nil {
				t.Fatal(err)
			}
			_, js := n.JetStream(t)
			if err := events.Publish(ctx, js, msg); err != nil {
				t.Fatal(err)
			}
		},
		Producer: "ca", Event: &cav1.AccountCAInitialized{},
	})
}
