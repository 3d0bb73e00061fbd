package console

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// appForm is the application form: the spec, and the app when editing.
type appForm struct {
	App      *api.App
	Spec     api.AppSpec
	MemoryMB string
	KeyTypes []string
	// Running are the app's running instances, Secrets its secrets
	// (names and versions), on an existing app's page.
	Running []runningInstance
	Secrets []secretRow
}

// secretRow is a secret as its table shows it: its newest version.
type secretRow struct {
	Name          string
	Version, Size uint32
	Pending       bool
	Kept          int
	UpdatedAt     time.Time
}

// runningInstance is an instance an enrolled node reports, with its node.
type runningInstance struct {
	api.Instance
	NodeID, NodeName, NodeStatus string
}

// appsData is the applications page: the apps, and each one's running
// instances by app id.
type appsData struct {
	Apps    []api.App
	Running map[string][]runningInstance
}

// running lists the instances the account's nodes report, by app id. It
// only adds to the pages: without it they show no instances.
func (c *Console) running(r *http.Request, accountID string) map[string][]runningInstance {
	out := map[string][]runningInstance{}
	var nodes api.List[api.Node]
	if c.call(r, http.MethodGet, accountPath(accountID, "nodes")+"?limit=200", nil, &nodes) != nil {
		return out
	}
	for _, n := range nodes.Items {
		for _, in := range n.Instances {
			out[in.AppID] = append(out[in.AppID], runningInstance{Instance: in, NodeID: n.ID, NodeName: n.Name, NodeStatus: n.Status})
		}
	}
	return out
}

var keyTypes = []string{"ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"}

func (c *Console) appsPage(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "apps", "Applications")
	if v == nil {
		return
	}
	var l api.List[api.App]
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "apps"), nil, &l); err != nil {
		c.fail(w, r, err)
		return
	}
	v.Data = appsData{Apps: l.Items, Running: c.running(r, v.Account.ID)}
	c.render(w, r, http.StatusOK, "apps", v)
}

func (c *Console) newAppPage(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "apps", "New application")
	if v == nil {
		return
	}
	v.Data = appForm{Spec: api.AppSpec{Threads: 4, Certificate: api.CertificateConfig{KeyType: "ec-p256"}}, MemoryMB: "256", KeyTypes: keyTypes}
	c.render(w, r, http.StatusOK, "app", v)
}

func (c *Console) createApp(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "apps", "New application")
	if v == nil {
		return
	}
	spec, err := parseAppForm(r)
	if err == nil {
		var app api.App
		if err = c.call(r, http.MethodPost, accountPath(v.Account.ID, "apps"), spec, &app); err == nil {
			msg := "Application " + app.Name + " created."
			if app.Certificate.Domain != "" {
				msg += " Its domain waits for approval under Tasks."
			}
			flash(w, r, msg+" Next, convert its image under Images.")
			http.Redirect(w, r, consolePath(v.Account.ID, "apps", app.ID), http.StatusSeeOther)
			return
		}
	}
	v.Error = err.Error()
	v.Data = appForm{Spec: spec, MemoryMB: r.PostFormValue("memory_mib"), KeyTypes: keyTypes}
	c.render(w, r, formStatus(err), "app", v)
}

func (c *Console) appPage(w http.ResponseWriter, r *http.Request) {
	if v, app, ok := c.inApp(w, r); ok {
		c.showApp(w, r, v, app, http.StatusOK)
	}
}

// inApp is inAccount for a page of the application named in the path,
// which it reads; it reports false when it answered already.
func (c *Console) inApp(w http.ResponseWriter, r *http.Request) (*view, api.App, bool) {
	v := c.inAccount(w, r, "apps", "Application")
	if v == nil {
		return nil, api.App{}, false
	}
	var app api.App
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "apps", r.PathValue("app")), nil, &app); err != nil {
		c.fail(w, r, err)
		return nil, api.App{}, false
	}
	return v, app, true
}

