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
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/ca"
)

// TestOutboxRecoveredWithoutRestart: the event of an account's new CA,
// whose publish failed after the CA was recorded, is delivered by the
// service's periodic outbox recovery while the service runs on.
func TestOutboxRecoveredWithoutRestart(t *testing.T) {
	ctx := context.Background()
	n := testkit.StartNATS(t)
	nc, js := n.JetStream(t)
	kek, _ := pki.NewKEK(bytes.Repeat([]byte{5}, pki.KEKSize))
	fail, failed := testkit.FailFirstPublish()
	svc, err := ca.Start(ctx, ca.Config{NATS: nc, KEK: kek, RecoverEvery: 100 * time.Millisecond, KVOptions: []kv.Option{fail}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)

	id := uuid.NewString()
	created := &accountv1.AccountCreated{Account: &accountv1.Account{Id: id, Name: "A"}}
	msg, _, err := events.NewMessage(ctx, events.Subject("account", created), "account", id, created)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Publish(ctx, js, msg); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, failed, "the CA was never recorded")
	testkit.WaitForEvent(t, js, "ca", &cav1.AccountCAInitialized{}, 20*time.Second)
}
