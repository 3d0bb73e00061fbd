// Package noderegistry is the composition root of the node registry: join
// tokens, the enrolment of compute nodes, their heartbeats, status and
// running instances.
package noderegistry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/events"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/app"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/store"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/transport"
)

// Config is what the service needs to run.
type Config struct {
	NATS     *nats.Conn
	Replicas int
	Logger   *slog.Logger
	// Cache is where join-token lookups are cached; nil means an
	// in-process cache. Replicas may share one (Redis) or each keep their
	// own: revocations reach every replica's through its events.
	Cache cache.Cache
	Clock func() time.Time
	// HeartbeatTimeout is how long an active node may stay silent before
	// it is marked unreachable; default 90 s. The sweep runs every third
	// of it.
	HeartbeatTimeout time.Duration
	// ReattestEvery is how often a node enrolled with TEE evidence must
	// re-attest (Reattest); default 24 h. The sweep marks an attested node
	// untrusted, revoking its certificate, once a tenth more has passed
	// since it last attested. Nodes enrolled without evidence are exempt.
	ReattestEvery time.Duration
	// RecoverEvery is how often the outboxes are recovered (default
	// service.DefaultRecoverEvery); KVOptions are added to every store
	// (tests inject publish failures).
	RecoverEvery time.Duration
	KVOptions    []kv.Option
}

// Service is a running node registry.
type Service struct {
	app *app.Service
	run *service.Runner
}

// Start opens the service's state, subscribes its request subjects,
// consumes account events, follows token revocations into its cache and
// starts the heartbeat and re-attestation sweep.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.NATS == nil {
		return nil, errors.New("noderegistry: a NATS connection is required")
	}
	if cfg.HeartbeatTimeout < 0 {
		return nil, fmt.Errorf("noderegistry: heartbeat timeout %v is negative", cfg.HeartbeatTimeout)
	}
	if cfg.ReattestEvery < 0 {
		return nil, fmt.Errorf("noderegistry: re-attestation period %v is negative", cfg.ReattestEvery)
	}
	r, err := service.New(ctx, service.Config{Name: noderegistryv1.NodeRegistryServiceName, NATS: cfg.NATS, Replicas: cfg.Replicas, Logger: cfg.Logger,
		RecoverEvery: cfg.RecoverEvery, KVOptions: cfg.KVOptions})
	if err != nil {
		return nil, err
	}
	js, logger := r.JetStream(), r.Logger()
	if cfg.Cache == nil {
		cfg.Cache = cache.NewMemory(0)
	}
	st, err := store.Open(ctx, js, r.Replicas(), cfg.Cache, logger, r.KVOptions()...)
	if err != nil {
		return nil, err
	}
	svc, err := app.New(app.Config{Tokens: st.Tokens, Nodes: st.Nodes, Audit: events.AuditLog{JS: js, Producer: store.Producer},
		Attestation: store.Attestation{C: attestationv1.NewAttestationClient(cfg.NATS)}, CA: store.CA{C: cav1.NewCAClient(cfg.NATS)},
		Clock: cfg.Clock, HeartbeatTimeout: cfg.HeartbeatTimeout, ReattestEvery: cfg.ReattestEvery, Logger: logger})
	if err != nil {
		return nil, err
	}
	s := &Service{app: svc, run: r}
	// The watcher starts before requests are taken, so no revocation
	// made elsewhere slips by this process's cache.
	if err := r.Consume(func(ctx context.Context) (*events.Consumer, error) {
		return transport.WatchRevocations(ctx, js, st.Tokens, logger)
	}); err != nil {
		s.Stop()
		return nil, err
	}
	if err := transport.Register(r.Mux(), svc, logger); err != nil {
		s.Stop()
		return nil, err
	}
	if err := r.Consume(func(ctx context.Context) (*events.Consumer, error) {
		return transport.ConsumeAccounts(ctx, js, svc, logger)
	}); err != nil {
		s.Stop()
		return nil, err
	}
	// Often enough to catch a silent node within a third of the timeout,
	// and an overdue one within its grace.
	every := max(min(svc.HeartbeatTimeout()/3, svc.ReattestEvery()/10), time.Millisecond)
	r.Go(func(ctx context.Context) { transport.Sweep(ctx, svc, every, logger) })
	r.Start()
	return s, nil
}

// MarkUntrusted takes a node's trust away: it can no longer authenticate
// and its certificate is revoked. For the re-attestation loop.
func (s *Service) MarkUntrusted(ctx context.Context, accountID, nodeID, reason string) error {
	_, err := s.app.MarkUntrusted(ctx, accountID, nodeID, reason)
	return err
}

// Stop stops taking requests and events, and the sweep.
func (s *Service) Stop() { s.run.Stop() }
