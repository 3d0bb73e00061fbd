package ca_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// publishAccountCreated publishes AccountCreated as the account service would.
func publishAccountCreated(t *testing.T, n *testkit.NATS, account string) {
	t.Helper()
	ctx := context.Background()
	_, js := n.JetStream(t)
	payload := &accountv1.AccountCreated{Account: &accountv1.Account{Id: account, Name: "test"}}
	msg, _, err := events.NewMessage(ctx, events.Subject("account", payload), "account", account, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Publish(ctx, js, msg); err != nil {
		t.Fatal(err)
	}
}

// publishAccountDeleted publishes AccountDeleted as the account service would.
func publishAccountDeleted(t *testing.T, n *testkit.NATS, account string) {
	t.Helper()
	ctx := context.Background()
	_, js := n.JetStream(t)
	payload := &accountv1.AccountDeleted{AccountId: account}
	msg, _, err := events.NewMessage(ctx, events.Subject("account", payload), "account", account, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Publish(ctx, js, msg); err != nil {
		t.Fatal(err)
	}
}

// publish publishes an event as its producer would.
func publish(t *testing.T, n *testkit.NATS, producer, account string, payload proto.Message) {
	t.Helper()
	ctx := context.Background()
	_, js := n.JetStream(t)
	msg, _, err := events.NewMessage(ctx, events.Subject(producer, payload), producer, account, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Publish(ctx, js, msg); err != nil {
		t.Fatal(err)
	}
}
