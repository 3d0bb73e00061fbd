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
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
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
	// RecoverEvery is how often the outboxes are recovered (default
	// service.DefaultRecoverEvery); KVOptions are added to every store
	// (tests inject publish failures).
	RecoverEvery time.Duration
	KVOptions    []kv.Option
}

// Service is a running CA service.
type Service struct{ run *service.Runner }

// Start opens the service's state, subscribes its request subjects and
// starts consuming account and approval events.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.NATS == nil || cfg.KEK == nil {
		return nil, errors.New("ca: a NATS connection and a key-encryption key are required")
	}
	r, err := service.New(ctx, service.Config{Name: cav1.CAServiceName, NATS: cfg.NATS, Replicas: cfg.Replicas, Logger: cfg.Logger,
		RecoverEvery: cfg.RecoverEvery, KVOptions: cfg.KVOptions})
	if err != nil {
		return nil, err
	}
	js, logger, replicas, opts := r.JetStream(), r.Logger(), r.Replicas(), r.KVOptions()
	st, err := store.Open(ctx, js, replicas, opts...)
	if err != nil {
		return nil, err
	}
	certs, err := store.OpenCertificates(ctx, js, replicas, opts...)
	if err != nil {
		return nil, err
	}
	final, err := store.OpenFinalCRLs(ctx, js, replicas, opts...)
	if err != nil {
		return nil, err
	}
	if cfg.Cache == nil {
		cfg.Cache = cache.NewMemory(0)
	}
	iss, err := store.OpenIssuance(ctx, js, replicas, cfg.Cache, attestationv1.NewAttestationClient(cfg.NATS), logger, opts...)
	if err != nil {
		return nil, err
	}
	svc, err := app.New(app.Config{Authorities: st, Certificates: certs, FinalCRLs: final, Issuance: iss, Audit: events.AuditLog{JS: js, Producer: store.Producer}, KEK: cfg.KEK, Clock: cfg.Clock, PublicURL: cfg.PublicURL})
	if err != nil {
		return nil, err
	}
	s := &Service{run: r}
	if err := transport.Register(r.Mux(), svc, logger); err != nil {
		s.Stop()
		return nil, err
	}
	for _, consume := range []func(context.Context, jetstream.JetStream, *app.Service, *slog.Logger) (*events.Consumer, error){
		transport.ConsumeAccounts, transport.ConsumeApprovals,
	} {
		if err := r.Consume(func(ctx context.Context) (*events.Consumer, error) { return consume(ctx, js, svc, logger) }); err != nil {
			s.Stop()
			return nil, err
		}
	}
	r.Start()
	return s, nil
}

// Stop stops taking requests and events.
func (s *Service) Stop() { s.run.Stop() }
