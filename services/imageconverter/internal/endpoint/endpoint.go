// Package endpoint adapts the image converter's app to its generated NATS server
// interface: each method converts its protobuf request to domain values
// (through wire), calls the app and converts the result back.
package endpoint

import (
	"context"

	"github.com/cloister-cc/cloister/libs/events"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/wire"
)

// Server is the service behind the generated ImageConverterServer.
type Server struct {
	s *app.Service
}

var _ imageconverterv1.ImageConverterServer = (*Server)(nil)

func (sv *Server) CreateApp(ctx context.Context, r *imageconverterv1.CreateAppRequest) (*imageconverterv1.CreateAppResponse, error) {
	s := sv.s
	a, err := s.CreateApp(ctx, r.GetAccountId(), wire.SpecFromProto(r.GetSpec()), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.CreateAppResponse{App: wire.AppToProto(a)}, nil
}

func (sv *Server) GetApp(ctx context.Context, r *imageconverterv1.GetAppRequest) (*imageconverterv1.GetAppResponse, error) {
	s := sv.s
	a, err := s.App(ctx, r.GetAccountId(), r.GetApp())
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.GetAppResponse{App: wire.AppToProto(a)}, nil
}

func (sv *Server) ListApps(ctx context.Context, r *imageconverterv1.ListAppsRequest) (*imageconverterv1.ListAppsResponse, error) {
	s := sv.s
	as, err := s.Apps(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	out := &imageconverterv1.ListAppsResponse{}
	for _, a := range as {
		out.Apps = append(out.Apps, wire.AppToProto(a))
	}
	return out, nil
}

func (sv *Server) UpdateApp(ctx context.Context, r *imageconverterv1.UpdateAppRequest) (*imageconverterv1.UpdateAppResponse, error) {
	s := sv.s
	a, err := s.UpdateApp(ctx, r.GetAccountId(), r.GetAppId(), wire.SpecFromProto(r.GetSpec()), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.UpdateAppResponse{App: wire.AppToProto(a)}, nil
}

func (sv *Server) DeleteApp(ctx context.Context, r *imageconverterv1.DeleteAppRequest) (*imageconverterv1.DeleteAppResponse, error) {
	s := sv.s
	if err := s.DeleteApp(ctx, r.GetAccountId(), r.GetAppId(), events.ActorOf(r.GetActor())); err != nil {
		return nil, err
	}
	return &imageconverterv1.DeleteAppResponse{}, nil
}

func (sv *Server) ConvertImage(ctx context.Context, r *imageconverterv1.ConvertImageRequest) (*imageconverterv1.ConvertImageResponse, error) {
	s := sv.s
	img, err := s.ConvertImage(ctx, r.GetAccountId(), r.GetApp(), r.GetTag(), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.ConvertImageResponse{Image: wire.ImageToProto(img)}, nil
}

func (sv *Server) ListImages(ctx context.Context, r *imageconverterv1.ListImagesRequest) (*imageconverterv1.ListImagesResponse, error) {
	s := sv.s
	imgs, err := s.ImagesOf(ctx, r.GetAccountId(), r.GetAppId())
	if err != nil {
		return nil, err
	}
	out := &imageconverterv1.ListImagesResponse{}
	for _, i := range imgs {
		out.Images = append(out.Images, wire.ImageToProto(i))
	}
	return out, nil
}

func (sv *Server) GetImage(ctx context.Context, r *imageconverterv1.GetImageRequest) (*imageconverterv1.GetImageResponse, error) {
	s := sv.s
	img, err := s.Image(ctx, r.GetAccountId(), r.GetImageId())
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.GetImageResponse{Image: wire.ImageToProto(img)}, nil
}

func (sv *Server) DeleteImage(ctx context.Context, r *imageconverterv1.DeleteImageRequest) (*imageconverterv1.DeleteImageResponse, error) {
	s := sv.s
	if err := s.DeleteImage(ctx, r.GetAccountId(), r.GetImageId(), events.ActorOf(r.GetActor())); err != nil {
		return nil, err
	}
	return &imageconverterv1.DeleteImageResponse{}, nil
}

func (sv *Server) PutRegistryCredential(ctx context.Context, r *imageconverterv1.PutRegistryCredentialRequest) (*imageconverterv1.PutRegistryCredentialResponse, error) {
	s := sv.s
	c, err := s.PutRegistryCredential(ctx, r.GetAccountId(), r.GetRegistry(), r.GetUsername(), r.GetPassword(), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.PutRegistryCredentialResponse{Credential: wire.RegistryCredentialToProto(c)}, nil
}

func (sv *Server) ListRegistryCredentials(ctx context.Context, r *imageconverterv1.ListRegistryCredentialsRequest) (*imageconverterv1.ListRegistryCredentialsResponse, error) {
	s := sv.s
	cs, err := s.RegistryCredentials(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	out := &imageconverterv1.ListRegistryCredentialsResponse{}
	for _, c := range cs {
		out.Credentials = append(out.Credentials, wire.RegistryCredentialToProto(c))
	}
	return out, nil
}

func (sv *Server) DeleteRegistryCredential(ctx context.Context, r *imageconverterv1.DeleteRegistryCredentialRequest) (*imageconverterv1.DeleteRegistryCredentialResponse, error) {
	s := sv.s
	if err := s.DeleteRegistryCredential(ctx, r.GetAccountId(), r.GetRegistry(), events.ActorOf(r.GetActor())); err != nil {
		return nil, err
	}
	return &imageconverterv1.DeleteRegistryCredentialResponse{}, nil
}

func (sv *Server) GetSigningKey(ctx context.Context, r *imageconverterv1.GetSigningKeyRequest) (*imageconverterv1.GetSigningKeyResponse, error) {
	s := sv.s
	k, err := s.SigningKey(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	return &imageconverterv1.GetSigningKeyResponse{Key: wire.SigningKeyToProto(k)}, nil
}

// New returns the endpoints of s.
func New(s *app.Service) *Server { return &Server{s: s} }
