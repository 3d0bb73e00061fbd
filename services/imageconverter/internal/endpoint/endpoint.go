// Package endpoint adapts the image converter's app to its generated NATS server
// interface: each method converts its protobuf request to domain values
// (through wire), calls the app and converts the result back.
package endpoint

import (
	"context"

	"github.com/cloister-cc/cloister/libs/events"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/reply"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/wire"
)

// Server is the service behind the generated ImageConverterServer.
type Server struct {
	s *app.Service
}

var _ imageconverterv1.ImageConverterServer = (*Server)(nil)

func (sv *Server) CreateApp(ctx context.Context, r *imageconverterv1.CreateAppRequest) (*imageconverterv1.CreateAppResponse, error) {
	a, err := sv.s.CreateApp(ctx, r.GetAccountId(), wire.SpecFromProto(r.GetSpec()), events.ActorOf(r.GetActor()))
	return reply.With(err, func() *imageconverterv1.CreateAppResponse {
		return &imageconverterv1.CreateAppResponse{App: wire.AppToProto(a)}
	})
}

func (sv *Server) GetApp(ctx context.Context, r *imageconverterv1.GetAppRequest) (*imageconverterv1.GetAppResponse, error) {
	a, err := sv.s.App(ctx, r.GetAccountId(), r.GetApp())
	return reply.With(err, func() *imageconverterv1.GetAppResponse {
		return &imageconverterv1.GetAppResponse{App: wire.AppToProto(a)}
	})
}

func (sv *Server) ListApps(ctx context.Context, r *imageconverterv1.ListAppsRequest) (*imageconverterv1.ListAppsResponse, error) {
	as, err := sv.s.Apps(ctx, r.GetAccountId())
	return reply.With(err, func() *imageconverterv1.ListAppsResponse {
		return &imageconverterv1.ListAppsResponse{Apps: reply.Map(as, wire.AppToProto)}
	})
}

func (sv *Server) UpdateApp(ctx context.Context, r *imageconverterv1.UpdateAppRequest) (*imageconverterv1.UpdateAppResponse, error) {
	a, err := sv.s.UpdateApp(ctx, r.GetAccountId(), r.GetAppId(), wire.SpecFromProto(r.GetSpec()), events.ActorOf(r.GetActor()))
	return reply.With(err, func() *imageconverterv1.UpdateAppResponse {
		return &imageconverterv1.UpdateAppResponse{App: wire.AppToProto(a)}
	})
}

func (sv *Server) DeleteApp(ctx context.Context, r *imageconverterv1.DeleteAppRequest) (*imageconverterv1.DeleteAppResponse, error) {
	if err := sv.s.DeleteApp(ctx, r.GetAccountId(), r.GetAppId(), events.ActorOf(r.GetActor())); err != nil {
		return nil, err
	}
	return &imageconverterv1.DeleteAppResponse{}, nil
}

func (sv *Server) ConvertImage(ctx context.Context, r *imageconverterv1.ConvertImageRequest) (*imageconverterv1.ConvertImageResponse, error) {
	img, err := sv.s.ConvertImage(ctx, r.GetAccountId(), r.GetApp(), r.GetTag(), events.ActorOf(r.GetActor()))
	return reply.With(err, func() *imageconverterv1.ConvertImageResponse {
		return &imageconverterv1.ConvertImageResponse{Image: wire.ImageToProto(img)}
	})
}

func (sv *Server) ListImages(ctx context.Context, r *imageconverterv1.ListImagesRequest) (*imageconverterv1.ListImagesResponse, error) {
	imgs, err := sv.s.ImagesOf(ctx, r.GetAccountId(), r.GetAppId())
	return reply.With(err, func() *imageconverterv1.ListImagesResponse {
		return &imageconverterv1.ListImagesResponse{Images: reply.Map(imgs, wire.ImageToProto)}
	})
}

func (sv *Server) GetImage(ctx context.Context, r *imageconverterv1.GetImageRequest) (*imageconverterv1.GetImageResponse, error) {
	img, err := sv.s.Image(ctx, r.GetAccountId(), r.GetImageId())
	return reply.With(err, func() *imageconverterv1.GetImageResponse {
		return &imageconverterv1.GetImageResponse{Image: wire.ImageToProto(img), ReferenceStatus: sv.s.ReferenceStatus(ctx, img)}
	})
}

func (sv *Server) DeleteImage(ctx context.Context, r *imageconverterv1.DeleteImageRequest) (*imageconverterv1.DeleteImageResponse, error) {
	if err := sv.s.DeleteImage(ctx, r.GetAccountId(), r.GetImageId(), events.ActorOf(r.GetActor())); err != nil {
		return nil, err
	}
	return &imageconverterv1.DeleteImageResponse{}, nil
}

