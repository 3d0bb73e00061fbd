// Package attestation is the composition root of the attestation service:
// verification of SGX evidence under per-account policy, with Intel
// collateral kept by platform.
package attestation

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/events"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/services/attestation/internal/app"
	"github.com/cloister-cc/cloister/services/attestation/internal/pcs"
	"github.com/cloister-cc/cloister/services/attestation/internal/simulation"
	"github.com/cloister-cc/cloister/services/attestation/internal/store"
	"github.com/cloister-cc/cloister/services/attestation/internal/transport"
)

// Config is what the service needs to run.
type Config struct {
	NATS     *nats.Conn
	Replicas int
	Logger   *slog.Logger
	// Simulation turns on the deployment's simulated quoting: a simulation
	// root is created on first start and kept sealed under KEK, and
	// accounts whose policy allows it may present simulated evidence.
	Simulation bool
	// KEK seals secrets at rest; required with Simulation.
	KEK *pki.KEK
	// PCSURL, when set, is the base URL of Intel's PCS or a PCCS (API v4)
	// from which missing or outdated collateral is fetched.
	PCSURL string
	// Cache is where approved-image lookups are cached; nil means an
	// in-process cache (one replica only: replicas must share a cache).
	Cache cache.Cache
	// IntelRoot, IntelOptions and Clock override the trust anchor, Intel's
	// names and the time (tests).
	IntelRoot    *ecdsa.PublicKey
	IntelOptions []sgx.VerifierOption
	Clock        func() time.Time
	// RecoverEvery is how often the outboxes are recovered (default
	// service.DefaultRecoverEvery); KVOptions are added to every store
	// (tests inject publish failures).
	RecoverEvery time.Duration
	KVOptions    []kv.Option
}

// Service is a running attestation service.
type Service struct {
	run   *service.Runner
	sim   *simulation.Simulation
	clock func() time.Time
}

// SimulatedQE makes a simulated quoting enclave under the deployment's
// simulation root, for a node agent in simulation mode (and tests).
func (s *Service) SimulatedQE() (*sim.QE, error) {
	if s.sim == nil {
		return nil, errors.New("attestation: simulation is not enabled")
	}
	return s.sim.NewQE(s.clock())
}

// Start opens the service's state, subscribes its request subjects and
// starts consuming approvals.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.NATS == nil {
		return nil, errors.New("attestation: a NATS connection is required")
	}
	r, err := service.New(ctx, service.Config{Name: attestationv1.AttestationServiceName, NATS: cfg.NATS, Replicas: cfg.Replicas, Logger: cfg.Logger,
		RecoverEvery: cfg.RecoverEvery, KVOptions: cfg.KVOptions})
	if err != nil {
		return nil, err
	}
	js, logger, replicas := r.JetStream(), r.Logger(), r.Replicas()
	if cfg.Cache == nil {
		cfg.Cache = cache.NewMemory(0)
	}
	stores, err := store.Open(ctx, js, replicas, cfg.Cache, logger, r.KVOptions()...)
	if err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	appCfg := app.Config{
		Policies: stores.Policies, Collaterals: stores.Collaterals, Verdicts: stores.Verdicts, Images: stores.Images, Withdrawals: stores.Withdrawals, Audit: events.AuditLog{JS: js, Producer: store.Producer},
		IntelRoot: cfg.IntelRoot, IntelOptions: cfg.IntelOptions, Clock: cfg.Clock,
	}
	var simul *simulation.Simulation
	if cfg.Simulation {
		if simul, err = simulation.Open(ctx, js, replicas, cfg.KEK, cfg.Clock()); err != nil {
			return nil, err
		}
		appCfg.Simulation = simul
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
	s := &Service{run: r, sim: simul, clock: cfg.Clock}
	var rootPEM []byte
	if simul != nil {
		rootPEM = simul.RootPEM()
	}
	if err := transport.Register(r.Mux(), svc, rootPEM, logger); err != nil {
		s.Stop()
		return nil, err
	}
	if err := r.Consume(func(ctx context.Context) (*events.Consumer, error) {
		return transport.ConsumeApprovals(ctx, js, svc, logger)
	}); err != nil {
		s.Stop()
		return nil, err
	}
	r.Start()
	return s, nil
}

// Stop stops taking requests and events, and waits for those under way.
func (s *Service) Stop() { s.run.Stop() }
