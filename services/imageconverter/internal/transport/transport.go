// Package transport serves the image converter over NATS and consumes
// the account events that create and remove signing keys.
package transport

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	accountclient "github.com/cloister-cc/cloister/services/account/client"
	"github.com/cloister-cc/cloister/services/imageconverter/client"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/store"
)

// Register subscribes every method on mux.
func Register(mux *natsrpc.Mux, s *app.Service, logger *slog.Logger) error {
	return errors.Join(
		client.CreateApp.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.CreateAppRequest) (*imageconverterv1.CreateAppResponse, error) {
			a, err := s.CreateApp(ctx, r.GetAccountId(), store.SpecFromProto(r.GetSpec()), events.ActorOf(r.GetActor()))
			if err != nil {
				return nil, err
			}
			return &imageconverterv1.CreateAppResponse{App: store.AppToProto(a)}, nil
		}),
		client.GetApp.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.GetAppRequest) (*imageconverterv1.GetAppResponse, error) {
			a, err := s.App(ctx, r.GetAccountId(), r.GetApp())
			if err != nil {
				return nil, err
			}
			return &imageconverterv1.GetAppResponse{App: store.AppToProto(a)}, nil
		}),
		client.ListApps.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.ListAppsRequest) (*imageconverterv1.ListAppsResponse, error) {
			as, err := s.Apps(ctx, r.GetAccountId())
			if err != nil {
				return nil, err
			}
			out := &imageconverterv1.ListAppsResponse{}
			for _, a := range as {
				out.Apps = append(out.Apps, store.AppToProto(a))
			}
			return out, nil
		}),
		client.UpdateApp.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.UpdateAppRequest) (*imageconverterv1.UpdateAppResponse, error) {
			a, err := s.UpdateApp(ctx, r.GetAccountId(), r.GetAppId(), store.SpecFromProto(r.GetSpec()), events.ActorOf(r.GetActor()))
			if err != nil {
				return nil, err
			}
			return &imageconverterv1.UpdateAppResponse{App: store.AppToProto(a)}, nil
		}),
		client.DeleteApp.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.DeleteAppRequest) (*imageconverterv1.DeleteAppResponse, error) {
			if err := s.DeleteApp(ctx, r.GetAccountId(), r.GetAppId(), events.ActorOf(r.GetActor())); err != nil {
				return nil, err
			}
			return &imageconverterv1.DeleteAppResponse{}, nil
		}),
		client.ConvertImage.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.ConvertImageRequest) (*imageconverterv1.ConvertImageResponse, error) {
			img, err := s.ConvertImage(ctx, r.GetAccountId(), r.GetApp(), r.GetTag(), events.ActorOf(r.GetActor()))
			if err != nil {
				return nil, err
			}
			return &imageconverterv1.ConvertImageResponse{Image: store.ImageToProto(img)}, nil
		}),
		client.ListImages.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.ListImagesRequest) (*imageconverterv1.ListImagesResponse, error) {
			imgs, err := s.ImagesOf(ctx, r.GetAccountId(), r.GetAppId())
			if err != nil {
				return nil, err
			}
			out := &imageconverterv1.ListImagesResponse{}
			for _, i := range imgs {
				out.Images = append(out.Images, store.ImageToProto(i))
			}
			return out, nil
		}),
		client.GetImage.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.GetImageRequest) (*imageconverterv1.GetImageResponse, error) {
			img, err := s.Image(ctx, r.GetAccountId(), r.GetImageId())
			if err != nil {
				return nil, err
			}
			return &imageconverterv1.GetImageResponse{Image: store.ImageToProto(img)}, nil
		}),
		client.DeleteImage.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.DeleteImageRequest) (*imageconverterv1.DeleteImageResponse, error) {
			if err := s.DeleteImage(ctx, r.GetAccountId(), r.GetImageId(), events.ActorOf(r.GetActor())); err != nil {
				return nil, err
			}
			return &imageconverterv1.DeleteImageResponse{}, nil
		}),
		client.PutRegistryCredential.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.PutRegistryCredentialRequest) (*imageconverterv1.PutRegistryCredentialResponse, error) {
			c, err := s.PutRegistryCredential(ctx, r.GetAccountId(), r.GetRegistry(), r.GetUsername(), r.GetPassword(), events.ActorOf(r.GetActor()))
			if err != nil {
				return nil, err
			}
			return &imageconverterv1.PutRegistryCredentialResponse{Credential: store.RegistryCredentialToProto(c)}, nil
		}),
		client.ListRegistryCredentials.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.ListRegistryCredentialsRequest) (*imageconverterv1.ListRegistryCredentialsResponse, error) {
			cs, err := s.RegistryCredentials(ctx, r.GetAccountId())
			if err != nil {
				return nil, err
			}
			out := &imageconverterv1.ListRegistryCredentialsResponse{}
			for _, c := range cs {
				out.Credentials = append(out.Credentials, store.RegistryCredentialToProto(c))
			}
			return out, nil
		}),
		client.DeleteRegistryCredential.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.DeleteRegistryCredentialRequest) (*imageconverterv1.DeleteRegistryCredentialResponse, error) {
			if err := s.DeleteRegistryCredential(ctx, r.GetAccountId(), r.GetRegistry(), events.ActorOf(r.GetActor())); err != nil {
				return nil, err
			}
			return &imageconverterv1.DeleteRegistryCredentialResponse{}, nil
		}),
		client.GetSigningKey.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.GetSigningKeyRequest) (*imageconverterv1.GetSigningKeyResponse, error) {
			k, err := s.SigningKey(ctx, r.GetAccountId())
			if err != nil {
				return nil, err
			}
			return &imageconverterv1.GetSigningKeyResponse{Key: store.SigningKeyToProto(k)}, nil
		}),
	)
}

