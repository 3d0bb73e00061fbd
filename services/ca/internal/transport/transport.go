// Package transport serves the CA service on its runner: its endpoints
// over NATS, and the account and approval events it follows.
package transport

import (
	"context"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	"github.com/cloister-cc/cloister/services/ca/internal/endpoint"
)

// Serve serves the ca service on r: its request subjects, through the
// generated cav1.RegisterCAServer, and its consumers of account events
// and approvals.
func Serve(r *service.Runner, s *app.Service) error {
	if err := cav1.RegisterCAServer(r.Mux(), endpoint.New(s), r.Logger()); err != nil {
		return err
	}
	if err := consumeAccounts(r, s); err != nil {
		return err
	}
	return r.ConsumeRoutes("ca-approvals", approvalRoutes(s))
}

// consumeAccounts creates a CA for every account created and removes it
// when the account is deleted, through a durable consumer, so no account
// is missed while the service is down.
func consumeAccounts(run *service.Runner, s *app.Service) error {
	r := events.NewRouter()
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountCreated) error {
		return s.CreateCA(ctx, m.GetAccount().GetId())
	})
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountDeleted) error {
		return s.DeleteCA(ctx, m.GetAccountId())
	})
	return run.ConsumeRoutes("ca-accounts", r)
}
