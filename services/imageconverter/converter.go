package imageconverter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/convert"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/domain"
)

// converter adapts the convert package to the service's Converter port.
type converter struct {
	launcher []byte
	runtime  *runtimeLoader
	options  []remote.Option
}

// runtimeLoader pulls the Gramine runtime image once, on the first
// conversion that needs it, and keeps it; a failed pull is tried again by
// the next conversion.
type runtimeLoader struct {
	ref     string
	options []remote.Option
	mu      sync.Mutex
	rt      *enclave.Runtime
}

func (l *runtimeLoader) load(ctx context.Context) (*enclave.Runtime, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rt != nil {
		return l.rt, nil
	}
	ref, err := name.ParseReference(l.ref)
	if err != nil {
		return nil, fmt.Errorf("the Gramine runtime image %q: %w", l.ref, err)
	}
	opts := append([]remote.Option{remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"})}, l.options...)
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("pulling the Gramine runtime image %s: %w", l.ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("pulling the Gramine runtime image %s: %w", l.ref, err)
	}
	rt, err := enclave.LoadRuntime(img, ref.Context().Digest(d.String()).String())
	if err != nil {
		return nil, fmt.Errorf("the Gramine runtime image %s: %w", l.ref, err)
	}
	l.rt = rt
	return rt, nil
}

var _ app.Converter = converter{}

func (c converter) Convert(ctx context.Context, r app.ConvertRequest) (app.ConvertResult, error) {
	s := r.App
	a := convert.App{AppID: r.AppID, Entrypoint: s.Entrypoint, Args: s.Args, AllowCmdlineArgs: s.AllowCmdlineArgs, PassthroughEnv: s.PassthroughEnv,
		RWDirs: s.RWDirs, MemorySize: s.MemorySize, Threads: s.Threads, ISVProdID: uint16(s.ISVProdID), ISVSVN: uint16(s.ISVSVN), Debug: s.Debug}
	for _, e := range s.Env {
		a.Env = append(a.Env, enclave.EnvVar{Name: e.Name, Value: e.Value})
	}
	if s.Certificate.Issuer == domain.IssuerCloister {
		a.Certificate = &enclave.Certificate{Domain: s.Certificate.Domain, KeyType: string(s.Certificate.KeyType),
			KeyPath: s.Certificate.KeyPath, CertPath: s.Certificate.CertPath}
	}
	if s.SecretsDir != "" {
		a.Secrets = &enclave.Secrets{Dir: s.SecretsDir, Env: slices.Clone(s.SecretEnv)}
	}
	a.Volumes = slices.Clone(s.Volumes)
	rt, err := c.runtime.load(ctx)
	if err != nil {
		return app.ConvertResult{}, &app.ConvertError{Reason: string(convert.ReasonInternal), Message: err.Error(), Transient: true}
	}
	req := convert.Request{Input: r.Input, Output: r.Output, App: a, Launcher: c.launcher, Runtime: rt, Signer: r.Signer, Now: r.Now,
		InputAuth: authOf(r.InputAuth), OutputAuth: authOf(r.OutputAuth), Options: c.options}
	if r.Progress != nil {
		req.Progress = func(p convert.Progress) {
			r.Progress(domain.Progress{Phase: p.Phase, Layers: p.Layers, TotalLayers: p.TotalLayers, Bytes: p.Bytes, TotalBytes: p.TotalBytes})
		}
	}
	res, err := convert.Convert(ctx, req)
	var ce *convert.Error
	if errors.As(err, &ce) {
		return app.ConvertResult{}, &app.ConvertError{Reason: string(ce.Reason), Message: ce.Err.Error(), Transient: ce.Transient()}
	}
	if err != nil {
		return app.ConvertResult{}, err
	}
	return app.ConvertResult{Ref: res.Ref, Digest: res.Digest, MRENCLAVE: res.MRENCLAVE, MRSIGNER: res.MRSIGNER,
		ISVProdID: res.ISVProdID, ISVSVN: res.ISVSVN, Runtime: res.Runtime, RuntimeStandIn: res.RuntimeStandIn}, nil
}

// resolver asks registries with the deployment's registry options (its
// network guard included).
type resolver struct{ options []remote.Option }

var _ app.Resolver = resolver{}

func (c resolver) Resolves(ctx context.Context, ref string, auth *app.Auth) (bool, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return false, err
	}
	opts := append([]remote.Option{remote.WithContext(ctx)}, c.options...)
	if a := authOf(auth); a != nil {
		opts = append(opts, remote.WithAuth(a))
	}
	_, err = remote.Head(r, opts...)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

func authOf(a *app.Auth) authn.Authenticator {
	if a == nil {
		return nil
	}
	return &authn.Basic{Username: a.Username, Password: a.Password}
}
