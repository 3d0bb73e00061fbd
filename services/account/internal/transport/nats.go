// Package transport serves the account service on its runner: its request
// subjects through the generated accountv1.RegisterAccountServer, and the
// events it follows.
package transport

import (
	"context"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/account/internal/app"
	"github.com/cloister-cc/cloister/services/account/internal/endpoint"
)

// Serve serves svc on r: its endpoints, the purge of deleted accounts and
// the tasks its peers' events ask for.
func Serve(r *service.Runner, svc app.Service) error {
	if err := accountv1.RegisterAccountServer(r.Mux(), endpoint.New(svc), r.Logger()); err != nil {
		return err
	}
	if err := r.ConsumeRoutes("account-purge", purgeRoutes(svc)); err != nil {
		return err
	}
	return r.ConsumeRoutes(TaskDurable, taskRoutes(svc))
}

// Purger removes what belongs to a deleted account.
type Purger interface {
	PurgeAccount(ctx context.Context, accountID string) error
}

// purgeRoutes purge members and API keys of deleted accounts, through a
// durable consumer so none is missed while the service is down.
func purgeRoutes(p Purger) *events.Router {
	r := events.NewRouter()
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountDeleted) error {
		return p.PurgeAccount(ctx, m.GetAccountId())
	})
	return r
}