// ConsumeAccounts gives every new account its signing key and forgets a
// deleted account's applications and key, through a durable consumer.
func ConsumeAccounts(ctx context.Context, js jetstream.JetStream, s *app.Service, logger *slog.Logger) (*events.Consumer, error) {
	return events.Consume(ctx, js, events.ConsumerConfig{
		Stream:  events.StreamEvents,
		Durable: "imageconverter-accounts",
		FilterSubjects: []string{
			events.Subject(accountclient.Service, &accountv1.AccountCreated{}),
			events.Subject(accountclient.Service, &accountv1.AccountDeleted{}),
		},
		Logger: logger,
	}, func(ctx context.Context, ev events.Event) error {
		var c accountv1.AccountCreated
		if err := ev.Decode(&c); err == nil {
			return s.CreateSigningKey(ctx, c.GetAccount().GetId())
		}
		var d accountv1.AccountDeleted
		if err := ev.Decode(&d); err == nil {
			return s.DeleteAccount(ctx, d.GetAccountId())
		}
		return events.Permanent(errors.New("unexpected event " + ev.Envelope.GetType()))
	})
}

// jobMaxDeliver is how many times a conversion is attempted; the last
// attempt turns a transient failure into a failed image.
const jobMaxDeliver = 4

// ConsumeJobs runs conversion jobs from the JOBS work queue: each job goes
// to one worker of any replica; a worker that dies leaves its job to be
// redelivered once AckWait passes without InProgress.
func ConsumeJobs(ctx context.Context, js jetstream.JetStream, s *app.Service, logger *slog.Logger, ackWait time.Duration) (*events.Consumer, error) {
	return events.Consume(ctx, js, events.ConsumerConfig{
		Stream:         events.StreamJobs,
		Durable:        "imageconverter-convert",
		FilterSubjects: []string{store.JobSubject},
		MaxDeliver:     jobMaxDeliver,
		Backoff:        []time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second},
		AckWait:        ackWait,
		Logger:         logger,
	}, func(ctx context.Context, ev events.Event) error {
		var job imageconverterv1.ConvertJob
		if err := ev.Decode(&job); err != nil {
			return events.Permanent(err)
		}
		return s.RunConversion(ctx, job.GetAccountId(), job.GetImageId(), ev.Delivery >= jobMaxDeliver, func() { events.InProgress(ctx) })
	})
}
