// Package imageconverter is the composition root of the image converter:
// applications, the accounts' enclave signing keys, and the conversion of
// container images into enclave images.
package imageconverter

import (
	"context"

	"github.com/cloister-cc/cloister/libs/events"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/peers"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/store"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/transport"
)

// Service is a running image converter.
type Service struct{ run *service.Runner }

// Start opens the service's state, subscribes its request subjects and
// starts consuming events (and conversion jobs, with a launcher).
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r, err := service.Run(ctx, imageconverterv1.ImageConverterServiceName, cfg.Options, func(r *service.Runner) error {
		js := r.JetStream()
		st, err := store.Open(ctx, js, r.Replicas(), r.KVOptions()...)
		if err != nil {
			return err
		}
		images, registries, err := store.OpenImages(ctx, js, r.Replicas(), r.KVOptions()...)
		if err != nil {
			return err
		}
		secrets, volumeKeys, policies, err := store.OpenSecrets(ctx, js, r.Replicas(), r.KVOptions()...)
		if err != nil {
			return err
		}
		conv := cfg.converter()
		svc, err := app.New(app.Config{Apps: st.Apps, Keys: st.Keys, Images: images, Registries: registries,
			Secrets: secrets, VolumeKeys: volumeKeys, Policies: policies, Certificates: peers.CA{C: cav1.NewCAClient(r.NATS())},
			Audit: events.AuditLog{JS: js, Producer: store.Producer},
			KEK:   cfg.KEK, Clock: cfg.Clock, GenerateKey: cfg.GenerateKey, Logger: r.Logger(), Converter: conv,
			Resolver: resolver{options: cfg.RegistryOptions}})
		if err != nil {
			return err
		}
		return transport.Serve(r, svc, conv != nil, cfg.JobAckWait)
	})
	if err != nil {
		return nil, err
	}
	return &Service{run: r}, nil
}

// Stop stops taking requests and events.
func (s *Service) Stop() { s.run.Stop() }
