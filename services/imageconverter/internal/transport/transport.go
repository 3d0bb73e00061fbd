// Package transport serves the image converter on its runner: its request
// subjects, the account events that create and remove signing keys, and
// conversion jobs.
package transport

import (
	"context"
	"time"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/store"
)

// Serve serves the image converter on r: its request subjects, through
// the generated imageconverterv1.RegisterImageConverterServer, and the
// account events it follows. With jobs, this process also runs
// conversions, each of which a silent worker keeps for ackWait.
func Serve(r *service.Runner, s *app.Service, jobs bool, ackWait time.Duration) error {
	if err := imageconverterv1.RegisterImageConverterServer(r.Mux(), &server{s: s}, r.Logger()); err != nil {
		return err
	}
	if err := r.ConsumeRoutes("imageconverter-accounts", accountRoutes(s)); err != nil {
		return err
	}
	if !jobs {
		return nil
	}
	return consumeJobs(r, s, ackWait)
}

// server is the service behind the generated ImageConverterServer interface.
type server struct {
	s *app.Service
}

var _ imageconverterv1.ImageConverterServer = (*server)(nil)

func (sv *server) CreateApp(ctx context.Context, r *imageconverterv1.CreateAppRequest) (*imageconverterv1.CreateAppResponse, error) {
	s := sv.s
	a, err := s.CreateApp(ctx, r.GetAccountId(), store.SpecFromProto(r.GetSpec()), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.CreateAppResponse{App: store.AppToProto(a)}, nil
}

func (sv *server) GetApp(ctx context.Context, r *imageconverterv1.GetAppRequest) (*imageconverterv1.GetAppResponse, error) {
	s := sv.s
	a, err := s.App(ctx, r.GetAccountId(), r.GetApp())
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.GetAppResponse{App: store.AppToProto(a)}, nil
}

func (sv *server) ListApps(ctx context.Context, r *imageconverterv1.ListAppsRequest) (*imageconverterv1.ListAppsResponse, error) {
	s := sv.s
	as, err := s.Apps(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	out := &imageconverterv1.ListAppsResponse{}
	for _, a := range as {
		out.Apps = append(out.Apps, store.AppToProto(a))
	}
	return out, nil
}

func (sv *server) UpdateApp(ctx context.Context, r *imageconverterv1.UpdateAppRequest) (*imageconverterv1.UpdateAppResponse, error) {
	s := sv.s
	a, err := s.UpdateApp(ctx, r.GetAccountId(), r.GetAppId(), store.SpecFromProto(r.GetSpec()), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.UpdateAppResponse{App: store.AppToProto(a)}, nil
}

func (sv *server) DeleteApp(ctx context.Context, r *imageconverterv1.DeleteAppRequest) (*imageconverterv1.DeleteAppResponse, error) {
	s := sv.s
	if err := s.DeleteApp(ctx, r.GetAccountId(), r.GetAppId(), events.ActorOf(r.GetActor())); err != nil {
		return nil, err
	}
	return &imageconverterv1.DeleteAppResponse{}, nil
}

func (sv *server) ConvertImage(ctx context.Context, r *imageconverterv1.ConvertImageRequest) (*imageconverterv1.ConvertImageResponse, error) {
	s := sv.s
	img, err := s.ConvertImage(ctx, r.GetAccountId(), r.GetApp(), r.GetTag(), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.ConvertImageResponse{Image: store.ImageToProto(img)}, nil
}

func (sv *server) ListImages(ctx context.Context, r *imageconverterv1.ListImagesRequest) (*imageconverterv1.ListImagesResponse, error) {
	s := sv.s
	imgs, err := s.ImagesOf(ctx, r.GetAccountId(), r.GetAppId())
	if err != nil {
		return nil, err
	}
	out := &imageconverterv1.ListImagesResponse{}
	for _, i := range imgs {
		out.Images = append(out.Images, store.ImageToProto(i))
	}
	return out, nil
}

func (sv *server) GetImage(ctx context.Context, r *imageconverterv1.GetImageRequest) (*imageconverterv1.GetImageResponse, error) {
	s := sv.s
	img, err := s.Image(ctx, r.GetAccountId(), r.GetImageId())
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.GetImageResponse{Image: store.ImageToProto(img)}, nil
}

func (sv *server) DeleteImage(ctx context.Context, r *imageconverterv1.DeleteImageRequest) (*imageconverterv1.DeleteImageResponse, error) {
	s := sv.s
	if err := s.DeleteImage(ctx, r.GetAccountId(), r.GetImageId(), events.ActorOf(r.GetActor())); err != nil {
		return nil, err
	}
	return &imageconverterv1.DeleteImageResponse{}, nil
}

func (sv *server) PutRegistryCredential(ctx context.Context, r *imageconverterv1.PutRegistryCredentialRequest) (*imageconverterv1.PutRegistryCredentialResponse, error) {
	s := sv.s
	c, err := s.PutRegistryCredential(ctx, r.GetAccountId(), r.GetRegistry(), r.GetUsername(), r.GetPassword(), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.PutRegistryCredentialResponse{Credential: store.RegistryCredentialToProto(c)}, nil
}

func (sv *server) ListRegistryCredentials(ctx context.Context, r *imageconverterv1.ListRegistryCredentialsRequest) (*imageconverterv1.ListRegistryCredentialsResponse, error) {
	s := sv.s
	cs, err := s.RegistryCredentials(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	out := &imageconverterv1.ListRegistryCredentialsResponse{}
	for _, c := range cs {
		out.Credentials = append(out.Credentials, store.RegistryCredentialToProto(c))
	}
	return out, nil
}

func (sv *server) DeleteRegistryCredential(ctx context.Context, r *imageconverterv1.DeleteRegistryCredentialRequest) (*imageconverterv1.DeleteRegistryCredentialResponse, error) {
	s := sv.s
	if err := s.DeleteRegistryCredential(ctx, r.GetAccountId(), r.GetRegistry(), events.ActorOf(r.GetActor())); err != nil {
		return nil, err
	}
	return &imageconverterv1.DeleteRegistryCredentialResponse{}, nil
}

func (sv *server) GetSigningKey(ctx context.Context, r *imageconverterv1.GetSigningKeyRequest) (*imageconverterv1.GetSigningKeyResponse, error) {
	s := sv.s
	k, err := s.SigningKey(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.GetSigningKeyResponse{Key: store.SigningKeyToProto(k)}, nil
}

// accountRoutes give every new account its signing key and forget a
// deleted account's applications and key, through a durable consumer.
func accountRoutes(s *app.Service) *events.Router {
	r := events.NewRouter()
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountCreated) error {
		return s.CreateSigningKey(ctx, m.GetAccount().GetId())
	})
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountDeleted) error {
		return s.DeleteAccount(ctx, m.GetAccountId())
	})
	return r
}

// jobMaxDeliver is how many times a conversion is attempted; the last
// attempt turns a transient failure into a failed image.
const jobMaxDeliver = 4

// consumeJobs runs conversion jobs from the JOBS work queue: each job goes
// to one worker of any replica; a worker that dies leaves its job to be
// redelivered once AckWait passes without InProgress.
func consumeJobs(r *service.Runner, s *app.Service, ackWait time.Duration) error {
	return r.Consume(events.ConsumerConfig{
		Stream:         events.StreamJobs,
		Durable:        "imageconverter-convert",
		FilterSubjects: []string{store.JobSubject},
		MaxDeliver:     jobMaxDeliver,
		Backoff:        []time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second},
		AckWait:        ackWait,
	}, func(ctx context.Context, ev events.Event) error {
		var job imageconverterv1.ConvertJob
		if err := ev.Decode(&job); err != nil {
			return events.Permanent(err)
		}
		return s.RunConversion(ctx, job.GetAccountId(), job.GetImageId(), ev.Delivery >= jobMaxDeliver, func() { events.InProgress(ctx) })
	})
}
