package ca

import (
	"errors"
	"time"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
)

// Config is what the service needs to run.
type Config struct {
	service.Options
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

func (cfg *Config) check() error {
	if cfg.NATS == nil || cfg.KEK == nil {
		return errors.New("ca: a NATS connection and a key-encryption key are required")
	}
	if cfg.Cache == nil {
		cfg.Cache = cache.NewMemory(0)
	}
	return nil
}