func (sv *Server) PutRegistryCredential(ctx context.Context, r *imageconverterv1.PutRegistryCredentialRequest) (*imageconverterv1.PutRegistryCredentialResponse, error) {
	c, err := sv.s.PutRegistryCredential(ctx, r.GetAccountId(), r.GetRegistry(), r.GetUsername(), r.GetPassword(), events.ActorOf(r.GetActor()))
	return reply.With(err, func() *imageconverterv1.PutRegistryCredentialResponse {
		return &imageconverterv1.PutRegistryCredentialResponse{Credential: wire.RegistryCredentialToProto(c)}
	})
}

func (sv *Server) ListRegistryCredentials(ctx context.Context, r *imageconverterv1.ListRegistryCredentialsRequest) (*imageconverterv1.ListRegistryCredentialsResponse, error) {
	cs, err := sv.s.RegistryCredentials(ctx, r.GetAccountId())
	return reply.With(err, func() *imageconverterv1.ListRegistryCredentialsResponse {
		return &imageconverterv1.ListRegistryCredentialsResponse{Credentials: reply.Map(cs, wire.RegistryCredentialToProto)}
	})
}

func (sv *Server) DeleteRegistryCredential(ctx context.Context, r *imageconverterv1.DeleteRegistryCredentialRequest) (*imageconverterv1.DeleteRegistryCredentialResponse, error) {
	if err := sv.s.DeleteRegistryCredential(ctx, r.GetAccountId(), r.GetRegistry(), events.ActorOf(r.GetActor())); err != nil {
		return nil, err
	}
	return &imageconverterv1.DeleteRegistryCredentialResponse{}, nil
}

func (sv *Server) GetSigningKey(ctx context.Context, r *imageconverterv1.GetSigningKeyRequest) (*imageconverterv1.GetSigningKeyResponse, error) {
	k, err := sv.s.SigningKey(ctx, r.GetAccountId())
	return reply.With(err, func() *imageconverterv1.GetSigningKeyResponse {
		return &imageconverterv1.GetSigningKeyResponse{Key: wire.SigningKeyToProto(k)}
	})
}

// New returns the endpoints of s.
func New(s *app.Service) *Server { return &Server{s: s} }

// PutSecret implements the service's PutSecret.
func (sv *Server) PutSecret(ctx context.Context, r *imageconverterv1.PutSecretRequest) (*imageconverterv1.PutSecretResponse, error) {
	sec, err := sv.s.PutSecret(ctx, r.GetAccountId(), r.GetApp(), r.GetName(), r.GetValue(), events.ActorOf(r.GetActor()))
	return reply.With(err, func() *imageconverterv1.PutSecretResponse {
		return &imageconverterv1.PutSecretResponse{Secret: wire.SecretToProto(sec)}
	})
}

// ListSecrets implements the service's ListSecrets.
func (sv *Server) ListSecrets(ctx context.Context, r *imageconverterv1.ListSecretsRequest) (*imageconverterv1.ListSecretsResponse, error) {
	all, err := sv.s.Secrets(ctx, r.GetAccountId(), r.GetApp())
	return reply.With(err, func() *imageconverterv1.ListSecretsResponse {
		return &imageconverterv1.ListSecretsResponse{Secrets: reply.Map(all, wire.SecretToProto)}
	})
}

// DeleteSecret implements the service's DeleteSecret.
func (sv *Server) DeleteSecret(ctx context.Context, r *imageconverterv1.DeleteSecretRequest) (*imageconverterv1.DeleteSecretResponse, error) {
	if err := sv.s.DeleteSecret(ctx, r.GetAccountId(), r.GetApp(), r.GetName(), events.ActorOf(r.GetActor())); err != nil {
		return nil, err
	}
	return &imageconverterv1.DeleteSecretResponse{}, nil
}

// SealSecrets implements the service's SealSecrets.
func (sv *Server) SealSecrets(ctx context.Context, r *imageconverterv1.SealSecretsRequest) (*imageconverterv1.SealSecretsResponse, error) {
	sealed, err := sv.s.SealSecrets(ctx, r.GetAccountId(), r.GetAppId(), r.GetCertificateSerial())
	return reply.With(err, func() *imageconverterv1.SealSecretsResponse {
		return &imageconverterv1.SealSecretsResponse{Sealed: sealed.Bundle, Secrets: sealed.Secrets, VolumeKeys: sealed.VolumeKeys}
	})
}

// ExportVolumeKey implements the service's ExportVolumeKey.
func (sv *Server) ExportVolumeKey(ctx context.Context, r *imageconverterv1.ExportVolumeKeyRequest) (*imageconverterv1.ExportVolumeKeyResponse, error) {
	appID, key, err := sv.s.ExportVolumeKey(ctx, r.GetAccountId(), r.GetApp(), r.GetKeyName(), events.ActorOf(r.GetActor()))
	return reply.With(err, func() *imageconverterv1.ExportVolumeKeyResponse {
		return &imageconverterv1.ExportVolumeKeyResponse{AppId: appID, KeyName: r.GetKeyName(), Key: key}
	})
}
