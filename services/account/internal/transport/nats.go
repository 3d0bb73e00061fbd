// Package transport consumes the events the account service follows; its
// request subjects are served by the generated accountv1.RegisterAccountServer.
package transport

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
)

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
		FilterSubjects: []string{events.Subject(accountv1.AccountServiceName, &deleted)},
		Logger:         logger,
	}, func(ctx context.Context, ev events.Event) error {
		var e accountv1.AccountDeleted
		if err := ev.Decode(&e); err != nil {
			return events.Permanent(err)
		}
		return p.PurgeAccount(ctx, e.GetAccountId())
	})
}
