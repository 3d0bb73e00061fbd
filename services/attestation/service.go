// Package attestation is the composition root of the attestation service:
// verification of SGX evidence under per-account policy, with Intel
// collateral kept by platform.
package attestation

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/events"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/services/attestation/client"
	"github.com/cloister-cc/cloister/services/attestation/internal/app"
	"github.com/cloister-cc/cloister/services/attestation/internal/pcs"
	"github.com/cloister-cc/cloister/services/attestation/internal/store"
	"github.com/cloister-cc/cloister/services/attestation/internal/transport"
)

// Config is what the service needs to run.
type Config struct {
	NATS     *nats.Conn
	Replicas int
	Logger   *slog.Logger
	// Simulation, when set, accepts simulated evidence for accounts whose
	// policy allows it.
	Simulation app.Simulation
	// PCSURL, when set, is the base URL of Intel's PCS or a PCCS (API v4)
	// from which missing or outdated collateral is fetched.
	PCSURL string
	// IntelRoot and Clock override the trust anchor and the time (tests).
	IntelRoot *ecdsa.PublicKey
	Clock     func() time.Time
}

// Service is a running attestation service.
type Service struct {
	mux    *natsrpc.Mux
	cancel context.CancelFunc
}

// Start opens the service's state and subscribes its request subjects.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.NATS == nil {
		return nil, errors.New("attestation: a NATS connection is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	logger := cfg.Logger.With("service", client.Service)
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("opening jetstream: %w", err)
	}
	replicas := max(cfg.Replicas, 1)
	if err := events.EnsureStreams(ctx, js, replicas); err != nil {
		return nil, err
	}
	stores, err := store.Open(ctx, js, replicas, logger)
	if err != nil {
		return nil, err
	}
	appCfg := app.Config{
		Policies: stores.Policies, Collaterals: stores.Collaterals, Verdicts: stores.Verdicts,
		Simulation: cfg.Simulation, IntelRoot: cfg.IntelRoot, Clock: cfg.Clock,
	}
	if cfg.PCSURL != "" {
		fetcher, err := pcs.New(cfg.PCSURL)
		if err != nil {
			return nil, err
		}
		appCfg.Fetcher = fetcher
	}
	svc, err := app.New(appCfg)
	if err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stores.RecoverEvery(bg, 30*time.Second)
	s := &Service{mux: natsrpc.NewMux(cfg.NATS, client.Service), cancel: cancel}
	if err := transport.Register(s.mux, svc, logger); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// Stop stops taking requests and waits for those under way.
func (s *Service) Stop() {
	_ = s.mux.Drain()
	s.cancel()
}
