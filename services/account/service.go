// Package account is the composition root of the account service: users,
// sessions, API keys, accounts, members, approval tasks and the audit log.
package account

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/account/internal/app"
	"github.com/cloister-cc/cloister/services/account/internal/endpoint"
	"github.com/cloister-cc/cloister/services/account/internal/password"
	"github.com/cloister-cc/cloister/services/account/internal/store"
	"github.com/cloister-cc/cloister/services/account/internal/transport"
)

// Config is what the service needs to run.
type Config struct {
	NATS     *nats.Conn
	Replicas int // JetStream replicas of its buckets and streams; default 1
	Logger   *slog.Logger
	// PasswordCost overrides the argon2id parameters (tests lower them).
	PasswordCost *PasswordCost
	// Clock overrides the time source (tests move it).
	Clock app.Clock
	// RecoverEvery is how often the outboxes are recovered (default
	// service.DefaultRecoverEvery); KVOptions are added to every store
	// (tests inject publish failures).
	RecoverEvery time.Duration
	KVOptions    []kv.Option
}

// PasswordCost is argon2id's memory (KiB), time and thread parameters.
type PasswordCost = password.Params

// Service is a running account service.
type Service struct{ run *service.Runner }

// Start opens the service's state, subscribes its request subjects and
// starts its event consumers.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.NATS == nil {
		return nil, errors.New("account: a NATS connection is required")
	}
	r, err := service.New(ctx, service.Config{Name: accountv1.AccountServiceName, NATS: cfg.NATS, Replicas: cfg.Replicas, Logger: cfg.Logger,
		RecoverEvery: cfg.RecoverEvery, KVOptions: cfg.KVOptions})
	if err != nil {
		return nil, err
	}
	js, logger := r.JetStream(), r.Logger()
	stores, err := store.Open(ctx, js, r.Replicas(), r.KVOptions()...)
	if err != nil {
		return nil, err
	}
	hasher := password.Argon2id{}
	if cfg.PasswordCost != nil {
		hasher.Params = *cfg.PasswordCost
	}
	svc, err := app.New(app.Config{
		Users: stores.Users, Sessions: stores.Sessions, Accounts: stores.Accounts,
		Members: stores.Members, APIKeys: stores.APIKeys, Tasks: stores.Tasks, Audit: store.NewAuditLog(js),
		Hasher: hasher, Clock: cfg.Clock,
	})
	if err != nil {
		return nil, err
	}
	s := &Service{run: r}
	if err := accountv1.RegisterAccountServer(r.Mux(), endpoint.New(svc), logger); err != nil {
		s.Stop()
		return nil, err
	}
	for _, consume := range []func(context.Context) (*events.Consumer, error){
		func(ctx context.Context) (*events.Consumer, error) {
			return transport.ConsumeAccountDeleted(ctx, js, svc, logger)
		},
		func(ctx context.Context) (*events.Consumer, error) {
			return transport.ConsumeTaskRequests(ctx, js, svc, logger)
		},
	} {
		if err := r.Consume(consume); err != nil {
			s.Stop()
			return nil, err
		}
	}
	r.Start()
	return s, nil
}

// Stop stops taking requests and events and waits for those under way.
func (s *Service) Stop() { s.run.Stop() }
