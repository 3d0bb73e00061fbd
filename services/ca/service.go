// Package ca is the composition root of the CA service: one certificate
// authority per account, created when the account is, and its CRL.
package ca

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/events"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/pki"
	attestationclient "github.com/cloister-cc/cloister/services/attestation/client"
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
	KEK *pki.KEK
	// Cache is where application and domain lookups are cached; nil means
	// an in-process cache (one replica only: replicas must share a cache).
	Cache cache.Cache
	Clock func() time.Time
	// PublicURL is where relying parties reach the gateway: application
	// certificates then name their CRL and OCSP responder there.
	PublicURL string
}

// Service is a running CA service.
type Service struct {
	mux       *natsrpc.Mux
	consumers []*events.Consumer
	cancel    context.CancelFunc
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
	final, err := store.OpenFinalCRLs(ctx, js, replicas, logger)
	if err != nil {
		return nil, err
	}
	if cfg.Cache == nil {
		cfg.Cache = cache.NewMemory(0)
	}
	iss, err := store.OpenIssuance(ctx, js, replicas, cfg.Cache, attestationclient.New(cfg.NATS), logger)
	if err != nil {
		return nil, err
	}
	svc, err := app.New(app.Config{Authorities: st, Certificates: certs, FinalCRLs: final, Issuance: iss, Audit: events.AuditLog{JS: js, Producer: store.Producer}, KEK: cfg.KEK, Clock: cfg.Clock, PublicURL: cfg.PublicURL})
	if err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Service{mux: natsrpc.NewMux(cfg.NATS, client.Service), cancel: cancel}
	if err := transport.Register(s.mux, svc, logger); err != nil {
		cancel()
		return nil, err
	}
	for _, consume := range []func(context.Context, jetstream.JetStream, *app.Service, *slog.Logger) (*events.Consumer, error){
		transport.ConsumeAccounts, transport.ConsumeApprovals,
	} {
		c, err := consume(bg, js, svc, logger)
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.consumers = append(s.consumers, c)
	}
	return s, nil
}

// Stop stops taking requests and events.
func (s *Service) Stop() {
	_ = s.mux.Drain()
	for _, c := range s.consumers {
		c.Stop()
	}
	s.cancel()
}
