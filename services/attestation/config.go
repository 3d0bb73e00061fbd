package attestation

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"time"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/events"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/services/attestation/internal/amd"
	"github.com/cloister-cc/cloister/services/attestation/internal/app"
	"github.com/cloister-cc/cloister/services/attestation/internal/pcs"
	"github.com/cloister-cc/cloister/services/attestation/internal/simulation"
	"github.com/cloister-cc/cloister/services/attestation/internal/store"
)

// Config is what the service needs to run.
type Config struct {
	service.Options
	// Simulation turns on the deployment's simulated quoting: a simulation
	// root is created on first start and kept sealed under KEK, and
	// accounts whose policy allows it may present simulated evidence.
	Simulation bool
	// KEK seals secrets at rest; required with Simulation.
	KEK *pki.KEK
	// PCSURL, when set, is the base URL of Intel's PCS or a PCCS (API v4)
	// from which missing or outdated collateral is fetched.
	PCSURL string
	// KDSURL, when set, is the base URL of AMD's key distribution service
	// (https://kdsintf.amd.com) or a mirror, from which the VCEK of an
	// SEV-SNP report that comes without it is fetched (and kept until it
	// expires).
	KDSURL string
	// Cache is where approved-image lookups are cached; nil means an
	// in-process cache (one replica only: replicas must share a cache).
	Cache cache.Cache
	// IntelRoot, IntelOptions and Clock override the trust anchor, Intel's
	// names and the time (tests).
	IntelRoot    *ecdsa.PublicKey
	IntelOptions []sgx.VerifierOption
	Clock        func() time.Time
	// AcceptUnboundEvidence accepts evidence whose REPORTDATA is not the
	// key binding and nonce asked for. Only tests that replay evidence
	// recorded on real hardware (whose REPORTDATA is fixed) set it; no
	// flag or setting of a deployment does. Every verdict so judged says
	// so in its error.
	AcceptUnboundEvidence bool
	// ReadTTL is how long a replica verifies with what it read of a policy
	// or of collateral (0: 2 s). A policy change applies on every replica
	// at once, through its PolicyChanged event; collateral stored through
	// another replica applies here within ReadTTL.
	ReadTTL time.Duration
}

func (cfg *Config) check() error {
	if cfg.NATS == nil {
		return errors.New("attestation: a NATS connection is required")
	}
	if cfg.Cache == nil {
		cfg.Cache = cache.NewMemory(0)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return nil
}

// app is the configuration of the service on r's stores st, with a
// collateral fetcher from PCSURL if there is one, and the deployment's
// simulation if it is on.
func (cfg *Config) app(ctx context.Context, r *service.Runner, st *store.Stores) (app.Config, error) {
	acfg := app.Config{Policies: st.Policies, Collaterals: st.Collaterals, Verdicts: st.Verdicts, Activity: st.Activity, Images: st.Images, Withdrawals: st.Withdrawals,
		Audit: events.AuditLog{JS: r.JetStream(), Producer: store.Producer}, IntelRoot: cfg.IntelRoot, IntelOptions: cfg.IntelOptions, Clock: cfg.Clock,
		ReadTTL: cfg.ReadTTL, AcceptUnboundEvidence: cfg.AcceptUnboundEvidence}
	var kds *amd.KDS
	if cfg.KDSURL != "" {
		var err error
		if kds, err = amd.NewKDS(cfg.KDSURL); err != nil {
			return app.Config{}, err
		}
	}
	acfg.SNP = amd.New(st.VCEKs, kds)
	if cfg.PCSURL != "" {
		f, err := pcs.New(cfg.PCSURL)
		if err != nil {
			return app.Config{}, err
		}
		acfg.Fetcher = f
	}
	if cfg.Simulation {
		simul, err := simulation.Open(ctx, r.JetStream(), r.Replicas(), cfg.KEK, cfg.Clock())
		if err != nil {
			return app.Config{}, err
		}
		acfg.Simulation = simul
	}
	return acfg, nil
}
