package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// view is what every page template gets.
type view struct {
	Title    string
	Me       *api.Me
	Accounts []api.Account
	Account  *api.Account // the account the page is about, if any
	Section  string       // the navigation entry to highlight
	CSRF     string
	// FormKey is the idempotency key of the page's creation form (a
	// new one at each showing; the same when a creation is shown again
	// after the API was unavailable, so that sending it again is safe).
	FormKey string
	Flash   string
	Error   string
	Data    any
}

// pages holds one template set per page, each with the layout.
type pages struct{ set map[string]*template.Template }

// section is an entry of an account's navigation.
type section struct{ Path, Label string }

var sections = []section{{"overview", "Overview"}, {"apps", "Applications"}, {"images", "Images"}, {"tasks", "Tasks"}, {"nodes", "Nodes"},
	{"certificates", "Certificates"}, {"policy", "Attestation policy"}, {"audit", "Audit log"}}

var funcs = template.FuncMap{
	"sections": func() []section { return sections },
	"path":     consolePath,
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		case *time.Time:
			if v == nil || v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		return fmt.Sprint(t)
	},
	"lines": func(s []string) string { return strings.Join(s, "\n") },
	"join":  strings.Join,
	"mib": func(n any) string {
		switch v := n.(type) {
		case uint64:
			return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20))
		case int64:
			return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20))
		}
		return fmt.Sprint(n)
	},
	"query": url.QueryEscape,
	// ref lets a long image reference wrap after its '/' and ':'.
	"ref": func(s string) template.HTML {
		e := template.HTMLEscapeString(s)
		e = strings.ReplaceAll(e, "/", "/<wbr>")
		return template.HTML(strings.ReplaceAll(e, ":", ":<wbr>")) //nolint:gosec // escaped above
	},
}

func parsePages() (*pages, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: parsing the layout: %w", err)
	}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{set: map[string]*template.Template{}}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, f)
		if err != nil {
			return nil, fmt.Errorf("console: parsing %s: %w", f, err)
		}
		p.set[name] = t
	}
	return p, nil
}

// render writes a page with the layout.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	t, ok := c.pages.set[page]
	if !ok {
		c.log.Error("no such page template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	v.CSRF = csrfToken(w, r)
	if v.FormKey == "" {
		v.FormKey = newFormKey()
	}
	if v.Flash == "" {
		v.Flash = takeFlash(w, r)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		c.log.Error("rendering a page", "page", page, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// renderError shows an error page with the status, keeping the header
// and the account's navigation when the user is signed in.
func (c *Console) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	v := &view{}
	if session(r) != "" && status != http.StatusUnauthorized {
		var me api.Me
		var accts api.List[api.Account]
		if c.call(r, http.MethodGet, "/v1/users/me", nil, &me) == nil && c.call(r, http.MethodGet, "/v1/accounts", nil, &accts) == nil {
			v.Me, v.Accounts = &me, accts.Items
			for i := range v.Accounts {
				if v.Accounts[i].ID == r.PathValue("account") {
					v.Account = &v.Accounts[i]
				}
			}
		}
	}
	v.Title, v.Error, v.Data = http.StatusText(status), msg, status
	c.render(w, r, status, "error", v)
}

// fail shows the API's error on an error page, or sends the user to sign
// in when the session has ended.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status == http.StatusUnauthorized {
		c.toLogin(w, r)
		return
	}
	if status >= 500 {
		c.log.Error("console request failed", "path", r.URL.Path, "error", err)
	}
	c.renderError(w, r, status, err.Error())
}

// toLogin sends the browser to the sign-in page, then back here.
func (c *Console) toLogin(w http.ResponseWriter, r *http.Request) {
	clearSession(w, r)
	next := r.URL.RequestURI()
	if r.Method != http.MethodGet {
		next = "/"
	}
	http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
}

// user loads who is signed in and their accounts; it answers the
// request itself (sign-in page, error) and returns nil when it cannot.
func (c *Console) user(w http.ResponseWriter, r *http.Request) *view {
	if session(r) == "" {
		c.toLogin(w, r)
		return nil
	}
	var me api.Me
	if err := c.call(r, http.MethodGet, "/v1/users/me", nil, &me); err != nil {
		c.fail(w, r, err)
		return nil
	}
	var accts api.List[api.Account]
	if err := c.call(r, http.MethodGet, "/v1/accounts", nil, &accts); err != nil {
		c.fail(w, r, err)
		return nil
	}
	return &view{Me: &me, Accounts: accts.Items}
}

// inAccount is user for a page of the account in the path: another
// account's page is a 404, as in the API.
func (c *Console) inAccount(w http.ResponseWriter, r *http.Request, section, title string) *view {
	v := c.user(w, r)
	if v == nil {
		return nil
	}
	id := r.PathValue("account")
	for i := range v.Accounts {
		if v.Accounts[i].ID == id {
			v.Account, v.Section, v.Title = &v.Accounts[i], section, title
			return v
		}
	}
	c.renderError(w, r, http.StatusNotFound, "There is no such account, or you are not one of its members.")
	return nil
}
