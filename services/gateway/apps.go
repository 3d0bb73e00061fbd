package gateway

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net/http"

	"github.com/cloister-cc/cloister/libs/errs"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

func (g *Gateway) listApps(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.images.ListApps(r.Context(), &imageconverterv1.ListAppsRequest{AccountId: r.PathValue("account_id")})
	return answer(err, http.StatusOK, func() any { return list(resp.GetApps(), "", toApp) })
}

func (g *Gateway) createApp(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.AppSpec
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.images.CreateApp(r.Context(), &imageconverterv1.CreateAppRequest{AccountId: r.PathValue("account_id"),
		Spec: specToProto(b), Actor: p.proto()})
	return answer(err, http.StatusCreated, func() any { return toApp(resp.GetApp()) })
}

func (g *Gateway) getApp(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.images.GetApp(r.Context(), &imageconverterv1.GetAppRequest{AccountId: r.PathValue("account_id"), App: r.PathValue("app")})
	return answer(err, http.StatusOK, func() any { return toApp(resp.GetApp()) })
}

// updateApp applies a JSON merge patch (RFC 7396) to the application's
// spec: fields present replace, objects merge, null resets to the default.
func (g *Gateway) updateApp(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/merge-patch+json" && mt != "application/json") {
		return reply{}, errs.Newf(errs.Invalid, "Content-Type must be application/merge-patch+json or application/json, not %q", ct)
	}
	var patch map[string]json.RawMessage
	if err := DecodeStrict(http.MaxBytesReader(w, r.Body, MaxBodyBytes), &patch); err != nil {
		return reply{}, err
	}
	account := r.PathValue("account_id")
	cur, err := g.images.GetApp(r.Context(), &imageconverterv1.GetAppRequest{AccountId: account, App: r.PathValue("app")})
	if err != nil {
		return reply{}, err
	}
	current, err := json.Marshal(toApp(cur.GetApp()).AppSpec)
	if err != nil {
		return reply{}, err
	}
	merged, err := mergePatch(current, patch)
	if err != nil {
		return reply{}, err
	}
	var spec api.AppSpec
	if err := DecodeStrict(bytes.NewReader(merged), &spec); err != nil {
		return reply{}, err
	}
	resp, err := g.images.UpdateApp(r.Context(), &imageconverterv1.UpdateAppRequest{AccountId: account, AppId: cur.GetApp().GetId(),
		Spec: specToProto(spec), Actor: p.proto()})
	return answer(err, http.StatusOK, func() any { return toApp(resp.GetApp()) })
}

func (g *Gateway) deleteApp(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	if _, err := g.images.DeleteApp(r.Context(), &imageconverterv1.DeleteAppRequest{AccountId: r.PathValue("account_id"),
		AppId: r.PathValue("app"), Actor: p.proto()}); err != nil {
		return reply{}, err
	}
	return reply{http.StatusNoContent, nil}, nil
}

func (g *Gateway) getSigningKey(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.images.GetSigningKey(r.Context(), &imageconverterv1.GetSigningKeyRequest{AccountId: r.PathValue("account_id")})
	if err != nil {
		return reply{}, err
	}
	k := resp.GetKey()
	return reply{http.StatusOK, api.SigningKey{PublicKeyPEM: string(k.GetPublicKeyPem()), MRSIGNER: hex.EncodeToString(k.GetMrsigner()),
		CreatedAt: k.GetCreatedAt().AsTime().UTC()}}, nil
}

// mergePatch applies an RFC 7396 merge patch to a JSON object.
func mergePatch(doc []byte, patch map[string]json.RawMessage) ([]byte, error) {
	var target map[string]json.RawMessage
	if err := json.Unmarshal(doc, &target); err != nil {
		return nil, err
	}
	for k, v := range patch {
		var sub map[string]json.RawMessage
		switch {
		case bytes.Equal(bytes.TrimSpace(v), []byte("null")):
			delete(target, k)
		case json.Unmarshal(v, &sub) == nil && target[k] != nil && bytes.HasPrefix(bytes.TrimSpace(target[k]), []byte("{")):
			merged, err := mergePatch(target[k], sub)
			if err != nil {
				return nil, err
			}
			target[k] = merged
		default:
			target[k] = v
		}
	}
	return json.Marshal(target)
}

func toApp(a *imageconverterv1.App) api.App {
	s := a.GetSpec()
	c := s.GetCertificate()
	out := api.App{ID: a.GetId(), CreatedAt: a.GetCreatedAt().AsTime().UTC(), UpdatedAt: a.GetUpdatedAt().AsTime().UTC(),
		AppSpec: api.AppSpec{Name: s.GetName(), Description: s.GetDescription(), InputImage: s.GetInputImage(), OutputImage: s.GetOutputImage(),
			ISVProdID: s.GetIsvprodid(), ISVSVN: s.GetIsvsvn(), MemorySize: s.GetMemorySize(), Threads: s.GetThreads(),
			Entrypoint: orEmpty(s.GetEntrypoint()), Args: orEmpty(s.GetArgs()), AllowCmdlineArgs: s.GetAllowCmdlineArgs(),
			Env: []api.EnvVar{}, PassthroughEnv: orEmpty(s.GetPassthroughEnv()), RWDirs: orEmpty(s.GetRwDirs()), Debug: s.GetDebug(),
			Certificate: api.CertificateConfig{Domain: c.GetDomain(), Issuer: c.GetIssuer(), KeyPath: c.GetKeyPath(), KeyType: c.GetKeyType(),
				CertPath: c.GetCertPath(), ValidityDays: c.GetValidityDays()}}}
	for _, e := range s.GetEnv() {
		out.Env = append(out.Env, api.EnvVar{Name: e.GetName(), Value: e.GetValue()})
	}
	out.SecretsDir, out.SecretEnv, out.Volumes = s.GetSecretsDir(), []api.SecretEnv{}, []api.Volume{}
	for _, e := range s.GetSecretEnv() {
		out.SecretEnv = append(out.SecretEnv, api.SecretEnv{Name: e.GetName(), Secret: e.GetSecret()})
	}
	for _, v := range s.GetVolumes() {
		out.Volumes = append(out.Volumes, api.Volume{Path: v.GetPath(), KeyName: v.GetKeyName()})
	}
	return out
}

func specToProto(s api.AppSpec) *imageconverterv1.AppSpec {
	out := &imageconverterv1.AppSpec{Name: s.Name, Description: s.Description, InputImage: s.InputImage, OutputImage: s.OutputImage,
		Isvprodid: s.ISVProdID, Isvsvn: s.ISVSVN, MemorySize: s.MemorySize, Threads: s.Threads, Entrypoint: s.Entrypoint, Args: s.Args,
		AllowCmdlineArgs: s.AllowCmdlineArgs, PassthroughEnv: s.PassthroughEnv, RwDirs: s.RWDirs, Debug: s.Debug,
		Certificate: &imageconverterv1.CertificateConfig{Domain: s.Certificate.Domain, Issuer: s.Certificate.Issuer, KeyPath: s.Certificate.KeyPath,
			KeyType: s.Certificate.KeyType, CertPath: s.Certificate.CertPath, ValidityDays: s.Certificate.ValidityDays}}
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

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
