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
	"github.com/cloister-cc/cloister/services/account/internal/domain"
	"github.com/cloister-cc/cloister/services/account/internal/endpoint"
)

// Serve serves svc on r: its endpoints, what its own events drive (the
// purge of deleted accounts, approved changes of who approves) and the
// tasks its peers' events ask for.
func Serve(r *service.Runner, svc app.Service) error {
	if err := accountv1.RegisterAccountServer(r.Mux(), endpoint.New(svc), r.Logger()); err != nil {
		return err
	}
	if err := r.ConsumeRoutes("account-purge", ownRoutes(svc)); err != nil {
		return err
	}
	return r.ConsumeRoutes(TaskDurable, taskRoutes(svc))
}

// Own is what the service does on its own events.
type Own interface {
	// PurgeAccount removes what belongs to a deleted account.
	PurgeAccount(ctx context.Context, accountID string) error
	// ApplyTask makes an approved change of who approves, if the approval
	// could not.
	ApplyTask(ctx context.Context, accountID, taskID string) error
}

// ownRoutes purge members and API keys of deleted accounts and finish
// approved quorum and admin tasks, through a durable consumer (named for
// its first duty) so none is missed while the service is down.
func ownRoutes(o Own) *events.Router {
	r := events.NewRouter()
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountDeleted) error {
		return o.PurgeAccount(ctx, m.GetAccountId())
	})
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.TaskApproved) error {
		switch t := m.GetTask(); t.GetKind() {
		case string(domain.KindQuorum), string(domain.KindAdmin):
			return o.ApplyTask(ctx, t.GetAccountId(), t.GetId())
		}
		return nil
	})
	return r
}
