package imageconverter

import (
	"cmp"
	"crypto/rsa"
	"errors"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
)

// Config is what the service needs to run.
type Config struct {
	service.Options
	// KEK seals the accounts' signing keys and registry credentials. Required.
	KEK   *pki.KEK
	Clock func() time.Time
	// GenerateKey makes the accounts' signing keys; tests may reuse keys.
	GenerateKey func(io.Reader) (*rsa.PrivateKey, error)
	// Launcher is the cloister-launcher binary packed into every converted
	// image. Without it this process serves the API only, and conversion
	// jobs wait for a process that has one.
	Launcher []byte
	// GramineImage names the Gramine runtime image whose runtime every
	// converted image carries, pulled on the first conversion; Runtime,
	// if set, is that runtime already loaded (tests and -dev). A process
	// with a Launcher needs one of the two.
	GramineImage string
	Runtime      *enclave.Runtime
	// RegistryOptions are extra go-containerregistry options (a transport
	// for tests or proxies).
	RegistryOptions []remote.Option
	// JobAckWait is how long a silent worker keeps its job before it is
	// redelivered; default 1 minute (a running job reports every second).
	JobAckWait time.Duration
}

func (cfg *Config) check() error {
	if cfg.NATS == nil || cfg.KEK == nil {
		return errors.New("imageconverter: a NATS connection and a key-encryption key are required")
	}
	if len(cfg.Launcher) > 0 && cfg.Runtime == nil && cfg.GramineImage == "" {
		return errors.New("imageconverter: converting needs a Gramine runtime image (GramineImage)")
	}
	cfg.JobAckWait = cmp.Or(cfg.JobAckWait, time.Minute)
	return nil
}

// converter converts images if this process has a launcher; nil if not.
func (cfg *Config) converter() app.Converter {
	if len(cfg.Launcher) == 0 {
		return nil
	}
	return converter{launcher: cfg.Launcher, options: cfg.RegistryOptions,
		runtime: &runtimeLoader{ref: cfg.GramineImage, rt: cfg.Runtime, options: cfg.RegistryOptions}}
}
