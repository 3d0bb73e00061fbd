package gateway

import (
	"encoding/hex"
	"net/http"
	"time"

	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

func (g *Gateway) convertImage(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.ConvertImage
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.images.ConvertImage(r.Context(), &imageconverterv1.ConvertImageRequest{AccountId: r.PathValue("account_id"),
		App: b.App, Tag: b.Tag, Actor: p.proto()})
	return answer(err, http.StatusAccepted, func() any { return toImage(resp.GetImage()) })
}

func (g *Gateway) listImages(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.images.ListImages(r.Context(), &imageconverterv1.ListImagesRequest{AccountId: r.PathValue("account_id"), AppId: r.URL.Query().Get("app")})
	return answer(err, http.StatusOK, func() any { return list(resp.GetImages(), "", toImage) })
}

// getImage serves GET .../images/{image_id}. With ?wait=D&after=T it
// answers once the image is newer than T (updated_at), or has finished,
// or when an event about it arrives, or after D: a long poll that follows
// a conversion as it happens.
func (g *Gateway) getImage(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	wait, after, err := imageWaitParams(r)
	if err != nil {
		return reply{}, err
	}
	get := func() (*imageconverterv1.GetImageResponse, error) {
		return g.images.GetImage(r.Context(), &imageconverterv1.GetImageRequest{AccountId: r.PathValue("account_id"), ImageId: r.PathValue("image_id")})
	}
	var woken <-chan struct{}
	if wait > 0 {
		// Waiting before reading: an event between the read and the
		// wait still wakes it.
		var done func()
		woken, done = g.imageWaits.wait(r.PathValue("image_id"))
		defer done()
	}
	resp, err := get()
	if err == nil && wait > 0 && !resp.GetImage().GetUpdatedAt().AsTime().After(after) && !finished(resp.GetImage().GetStatus()) {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-woken:
			resp, err = get()
		case <-t.C:
		case <-r.Context().Done():
			return reply{}, r.Context().Err()
		}
	}
	return answer(err, http.StatusOK, func() any {
		img := toImage(resp.GetImage())
		img.ReferenceStatus = resp.GetReferenceStatus()
		return img
	})
}

// finished reports whether a conversion in status has ended.
func finished(status string) bool { return status == "converted" || status == "failed" }

func (g *Gateway) deleteImage(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	if _, err := g.images.DeleteImage(r.Context(), &imageconverterv1.DeleteImageRequest{AccountId: r.PathValue("account_id"),
		ImageId: r.PathValue("image_id"), Actor: p.proto()}); err != nil {
		return reply{}, err
	}
	return reply{http.StatusNoContent, nil}, nil
}

func (g *Gateway) listRegistries(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.images.ListRegistryCredentials(r.Context(), &imageconverterv1.ListRegistryCredentialsRequest{AccountId: r.PathValue("account_id")})
	return answer(err, http.StatusOK, func() any { return list(resp.GetCredentials(), "", toRegistryCredential) })
}

func (g *Gateway) putRegistry(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.PutRegistryCredential
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.images.PutRegistryCredential(r.Context(), &imageconverterv1.PutRegistryCredentialRequest{AccountId: r.PathValue("account_id"),
		Registry: r.PathValue("registry"), Username: b.Username, Password: b.Password, Actor: p.proto()})
	return answer(err, http.StatusOK, func() any { return toRegistryCredential(resp.GetCredential()) })
}

func (g *Gateway) deleteRegistry(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	if _, err := g.images.DeleteRegistryCredential(r.Context(), &imageconverterv1.DeleteRegistryCredentialRequest{AccountId: r.PathValue("account_id"),
		Registry: r.PathValue("registry"), Actor: p.proto()}); err != nil {
		return reply{}, err
	}
	return reply{http.StatusNoContent, nil}, nil
}

func toImage(i *imageconverterv1.Image) api.Image {
	out := api.Image{ID: i.GetId(), AppID: i.GetAppId(), Tag: i.GetTag(), Status: i.GetStatus(), InputImage: i.GetInputImage(),
		Output: i.GetOutput(), Ref: i.GetRef(), Digest: i.GetDigest(), ISVProdID: i.GetIsvprodid(), ISVSVN: i.GetIsvsvn(),
		Reason: i.GetReason(), Error: i.GetError(), CreatedAt: i.GetCreatedAt().AsTime().UTC(), UpdatedAt: i.GetUpdatedAt().AsTime().UTC(),
		GramineRuntime: i.GetGramineRuntime(), GramineRuntimeStandIn: i.GetGramineRuntimeStandIn()}
	if len(i.GetMrenclave()) > 0 {
		out.MRENCLAVE, out.MRSIGNER = hex.EncodeToString(i.GetMrenclave()), hex.EncodeToString(i.GetMrsigner())
	}
	if pr := i.GetProgress(); pr != nil {
		out.Progress = api.Progress{Phase: pr.GetPhase(), Layers: pr.GetLayers(), TotalLayers: pr.GetTotalLayers(), Bytes: pr.GetBytes(), TotalBytes: pr.GetTotalBytes()}
	}
	return out
}

func toRegistryCredential(c *imageconverterv1.RegistryCredential) api.RegistryCredential {
	return api.RegistryCredential{Registry: c.GetRegistry(), Username: c.GetUsername(), UpdatedAt: c.GetUpdatedAt().AsTime().UTC()}
}
