package console

import (
	"net/http"
	"strings"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// credentialsForm is what the sign-in and sign-up pages show again after
// an error (never the password).
type credentialsForm struct {
	Email string
	Next  string
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	v := c.user(w, r)
	if v == nil {
		return
	}
	if len(v.Accounts) == 0 {
		http.Redirect(w, r, "/accounts", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, consolePath(v.Accounts[0].ID), http.StatusSeeOther)
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", &view{Title: "Sign in", Data: credentialsForm{Next: safeNext(r.URL.Query().Get("next"))}})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	form := credentialsForm{Email: strings.TrimSpace(r.PostFormValue("email")), Next: safeNext(r.PostFormValue("next"))}
	var s api.Session
	err := c.callAs(r.Context(), r, "", http.MethodPost, "/v1/sessions", api.Credentials{Email: form.Email, Password: r.PostFormValue("password")}, &s)
	if err != nil {
		c.render(w, r, statusOf(err), "login", &view{Title: "Sign in", Error: err.Error(), Data: form})
		return
	}
	setSession(w, r, s.Token, s.ExpiresAt)
	http.Redirect(w, r, form.Next, http.StatusSeeOther)
}

func (c *Console) signupPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "signup", &view{Title: "Sign up", Data: credentialsForm{}})
}

// signup creates the user and signs them in.
func (c *Console) signup(w http.ResponseWriter, r *http.Request) {
	form := credentialsForm{Email: strings.TrimSpace(r.PostFormValue("email"))}
	password := r.PostFormValue("password")
	fail := func(status int, msg string) {
		c.render(w, r, status, "signup", &view{Title: "Sign up", Error: msg, Data: form})
	}
	if password != r.PostFormValue("confirm") {
		fail(http.StatusBadRequest, "The two passwords differ.")
		return
	}
	creds := api.Credentials{Email: form.Email, Password: password}
	if err := c.callAs(r.Context(), r, "", http.MethodPost, "/v1/users", creds, nil); err != nil {
		fail(statusOf(err), err.Error())
		return
	}
	var s api.Session
	if err := c.callAs(r.Context(), r, "", http.MethodPost, "/v1/sessions", creds, &s); err != nil {
		fail(statusOf(err), err.Error())
		return
	}
	setSession(w, r, s.Token, s.ExpiresAt)
	flash(w, r, "Welcome to Cloister. Create an account (a tenant) to hold your applications and nodes.")
	http.Redirect(w, r, "/accounts", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if session(r) != "" {
		// The session ends on the server too; a failure here changes
		// nothing for the browser, which forgets the token anyway.
		_ = c.call(r, http.MethodDelete, "/v1/sessions/current", nil, nil)
	}
	clearSession(w, r)
	flash(w, r, "Signed out.")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
