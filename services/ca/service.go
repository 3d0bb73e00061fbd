// Package ca is the composition root of the CA service: one certificate
// authority per account, created when the account is, and its CRL.
package ca

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cloister-cc/cloister/libs/events"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/ca/client"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	"github.com/cloister-cc/cloister/services/ca/internal/store"
	"github.com/cloister-cc/cloister/services/ca/internal/transport"
)

// Config is what the service needs to run.
type Config struct {
	NATS     *nats.Conn
	Replicas int
	Logger   *slog.Logger
	// KEK seals the CAs' private keys at rest. Required.
	KEK   *pki.KEK
	Clock func() time.Time
}

// Service is a running CA service.
type Service struct {
	mux      *natsrpc.Mux
	consumer *events.Consumer
	cancel   context.CancelFunc
}

// Start opens the service's state, subscribes its request subjects and
// starts consuming account events.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.NATS == nil || cfg.KEK == nil {
		return nil, errors.New("ca: a NATS connection and a key-encryption key are required")
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
	st, err := store.Open(ctx, js, replicas, logger)
	if err != nil {
		return nil, err
	}
	certs, err := store.OpenCertificates(ctx, js, replicas, logger)
	if err != nil {
		return nil, err
	}
	svc, err := app.New(st, certs, cfg.KEK, cfg.Clock)
	if err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Service{mux: natsrpc.NewMux(cfg.NATS, client.Service), cancel: cancel}
	if err := transport.Register(s.mux, svc, logger); err != nil {
		cancel()
		return nil, err
	}
	if s.consumer, err = transport.ConsumeAccounts(bg, js, svc, logger); err != nil {
		cancel()
		_ = s.mux.Drain()
		return nil, err
	}
	return s, nil
}

// Stop stops taking requests and events.
func (s *Service) Stop() {
	_ = s.mux.Drain()
	s.consumer.Stop()
	s.cancel()
}
