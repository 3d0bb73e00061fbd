package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// imageRoutes registers the images pages: the list with the convert form,
// an image's page, and the JSON its live progress polls.
func (c *Console) imageRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /a/{account}/images", c.imagesPage)
	m.HandleFunc("POST /a/{account}/images", c.convertImage)
	m.HandleFunc("GET /a/{account}/images/{image}", c.imagePage)
	m.HandleFunc("GET /a/{account}/images/{image}/progress", c.imageProgress)
	m.HandleFunc("POST /a/{account}/images/{image}/delete", c.deleteImage)
}

// imagesData is what the images page shows.
type imagesData struct {
	Images []api.Image
	Apps   []api.App
	// AppNames names the apps by id, for the list.
	AppNames map[string]string
	// Filter is the application the list is limited to, if any.
	Filter *api.App
	Form   api.ConvertImage
}

// imageData is what an image's page shows.
type imageData struct {
	Image   api.Image
	AppName string
	// Task is the image's approval task, once the conversion opened one.
	Task *api.Task
}

// Busy tells whether the conversion is still going.
func (d imageData) Busy() bool { return d.Image.Status == "pending" || d.Image.Status == "converting" }

func (c *Console) imagesPage(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "images", "Images")
	if v == nil {
		return
	}
	form := api.ConvertImage{App: r.URL.Query().Get("app")}
	c.showImages(w, r, v, http.StatusOK, form.App, form)
}

// showImages renders the images page, of the application filter only when
// filter is set, with form in the convert form.
func (c *Console) showImages(w http.ResponseWriter, r *http.Request, v *view, status int, filter string, form api.ConvertImage) {
	d := imagesData{Form: form, AppNames: map[string]string{}}
	var apps api.List[api.App]
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "apps"), nil, &apps); err != nil {
		c.fail(w, r, err)
		return
	}
	d.Apps = apps.Items
	for i, a := range d.Apps {
		d.AppNames[a.ID] = a.Name
		if filter != "" && (a.ID == filter || a.Name == filter) {
			d.Filter = &d.Apps[i]
		}
	}
	path := accountPath(v.Account.ID, "images")
	if filter != "" {
		path += "?app=" + url.QueryEscape(filter)
	}
	var images api.List[api.Image]
	if err := c.call(r, http.MethodGet, path, nil, &images); err != nil {
		c.fail(w, r, err)
		return
	}
	d.Images = images.Items
	// Newest first: the conversion just asked for is at the top.
	slices.SortStableFunc(d.Images, func(a, b api.Image) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if d.Filter != nil {
		v.Title = "Images of " + d.Filter.Name
		if d.Form.App == "" {
			d.Form.App = d.Filter.ID
		}
	}
	v.Data = d
	c.render(w, r, status, "images", v)
}

func (c *Console) convertImage(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "images", "Images")
	if v == nil {
		return
	}
	in := api.ConvertImage{App: r.PostFormValue("app"), Tag: strings.TrimSpace(r.PostFormValue("tag"))}
	var img api.Image
	err := c.call(r, http.MethodPost, accountPath(v.Account.ID, "images"), in, &img)
	if err != nil {
		if statusOf(err) == http.StatusUnauthorized {
			c.fail(w, r, err)
			return
		}
		v.Error = err.Error()
		c.showImages(w, r, v, statusOf(err), r.PostFormValue("filter"), in)
		return
	}
	flash(w, r, "Conversion of "+img.Output+" started. Once it is converted, approve the image under Tasks.")
	http.Redirect(w, r, consolePath(v.Account.ID, "images", img.ID), http.StatusSeeOther)
}

func (c *Console) imagePage(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "images", "Image")
	if v == nil {
		return
	}
	var d imageData
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "images", r.PathValue("image")), nil, &d.Image); err != nil {
		c.fail(w, r, err)
		return
	}
	d.AppName = d.Image.AppID
	var app api.App
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "apps", d.Image.AppID), nil, &app); err == nil {
		d.AppName = app.Name
	}
	if d.Image.Status == "converted" {
		// The task's id is the account service's business; find it by
		// its subject. Without it the page still says where to approve.
		var tasks api.List[api.Task]
		if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "tasks"), nil, &tasks); err == nil {
			for i, t := range tasks.Items {
				if t.Kind == "image" && t.Image != nil && t.Image.ImageID == d.Image.ID {
					d.Task = &tasks.Items[i]
				}
			}
		}
	}
	v.Title = "Image " + d.AppName + ":" + d.Image.Tag
	v.Data = d
	c.render(w, r, http.StatusOK, "image", v)
}

// imageProgress answers the image's API JSON, for the image page's live
// progress. The API decides who may see it: another account's image is
// a 404 there as here.
func (c *Console) imageProgress(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	var img api.Image
	var err error
	if session(r) == "" {
		err = &api.Error{Problem: api.Problem{Status: http.StatusUnauthorized, Detail: "sign in first", Code: "unauthenticated"}}
	} else {
		err = c.call(r, http.MethodGet, accountPath(r.PathValue("account"), "images", r.PathValue("image")), nil, &img)
	}
	var body any = img
	status := http.StatusOK
	if err != nil {
		status, body = statusOf(err), map[string]string{"error": err.Error()}
		if status >= 500 {
			c.log.Error("console request failed", "path", r.URL.Path, "error", err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (c *Console) deleteImage(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "images", "Image")
	if v == nil {
		return
	}
	if err := c.call(r, http.MethodDelete, accountPath(v.Account.ID, "images", r.PathValue("image")), nil, nil); err != nil {
		c.fail(w, r, err)
		return
	}
	flash(w, r, "Image deleted. Its approval, if it had one, is withdrawn and the certificates issued on it are revoked; what was pushed stays in the registry.")
	http.Redirect(w, r, consolePath(v.Account.ID, "images"), http.StatusSeeOther)
}
