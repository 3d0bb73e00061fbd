// Package account is the composition root of the account service: users,
// sessions, API keys, accounts, members, approval tasks and the audit log.
package account

import (
	"context"

	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/account/internal/app"
	"github.com/cloister-cc/cloister/services/account/internal/store"
	"github.com/cloister-cc/cloister/services/account/internal/transport"
)

// Service is a running account service.
type Service struct{ run *service.Runner }

// Start opens the service's state, subscribes its request subjects and
// starts its event consumers.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r, err := service.Run(ctx, accountv1.AccountServiceName, cfg.Options, func(r *service.Runner) error {
		stores, err := store.Open(ctx, r.JetStream(), r.Replicas(), r.KVOptions()...)
		if err != nil {
			return err
		}
		svc, err := app.New(app.Config{
			Users: stores.Users, Sessions: stores.Sessions, Accounts: stores.Accounts,
			Members: stores.Members, APIKeys: stores.APIKeys, Tasks: stores.Tasks, Audit: store.NewAuditLog(r.JetStream()),
			Hasher: cfg.hasher(), Clock: cfg.Clock,
		})
		if err != nil {
			return err
		}
		return transport.Serve(r, svc)
	})
	if err != nil {
		return nil, err
	}
	return &Service{run: r}, nil
}

// Stop stops taking requests and events and waits for those under way.
func (s *Service) Stop() { s.run.Stop() }
