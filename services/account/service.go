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
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/services/account/client"
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
}

// PasswordCost is argon2id's memory (KiB), time and thread parameters.
type PasswordCost = password.Params

// Service is a running account service.
type Service struct {
	mux       *natsrpc.Mux
	consumers []*events.Consumer
	cancel    context.CancelFunc
}

// outboxRecoveryInterval is how often the service looks for events that a
// failed publish or a dead replica left in its buckets' outboxes.
const outboxRecoveryInterval = 30 * time.Second

// Start opens the service's state, subscribes its request subjects and
// starts its event consumer.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.NATS == nil {
		return nil, errors.New("account: a NATS connection is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	logger := cfg.Logger.With("service", client.Service)
	replicas := max(cfg.Replicas, 1)
	js, err := events.Open(ctx, cfg.NATS, replicas)
	if err != nil {
		return nil, err
	}
	stores, err := store.Open(ctx, js, replicas, logger)
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
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stores.RecoverEvery(bg, outboxRecoveryInterval)
	s := &Service{mux: natsrpc.NewMux(cfg.NATS, client.Service), cancel: cancel}
	if err := transport.Register(s.mux, endpoint.New(svc), logger); err != nil {
		cancel()
		return nil, err
	}
	for _, consume := range []func() (*events.Consumer, error){
		func() (*events.Consumer, error) { return transport.ConsumeAccountDeleted(bg, js, svc, logger) },
		func() (*events.Consumer, error) { return transport.ConsumeTaskRequests(bg, js, svc, logger) },
	} {
		c, err := consume()
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.consumers = append(s.consumers, c)
	}
	return s, nil
}

// Stop stops taking requests and events and waits for those under way.
func (s *Service) Stop() {
	_ = s.mux.Drain()
	for _, c := range s.consumers {
		c.Stop()
	}
	s.cancel()
}