// showApp renders an existing application's page with status.
func (c *Console) showApp(w http.ResponseWriter, r *http.Request, v *view, app api.App, status int) {
	v.Title = "Application " + app.Name
	var secrets api.List[api.Secret]
	_ = c.call(r, http.MethodGet, accountPath(v.Account.ID, "apps", app.ID, "secrets"), nil, &secrets) // the page shows none without
	var rows []secretRow
	for _, s := range secrets.Items {
		if n := len(s.Versions); n > 0 {
			last := s.Versions[n-1]
			rows = append(rows, secretRow{Name: s.Name, Version: last.Version, Size: last.Size, Pending: last.Pending, Kept: n, UpdatedAt: s.UpdatedAt})
		}
	}
	v.Data = appForm{App: &app, Spec: app.AppSpec, MemoryMB: strconv.FormatUint(app.MemorySize>>20, 10), KeyTypes: keyTypes,
		Running: c.running(r, v.Account.ID)[app.ID], Secrets: rows}
	c.render(w, r, status, "app", v)
}

// setSecret sets a secret from the form (admins only, as the API says).
// The value is never shown back, not even when it is refused.
func (c *Console) setSecret(w http.ResponseWriter, r *http.Request) {
	v, app, ok := c.inApp(w, r)
	if !ok {
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	value := []byte(r.PostFormValue("value"))
	var err error
	if name == "" {
		err = formError{"give the secret a name"}
	} else {
		err = c.call(r, http.MethodPut, accountPath(v.Account.ID, "apps", app.ID, "secrets", name), api.PutSecret{Value: value}, nil)
	}
	clear(value)
	if err != nil {
		v.Error = "Secret " + name + ": " + err.Error()
		c.showApp(w, r, v, app, formStatus(err))
		return
	}
	flash(w, r, "Secret "+name+" set. Enclaves of "+app.Name+" started from now on get it.")
	http.Redirect(w, r, consolePath(v.Account.ID, "apps", app.ID)+"#secrets", http.StatusSeeOther)
}

// deleteSecret deletes a secret (admins only).
func (c *Console) deleteSecret(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "apps", "Application")
	if v == nil {
		return
	}
	app, name := r.PathValue("app"), r.PathValue("name")
	if err := c.call(r, http.MethodDelete, accountPath(v.Account.ID, "apps", app, "secrets", name), nil, nil); err != nil {
		c.fail(w, r, err)
		return
	}
	flash(w, r, "Secret "+name+" deleted. Running enclaves keep what they were given; restart them to take it away.")
	http.Redirect(w, r, consolePath(v.Account.ID, "apps", app)+"#secrets", http.StatusSeeOther)
}

func (c *Console) updateApp(w http.ResponseWriter, r *http.Request) {
	v, app, ok := c.inApp(w, r)
	if !ok {
		return
	}
	path := accountPath(v.Account.ID, "apps", app.ID)
	spec, err := parseAppForm(r)
	if err == nil {
		var updated api.App
		if err = c.call(r, http.MethodPatch, path, spec, &updated); err == nil {
			flash(w, r, "Application "+updated.Name+" saved. Convert its image again for the change to take effect.")
			http.Redirect(w, r, consolePath(v.Account.ID, "apps", updated.ID), http.StatusSeeOther)
			return
		}
	}
	v.Title, v.Error = "Application "+app.Name, err.Error()
	v.Data = appForm{App: &app, Spec: spec, MemoryMB: r.PostFormValue("memory_mib"), KeyTypes: keyTypes, Running: c.running(r, v.Account.ID)[app.ID]}
	c.render(w, r, formStatus(err), "app", v)
}

