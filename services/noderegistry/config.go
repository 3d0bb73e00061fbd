package noderegistry

import (
	"errors"
	"fmt"
	"time"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/peers"
)

// Config is what the service needs to run.
type Config struct {
	service.Options
	// Cache is where join-token lookups are cached; nil means an
	// in-process cache. Replicas may share one (Redis) or each keep their
	// own: revocations reach every replica's through its events.
	Cache cache.Cache
	Clock func() time.Time
	// HeartbeatTimeout is how long an active node may stay silent before
	// it is marked unreachable; default 90 s. The sweep runs every third
	// of it, unless SweepEvery says otherwise.
	HeartbeatTimeout time.Duration
	// ReattestEvery is how often a node enrolled with TEE evidence must
	// re-attest (Reattest); default 24 h. The sweep marks an attested node
	// untrusted, revoking its certificate, once a tenth more has passed
	// since it last attested. Nodes enrolled without evidence are exempt.
	ReattestEvery time.Duration
	// SweepEvery is how often the sweep runs in the background; by default
	// a third of HeartbeatTimeout or a tenth of ReattestEvery, whichever is
	// less. Negative: never in the background, only when Sweep is called
	// (tests that move their clock).
	SweepEvery time.Duration
	// PolicyTTL is how long the registry keeps what an account's
	// attestation policy says about node evidence; default 2 s. A change
	// of the policy drops it at once through its event: the TTL bounds a
	// missed event. Tests lengthen it to prove the event's path.
	PolicyTTL time.Duration
}

func (cfg *Config) check() error {
	if cfg.NATS == nil {
		return errors.New("noderegistry: a NATS connection is required")
	}
	if cfg.HeartbeatTimeout < 0 {
		return fmt.Errorf("noderegistry: heartbeat timeout %v is negative", cfg.HeartbeatTimeout)
	}
	if cfg.ReattestEvery < 0 {
		return fmt.Errorf("noderegistry: re-attestation period %v is negative", cfg.ReattestEvery)
	}
	if cfg.PolicyTTL < 0 {
		return fmt.Errorf("noderegistry: policy TTL %v is negative", cfg.PolicyTTL)
	}
	if cfg.PolicyTTL == 0 {
		cfg.PolicyTTL = peers.PolicyTTL
	}
	if cfg.Cache == nil {
		cfg.Cache = cache.NewMemory(0)
	}
	return nil
}
