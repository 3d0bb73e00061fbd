package console

import (
	"net/http"
	"strings"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

func (c *Console) accountsPage(w http.ResponseWriter, r *http.Request) {
	v := c.user(w, r)
	if v == nil {
		return
	}
	v.Title, v.Section, v.Data = "Accounts", "accounts", api.CreateAccount{}
	c.render(w, r, http.StatusOK, "accounts", v)
}

func (c *Console) createAccount(w http.ResponseWriter, r *http.Request) {
	v := c.user(w, r)
	if v == nil {
		return
	}
	in := api.CreateAccount{Name: strings.TrimSpace(r.PostFormValue("name")), Description: strings.TrimSpace(r.PostFormValue("description"))}
	var a api.Account
	if err := c.create(r, v, "/v1/accounts", in, &a); err != nil {
		v.Title, v.Section, v.Error, v.Data = "Accounts", "accounts", err.Error(), in
		c.render(w, r, statusOf(err), "accounts", v)
		return
	}
	flash(w, r, "Account "+a.Name+" created. Its CA and enclave signing key are being made; next, add an application.")
	http.Redirect(w, r, consolePath(a.ID, "apps"), http.StatusSeeOther)
}

// switchAccount is the account switcher's target: the same section in
// the chosen account.
func (c *Console) switchAccount(w http.ResponseWriter, r *http.Request) {
	id, section := r.URL.Query().Get("account"), r.URL.Query().Get("section")
	if id == "" {
		http.Redirect(w, r, "/accounts", http.StatusSeeOther)
		return
	}
	for _, s := range sections {
		if s.Path == section {
			http.Redirect(w, r, consolePath(id, section), http.StatusSeeOther)
			return
		}
	}
	http.Redirect(w, r, consolePath(id), http.StatusSeeOther)
}

// accountHome opens an account on its overview.
func (c *Console) accountHome(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, consolePath(r.PathValue("account"), "overview"), http.StatusSeeOther)
}
