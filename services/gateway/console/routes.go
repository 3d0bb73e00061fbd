package console

import "net/http"

func (c *Console) routes() {
	m := c.mux
	m.Handle("GET /static/", c.static)
	m.HandleFunc("GET /{$}", c.home)
	m.HandleFunc("GET /login", c.loginPage)
	m.HandleFunc("POST /login", c.login)
	m.HandleFunc("GET /signup", c.signupPage)
	m.HandleFunc("POST /signup", c.signup)
	m.HandleFunc("POST /logout", c.logout)
	m.HandleFunc("GET /accounts", c.accountsPage)
	m.HandleFunc("POST /accounts", c.createAccount)
	m.HandleFunc("GET /switch", c.switchAccount)

	m.HandleFunc("GET /a/{account}", c.accountHome)
	m.HandleFunc("GET /a/{account}/overview", c.overview)
	m.HandleFunc("GET /a/{account}/apps", c.appsPage)
	m.HandleFunc("GET /a/{account}/apps/new", c.newAppPage)
	m.HandleFunc("POST /a/{account}/apps", c.createApp)
	m.HandleFunc("GET /a/{account}/apps/{app}", c.appPage)
	m.HandleFunc("POST /a/{account}/apps/{app}", c.updateApp)
	m.HandleFunc("POST /a/{account}/apps/{app}/delete", c.deleteApp)
	m.HandleFunc("POST /a/{account}/apps/{app}/secrets", c.setSecret)
	m.HandleFunc("POST /a/{account}/apps/{app}/secrets/{name}/delete", c.deleteSecret)
	c.imageRoutes(m)
	c.taskRoutes(m)
	c.nodeRoutes(m)
	c.certificateRoutes(m)
	c.policyRoutes(m)
	c.auditRoutes(m)

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, http.StatusNotFound, "There is no such page.")
	})
}
