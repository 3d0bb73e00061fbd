// Package wire converts the image converter's domain values to and from
// their protobuf forms, for its endpoints and its events alike.
package wire

import (
	"strings"

	"fmt"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/events"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/domain"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ImageToProto converts an image.
func ImageToProto(i domain.Image) *imageconverterv1.Image {
	return &imageconverterv1.Image{Id: i.ID, AccountId: i.AccountID, AppId: i.AppID, Tag: i.Tag, Status: string(i.Status),
		Ref: i.Ref, Digest: i.Digest, Mrenclave: i.MRENCLAVE, Mrsigner: i.MRSIGNER, Isvprodid: uint32(i.ISVProdID),
		Isvsvn: uint32(i.ISVSVN), Reason: i.Reason, Error: i.Error, InputImage: i.InputImage, Output: i.Output,
		Progress: &imageconverterv1.Progress{Phase: i.Progress.Phase, Layers: uint32(i.Progress.Layers),
			TotalLayers: uint32(i.Progress.TotalLayers), Bytes: i.Progress.Bytes, TotalBytes: i.Progress.TotalBytes},
		CreatedAt: timestamppb.New(i.CreatedAt), UpdatedAt: timestamppb.New(i.UpdatedAt), RequestedBy: i.RequestedBy,
		GramineRuntime: i.GramineRuntime, GramineRuntimeStandIn: i.GramineRuntimeStandIn}
}

// RegistryCredentialToProto converts a credential, leaving out its password.
func RegistryCredentialToProto(c domain.RegistryCredential) *imageconverterv1.RegistryCredential {
	return &imageconverterv1.RegistryCredential{Registry: c.Registry, Username: c.Username, UpdatedAt: timestamppb.New(c.UpdatedAt)}
}

// AppToProto converts an application.
func AppToProto(a domain.App) *imageconverterv1.App {
	spec := SpecToProto(a.Spec)
	return &imageconverterv1.App{Id: a.ID, AccountId: a.AccountID, Name: a.Spec.Name, Spec: spec,
		CreatedAt: timestamppb.New(a.CreatedAt), UpdatedAt: timestamppb.New(a.UpdatedAt), Certificate: spec.GetCertificate(),
		CreatedBy: a.CreatedBy, UpdatedBy: a.UpdatedBy}
}

// SpecToProto converts a spec.
func SpecToProto(s domain.AppSpec) *imageconverterv1.AppSpec {
	out := &imageconverterv1.AppSpec{Name: s.Name, Description: s.Description, InputImage: s.InputImage, OutputImage: s.OutputImage,
		Isvprodid: s.ISVProdID, Isvsvn: s.ISVSVN, MemorySize: s.MemorySize, Threads: s.Threads,
		Entrypoint: s.Entrypoint, Args: s.Args, AllowCmdlineArgs: s.AllowCmdlineArgs, PassthroughEnv: s.PassthroughEnv,
		RwDirs: s.RWDirs, Debug: s.Debug, Certificate: &imageconverterv1.CertificateConfig{Domain: s.Certificate.Domain,
			Issuer: s.Certificate.Issuer, KeyPath: s.Certificate.KeyPath, KeyType: string(s.Certificate.KeyType),
			CertPath: s.Certificate.CertPath, ValidityDays: s.Certificate.ValidityDays}}
	for _, e := range s.Env {
		out.Env = append(out.Env, &imageconverterv1.EnvVar{Name: e.Name, Value: e.Value})
	}
	out.SecretsDir = s.SecretsDir
	for _, e := range s.SecretEnv {
		out.SecretEnv = append(out.SecretEnv, &imageconverterv1.SecretEnv{Name: e.Name, Secret: e.Secret})
	}
	for _, v := range s.Volumes {
		out.Volumes = append(out.Volumes, &imageconverterv1.Volume{Path: v.Path, KeyName: v.KeyName})
	}
	return out
}

// SpecFromProto converts a spec from the wire.
func SpecFromProto(p *imageconverterv1.AppSpec) domain.AppSpec {
	c := p.GetCertificate()
	s := domain.AppSpec{Name: strings.TrimSpace(p.GetName()), Description: p.GetDescription(), InputImage: p.GetInputImage(),
		OutputImage: p.GetOutputImage(), ISVProdID: p.GetIsvprodid(), ISVSVN: p.GetIsvsvn(), MemorySize: p.GetMemorySize(),
		Threads: p.GetThreads(), Entrypoint: p.GetEntrypoint(), Args: p.GetArgs(), AllowCmdlineArgs: p.GetAllowCmdlineArgs(),
		PassthroughEnv: p.GetPassthroughEnv(), RWDirs: p.GetRwDirs(), Debug: p.GetDebug(),
		Certificate: domain.CertificateConfig{Domain: c.GetDomain(), Issuer: c.GetIssuer(), KeyPath: c.GetKeyPath(),
			KeyType: pki.KeyType(c.GetKeyType()), CertPath: c.GetCertPath(), ValidityDays: c.GetValidityDays()}}
	for _, e := range p.GetEnv() {
		s.Env = append(s.Env, domain.EnvVar{Name: e.GetName(), Value: e.GetValue()})
	}
	s.SecretsDir = p.GetSecretsDir()
	for _, e := range p.GetSecretEnv() {
		s.SecretEnv = append(s.SecretEnv, enclave.SecretEnv{Name: e.GetName(), Secret: e.GetSecret()})
	}
	for _, v := range p.GetVolumes() {
		s.Volumes = append(s.Volumes, enclave.Volume{Path: v.GetPath(), KeyName: v.GetKeyName()})
	}
	return s
}

// SecretToProto converts what is told of a secret: never its value.
func SecretToProto(s domain.Secret) *imageconverterv1.Secret {
	out := &imageconverterv1.Secret{AppId: s.AppID, Name: s.Name, UpdatedAt: timestamppb.New(s.UpdatedAt)}
	for _, v := range s.Versions {
		out.Versions = append(out.Versions, &imageconverterv1.SecretVersion{Version: v.Number, Size: v.Size,
			CreatedAt: timestamppb.New(v.CreatedAt), CreatedBy: v.CreatedBy, Pending: v.Pending})
	}
	return out
}

// SigningKeyToProto converts a signing key's public half.
func SigningKeyToProto(k domain.SigningKey) *imageconverterv1.SigningKey {
	return &imageconverterv1.SigningKey{AccountId: k.AccountID, PublicKeyPem: k.PublicPEM, Mrsigner: k.MRSIGNER[:],
		CreatedAt: timestamppb.New(k.CreatedAt)}
}

// Event is an event's wire form: its account, protobuf form and, when a
// person caused it, audit record.
func Event(ev domain.Event) events.Outgoing {
	switch e := ev.(type) {
	case domain.AppCreated:
		return events.Outgoing{AccountID: e.App.AccountID, Payload: &imageconverterv1.AppCreated{App: AppToProto(e.App)}, Audit: byPerson(&e.Audit)}
	case domain.AppUpdated:
		return events.Outgoing{AccountID: e.App.AccountID, Payload: &imageconverterv1.AppUpdated{App: AppToProto(e.App)}, Audit: byPerson(&e.Audit)}
	case domain.AppDeleted:
		return events.Outgoing{AccountID: e.AccountID, Payload: &imageconverterv1.AppDeleted{AccountId: e.AccountID, AppId: e.AppID}, Audit: byPerson(&e.Audit)}
	case domain.SecretSet:
		o := events.Outgoing{AccountID: e.AccountID, Audit: byPerson(&e.Audit)}
		if e.Version.Pending {
			o.Payload = &imageconverterv1.SecretChangeRequested{AccountId: e.AccountID, AppId: e.AppID, Name: e.Name,
				Version: e.Version.Number, Size: e.Version.Size, RequestedBy: e.Version.CreatedBy, VersionId: e.Version.ID}
		}
		return o
	case domain.SecretDeleted:
		return events.Outgoing{AccountID: e.AccountID, Payload: &imageconverterv1.SecretDeleted{AccountId: e.AccountID, AppId: e.AppID, Name: e.Name},
			Audit: byPerson(&e.Audit)}
	case domain.SigningKeyCreated:
		return events.Outgoing{AccountID: e.Key.AccountID, Payload: &imageconverterv1.SigningKeyCreated{Key: SigningKeyToProto(e.Key)}}
	case domain.ConversionRequested:
		return events.Outgoing{AccountID: e.Image.AccountID, Payload: &imageconverterv1.ConversionRequested{Image: ImageToProto(e.Image)}, Audit: byPerson(&e.Audit)}
	case domain.ConversionProgressed:
		return events.Outgoing{AccountID: e.Image.AccountID, Payload: &imageconverterv1.ConversionProgressed{Image: ImageToProto(e.Image)}}
	case domain.ImageConverted:
		return events.Outgoing{AccountID: e.Image.AccountID, Payload: &imageconverterv1.ImageConverted{Image: ImageToProto(e.Image)}}
	case domain.ConversionFailed:
		return events.Outgoing{AccountID: e.Image.AccountID, Payload: &imageconverterv1.ConversionFailed{Image: ImageToProto(e.Image)}}
	case domain.ImageDeleted:
		i := e.Image
		return events.Outgoing{AccountID: i.AccountID, Payload: &imageconverterv1.ImageDeleted{AccountId: i.AccountID, AppId: i.AppID, ImageId: i.ID, Mrenclave: i.MRENCLAVE}, Audit: byPerson(&e.Audit)}
	}
	panic(fmt.Sprintf("wire: no wire form for event %T", ev))
}

// byPerson is rec if a person made the change; a change the service made
// on its own is not audited.
func byPerson(rec *audit.Entry) *audit.Entry {
	if rec == nil || rec.Actor.UserID == "" {
		return nil
	}
	return rec
}
