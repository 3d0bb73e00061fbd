package account_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit/servicetest"
	"github.com/cloister-cc/cloister/services/account"
)

// TestOutboxRecoveredWithoutRestart: the sign-up event whose publish
// failed after the user was recorded is delivered by the service's
// periodic outbox recovery while the service runs on.
func TestOutboxRecoveredWithoutRestart(t *testing.T) {
	servicetest.CheckOutboxRecovery(t, servicetest.OutboxRecovery[*account.Service]{
		Name: "account",
		Start: func(ctx context.Context, o service.Options) (*account.Service, error) {
			return account.Start(ctx, account.Config{Options: o, PasswordCost: &account.PasswordCost{Memory: 1024, Time: 1, Threads: 1}})
		},
		Write: func(t *testing.T, nc *nats.Conn, vouch natsrpc.CallOption) {
			if _, err := accountv1.NewAccountClient(nc, vouch).SignUp(context.Background(), &accountv1.SignUpRequest{Email: "ada@example.com", Password: "correct horse battery"}); err != nil {
				t.Fatal(err)
			}
		},
		Producer: "account", Event: &accountv1.UserSignedUp{},
	})
}
