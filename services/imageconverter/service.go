// Package imageconverter is the composition root of the image converter:
// applications, the accounts' enclave signing keys, and the conversion of
// container images into enclave images.
package imageconverter

import (
	"cmp"
	"context"
	"crypto/rsa"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/events"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/store"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/transport"
)

// Config is what the service needs to run.
type Config struct {
	NATS     *nats.Conn
	Replicas int
	Logger   *slog.Logger
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
	// RecoverEvery is how often the outboxes are recovered (default
	// service.DefaultRecoverEvery); KVOptions are added to every store
	// (tests inject publish failures).
	RecoverEvery time.Duration
	KVOptions    []kv.Option
}

// Service is a running image converter.
type Service struct{ run *service.Runner }

// Start opens the service's state, subscribes its request subjects and
// starts consuming events (and conversion jobs, with a launcher).
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.NATS == nil || cfg.KEK == nil {
		return nil, errors.New("imageconverter: a NATS connection and a key-encryption key are required")
	}
	r, err := service.New(ctx, service.Config{Name: imageconverterv1.ImageConverterServiceName, NATS: cfg.NATS, Replicas: cfg.Replicas, Logger: cfg.Logger,
		RecoverEvery: cfg.RecoverEvery, KVOptions: cfg.KVOptions})
	if err != nil {
		return nil, err
	}
	js, logger := r.JetStream(), r.Logger()
	st, err := store.Open(ctx, js, r.Replicas(), r.KVOptions()...)
	if err != nil {
		return nil, err
	}
	images, registries, err := store.OpenImages(ctx, js, r.Replicas(), r.KVOptions()...)
	if err != nil {
		return nil, err
	}
	acfg := app.Config{Apps: st.Apps, Keys: st.Keys, Images: images, Registries: registries, Audit: events.AuditLog{JS: js, Producer: store.Producer},
		KEK: cfg.KEK, Clock: cfg.Clock, GenerateKey: cfg.GenerateKey, Logger: logger}
	if len(cfg.Launcher) > 0 {
		if cfg.Runtime == nil && cfg.GramineImage == "" {
			return nil, errors.New("imageconverter: converting needs a Gramine runtime image (GramineImage)")
		}
		acfg.Converter = converter{launcher: cfg.Launcher, options: cfg.RegistryOptions,
			runtime: &runtimeLoader{ref: cfg.GramineImage, rt: cfg.Runtime, options: cfg.RegistryOptions}}
	}
	svc, err := app.New(acfg)
	if err != nil {
		return nil, err
	}
	s := &Service{run: r}
	if err := transport.Register(r.Mux(), svc, logger); err != nil {
		s.Stop()
		return nil, err
	}
	consumers := []func(context.Context) (*events.Consumer, error){
		func(ctx context.Context) (*events.Consumer, error) {
			return transport.ConsumeAccounts(ctx, js, svc, logger)
		},
	}
	if acfg.Converter != nil {
		ackWait := cmp.Or(cfg.JobAckWait, time.Minute)
		consumers = append(consumers, func(ctx context.Context) (*events.Consumer, error) {
			return transport.ConsumeJobs(ctx, js, svc, logger, ackWait)
		})
	}
	for _, c := range consumers {
		if err := r.Consume(c); err != nil {
			s.Stop()
			return nil, err
		}
	}
	r.Start()
	return s, nil
}

// Stop stops taking requests and events.
func (s *Service) Stop() { s.run.Stop() }
