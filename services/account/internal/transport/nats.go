// Package transport serves the account service over NATS: its request
// subjects and the events it consumes.
package transport

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/services/account/client"
	"github.com/cloister-cc/cloister/services/account/internal/endpoint"
)

// Register subscribes every method of the set on mux.
func Register(mux *natsrpc.Mux, s *endpoint.Set, logger *slog.Logger) error {
	return errors.Join(
		client.SignUp.Handle(mux, logger, s.SignUp),
		client.Login.Handle(mux, logger, s.Login),
		client.Logout.Handle(mux, logger, s.Logout),
		client.Authenticate.Handle(mux, logger, s.Authenticate),
		client.CreateAccount.Handle(mux, logger, s.CreateAccount),
		client.ListAccounts.Handle(mux, logger, s.ListAccounts),
		client.GetAccount.Handle(mux, logger, s.GetAccount),
		client.UpdateAccount.Handle(mux, logger, s.UpdateAccount),
		client.DeleteAccount.Handle(mux, logger, s.DeleteAccount),
		client.AddMember.Handle(mux, logger, s.AddMember),
		client.ListMembers.Handle(mux, logger, s.ListMembers),
		client.RemoveMember.Handle(mux, logger, s.RemoveMember),
		client.SetMemberRole.Handle(mux, logger, s.SetMemberRole),
		client.CreateAPIKey.Handle(mux, logger, s.CreateAPIKey),
		client.ListAPIKeys.Handle(mux, logger, s.ListAPIKeys),
		client.RevokeAPIKey.Handle(mux, logger, s.RevokeAPIKey),
		client.ListAudit.Handle(mux, logger, s.ListAudit),
		client.Authorize.Handle(mux, logger, s.Authorize),
		client.ListTasks.Handle(mux, logger, s.ListTasks),
		client.GetTask.Handle(mux, logger, s.GetTask),
		client.ApproveTask.Handle(mux, logger, s.ApproveTask),
		client.DenyTask.Handle(mux, logger, s.DenyTask),
		client.WithdrawTask.Handle(mux, logger, s.WithdrawTask),
	)
}

// Purger removes what belongs to a deleted account.
type Purger interface {
	PurgeAccount(ctx context.Context, accountID string) error
}

// ConsumeAccountDeleted purges members and API keys of deleted accounts,
// through a durable consumer so none is missed while the service is down.
func ConsumeAccountDeleted(ctx context.Context, js jetstream.JetStream, p Purger, logger *slog.Logger) (*events.Consumer, error) {
	var deleted accountv1.AccountDeleted
	return events.Consume(ctx, js, events.ConsumerConfig{
		Stream:         events.StreamEvents,
		Durable:        "account-purge",
		FilterSubjects: []string{events.Subject(client.Service, &deleted)},
		Logger:         logger,
	}, func(ctx context.Context, ev events.Event) error {
		var e accountv1.AccountDeleted
		if err := ev.Decode(&e); err != nil {
			return events.Permanent(err)
		}
		return p.PurgeAccount(ctx, e.GetAccountId())
	})
}
