package gateway

import (
	"net/http"

	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// An application's secrets: set and deleted by admins, listed by every
// member, never read back (docs/secrets.md).

func (g *Gateway) listSecrets(_ http.ResponseWriter, r *http.Request, _ principal) (reply, error) {
	resp, err := g.images.ListSecrets(r.Context(), &imageconverterv1.ListSecretsRequest{AccountId: r.PathValue("account_id"), App: r.PathValue("app")})
	return answer(err, http.StatusOK, func() any { return list(resp.GetSecrets(), "", toSecret) })
}

func (g *Gateway) putSecret(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.PutSecret
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.images.PutSecret(r.Context(), &imageconverterv1.PutSecretRequest{AccountId: r.PathValue("account_id"), App: r.PathValue("app"),
		Name: r.PathValue("name"), Value: b.Value, Actor: p.proto()})
	clear(b.Value)
	return answer(err, http.StatusOK, func() any { return toSecret(resp.GetSecret()) })
}

func (g *Gateway) deleteSecret(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	if _, err := g.images.DeleteSecret(r.Context(), &imageconverterv1.DeleteSecretRequest{AccountId: r.PathValue("account_id"), App: r.PathValue("app"),
		Name: r.PathValue("name"), Actor: p.proto()}); err != nil {
		return reply{}, err
	}
	return reply{http.StatusNoContent, nil}, nil
}

func toSecret(s *imageconverterv1.Secret) api.Secret {
	out := api.Secret{AppID: s.GetAppId(), Name: s.GetName(), Versions: []api.SecretVersion{}, UpdatedAt: s.GetUpdatedAt().AsTime().UTC()}
	for _, v := range s.GetVersions() {
		out.Versions = append(out.Versions, api.SecretVersion{Version: v.GetVersion(), Size: v.GetSize(),
			CreatedAt: v.GetCreatedAt().AsTime().UTC(), CreatedBy: v.GetCreatedBy(), Pending: v.GetPending()})
	}
	return out
}

// exportVolumeKey gives an admin the key of an application's volume, for
// a backup; the image converter records each export in the audit log.
func (g *Gateway) exportVolumeKey(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.images.ExportVolumeKey(r.Context(), &imageconverterv1.ExportVolumeKeyRequest{AccountId: r.PathValue("account_id"),
		App: r.PathValue("app"), KeyName: r.PathValue("key_name"), Actor: p.proto()})
	return answer(err, http.StatusOK, func() any {
		return api.VolumeKey{AppID: resp.GetAppId(), KeyName: resp.GetKeyName(), Key: resp.GetKey()}
	})
}