func (c *Console) deleteApp(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "apps", "Application")
	if v == nil {
		return
	}
	if err := c.call(r, http.MethodDelete, accountPath(v.Account.ID, "apps", r.PathValue("app")), nil, nil); err != nil {
		c.fail(w, r, err)
		return
	}
	flash(w, r, "Application deleted; its certificates are revoked.")
	http.Redirect(w, r, consolePath(v.Account.ID, "apps"), http.StatusSeeOther)
}

// formError is a form field the console itself could not read.
type formError struct{ msg string }

func (e formError) Error() string { return e.msg }

// formStatus is the status of a page shown again after err.
func formStatus(err error) int {
	if _, ok := err.(formError); ok {
		return http.StatusBadRequest
	}
	return statusOf(err)
}

// parseAppForm reads the application form. List fields take one item per
// line; the environment takes NAME=value lines.
func parseAppForm(r *http.Request) (api.AppSpec, error) {
	f := r.PostFormValue
	s := api.AppSpec{
		Name: strings.TrimSpace(f("name")), Description: strings.TrimSpace(f("description")),
		InputImage: strings.TrimSpace(f("input_image")), OutputImage: strings.TrimSpace(f("output_image")),
		Entrypoint: lines(f("entrypoint")), Args: lines(f("args")), AllowCmdlineArgs: f("allow_cmdline_args") == "on",
		PassthroughEnv: lines(f("passthrough_env")), RWDirs: lines(f("rw_dirs")), Debug: f("debug") == "on",
		Certificate: api.CertificateConfig{Domain: strings.TrimSpace(f("domain")), KeyType: f("key_type"),
			KeyPath: strings.TrimSpace(f("key_path")), CertPath: strings.TrimSpace(f("cert_path"))},
	}
	var errs []string
	num := func(field, label string, bits int) uint64 {
		v := strings.TrimSpace(f(field))
		if v == "" {
			return 0
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s must be a whole number, not %q", label, v))
		}
		return n
	}
	s.ISVProdID = uint32(num("isvprodid", "ISVPRODID", 16))
	s.ISVSVN = uint32(num("isvsvn", "ISVSVN", 16))
	s.Threads = uint32(num("threads", "Threads", 32))
	s.Certificate.ValidityDays = uint32(num("validity_days", "Validity (days)", 32))
	s.MemorySize = num("memory_mib", "Memory (MiB)", 44) << 20
	for _, l := range lines(f("env")) {
		name, value, ok := strings.Cut(l, "=")
		if !ok || name == "" {
			errs = append(errs, fmt.Sprintf("environment line %q is not NAME=value", l))
			continue
		}
		s.Env = append(s.Env, api.EnvVar{Name: name, Value: value})
	}
	s.SecretsDir = strings.TrimSpace(f("secrets_dir"))
	// pairs reads a text area of A=B lines, both sides required; label
	// and form name them in the message for a line that is not.
	pairs := func(field, label, form string, add func(a, b string)) {
		for _, l := range lines(f(field)) {
			a, b, ok := strings.Cut(l, "=")
			if a, b = strings.TrimSpace(a), strings.TrimSpace(b); !ok || a == "" || b == "" {
				errs = append(errs, fmt.Sprintf("%s line %q is not %s", label, l, form))
				continue
			}
			add(a, b)
		}
	}
	pairs("secret_env", "secret environment", "NAME=secret", func(name, secret string) {
		s.SecretEnv = append(s.SecretEnv, api.SecretEnv{Name: name, Secret: secret})
	})
	pairs("volumes", "volume", "/path=key_name", func(path, key string) {
		s.Volumes = append(s.Volumes, api.Volume{Path: path, KeyName: key})
	})
	// Without a domain the app gets no certificate, and the API wants the
	// other certificate fields empty too (the form always has a key type,
	// and an app's page shows the default paths).
	if s.Certificate.Domain == "" {
		s.Certificate = api.CertificateConfig{}
	}
	if len(errs) > 0 {
		return s, formError{strings.Join(errs, "; ")}
	}
	return s, nil
}

// lines splits a text area into its non-empty lines, trimmed.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
