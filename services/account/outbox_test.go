package account_test

import (
	"context"
	"testing"
	"time"

	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/account"
)

// TestOutboxRecoveredWithoutRestart: the sign-up event whose publish
// failed after the user was recorded is delivered by the service's
// periodic outbox recovery while the service runs on.
func TestOutboxRecoveredWithoutRestart(t *testing.T) {
	testkit.CheckOutboxRecovery(t, testkit.OutboxRecovery{
		Start: func(t *testing.T, n *testkit.NATS, every time.Duration, opts []kv.Option) {
			svc, err := account.Start(context.Background(), account.Config{Options: service.Options{NATS: n.Connect(t), RecoverEvery: every, KVOptions: opts}, PasswordCost: &account.PasswordCost{Memory: 1024, Time: 1, Threads: 1}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(svc.Stop)
		},
		Write: func(t *testing.T, n *testkit.NATS) {
			if _, err := accountv1.NewAccountClient(n.Connect(t)).SignUp(context.Background(), &accountv1.SignUpRequest{Email: "ada@example.com", Password: "correct horse battery"}); err != nil {
				t.Fatal(err)
			}
		},
		Producer: "account", Event: &accountv1.UserSignedUp{},
	})
}
