package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/cloister-cc/cloister/services/gateway/api"
	"github.com/cloister-cc/cloister/services/gateway/console"
)

// uaPassword is every console test user's password.
const uaPassword = "correct horse battery"

// newUAConsole serves the web console in front of a real stack's API.
func newUAConsole(t *testing.T) (*stack, *httptest.Server) {
	t.Helper()
	s := newStack(t, memory(t))
	srv := httptest.NewServer(uaConsole(t, s))
	t.Cleanup(srv.Close)
	return s, srv
}

func uaConsole(t *testing.T, s *stack) *console.Console {
	t.Helper()
	con, err := console.New(console.Config{API: s.gw})
	if err != nil {
		t.Fatal(err)
	}
	return con
}

// uaBrowser is a user agent with its own cookies. Every response it gets is
// checked for the console's security headers, and every HTML page for
// inline script and style, which the CSP would block.
type uaBrowser struct {
	t    *testing.T
	srv  *httptest.Server
	c    *http.Client
	csrf string // the token of the last page that had a form
}

// uaPage is one response of the console.
type uaPage struct {
	status   int
	header   http.Header
	body     string
	location string // of a redirect
	path     string // the request's path and query
}

func newUA(t *testing.T, srv *httptest.Server) *uaBrowser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *srv.Client() // trusts the TLS server's certificate
	c.Jar = jar
	return &uaBrowser{t: t, srv: srv, c: &c}
}

var (
	uaCSRF          = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
	uaScriptTag     = regexp.MustCompile(`(?is)<script\b[^>]*>`)
	uaStyleAttr     = regexp.MustCompile(`(?is)<[a-z][^>]*\sstyle\s*=`)
	uaStyleTag      = regexp.MustCompile(`(?is)<style\b`)
	uaHandlerAttr   = regexp.MustCompile(`(?is)<[a-z][^>]*\son[a-z]+\s*=`)
	uaJavascriptURL = regexp.MustCompile(`(?is)(href|src|action)\s*=\s*"\s*javascript:`)
)

// send makes one request (no redirect followed) and checks the response.
func (b *uaBrowser) send(method, path string, form url.Values, header http.Header) uaPage {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.srv.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	// The transport, not the client: the client refuses a Location it
	// cannot parse, and the test needs to see it.
	for _, c := range b.c.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	resp, err := b.c.Transport.RoundTrip(req)
	if err != nil {
		b.t.Fatal(err)
	}
	b.c.Jar.SetCookies(req.URL, resp.Cookies())
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	p := uaPage{status: resp.StatusCode, header: resp.Header, body: string(data), location: resp.Header.Get("Location"), path: path}
	b.check(method, p)
	if m := uaCSRF.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	return p
}

// check holds every response to the console's security rules.
func (b *uaBrowser) check(method string, p uaPage) {
	b.t.Helper()
	h := p.header
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		b.t.Errorf("%s %s: Content-Security-Policy = %q", method, p.path, csp)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		b.t.Errorf("%s %s: X-Content-Type-Options = %q, want nosniff", method, p.path, got)
	}
	if got := h.Get("X-Frame-Options"); got != "DENY" {
		b.t.Errorf("%s %s: X-Frame-Options = %q, want DENY", method, p.path, got)
	}
	if p.status >= 500 {
		b.t.Errorf("%s %s = %d, a server error: %s", method, p.path, p.status, p.body)
	}
	if !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		return
	}
	for _, tag := range uaScriptTag.FindAllString(p.body, -1) {
		if !strings.Contains(tag, " src=") {
			b.t.Errorf("%s %s has an inline script: %s", method, p.path, tag)
		}
	}
	for _, re := range []*regexp.Regexp{uaStyleAttr, uaStyleTag, uaHandlerAttr, uaJavascriptURL} {
		if m := re.FindString(p.body); m != "" {
			b.t.Errorf("%s %s has inline style or script the CSP blocks: %s", method, p.path, m)
		}
	}
	if p.location == "" && h.Get("Cache-Control") != "no-store" {
		b.t.Errorf("%s %s: Cache-Control = %q, want no-store on a page", method, p.path, h.Get("Cache-Control"))
	}
}

// get loads a page, following redirects as a browser does.
func (b *uaBrowser) get(path string) uaPage {
	b.t.Helper()
	p := b.send(http.MethodGet, path, nil, nil)
	return b.follow(p)
}

// follow follows p's redirects, if any.
func (b *uaBrowser) follow(p uaPage) uaPage {
	b.t.Helper()
	for i := 0; p.location != ""; i++ {
		if i == 10 {
			b.t.Fatalf("too many redirects, at %s", p.location)
		}
		if !strings.HasPrefix(p.location, "/") || strings.HasPrefix(p.location, "//") {
			b.t.Fatalf("%s redirects off the console to %q", p.path, p.location)
		}
		p = b.send(http.MethodGet, p.location, nil, nil)
	}
	return p
}

// post submits a form with the CSRF token of the last page (unless the
// form has its own), without following the redirect.
func (b *uaBrowser) post(path string, form url.Values) uaPage {
	b.t.Helper()
	if _, ok := form["csrf"]; !ok {
		if b.csrf == "" {
			b.t.Fatalf("posting to %s before loading a page with a form", path)
		}
		form.Set("csrf", b.csrf)
	}
	return b.send(http.MethodPost, path, form, nil)
}

// session is the API token in the browser's session cookie.
func (b *uaBrowser) session() string {
	b.t.Helper()
	u, _ := url.Parse(b.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "cloister_session" {
			return c.Value
		}
	}
	return ""
}

// signUp signs a new user up through the form and checks the redirect.
func (b *uaBrowser) signUp(email string) uaPage {
	b.t.Helper()
	b.get("/signup")
	p := b.post("/signup", url.Values{"email": {email}, "password": {uaPassword}, "confirm": {uaPassword}})
	if p.status != http.StatusSeeOther || p.location != "/accounts" {
		b.t.Fatalf("signing up %s = %d to %q, want 303 to /accounts: %s", email, p.status, p.location, p.body)
	}
	return p
}

// createAccount creates an account through the form and returns its id.
func (b *uaBrowser) createAccount(name string) string {
	b.t.Helper()
	b.get("/accounts")
	p := b.post("/accounts", url.Values{"name": {name}})
	m := regexp.MustCompile(`^/a/([^/]+)/apps$`).FindStringSubmatch(p.location)
	if p.status != http.StatusSeeOther || m == nil {
		b.t.Fatalf("creating account %s = %d to %q: %s", name, p.status, p.location, p.body)
	}
	if p = b.follow(p); p.status != 200 || !strings.Contains(p.body, "Account "+name+" created") {
		b.t.Fatalf("after creating account %s: %d %s", name, p.status, p.body)
	}
	return m[1]
}

// uaCookie finds a Set-Cookie of p.
func uaCookie(p uaPage, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// uaAPIGet reads an API resource as token.
func uaAPIGet(t *testing.T, s *stack, path, token string, out any) {
	t.Helper()
	r := do(t, s.srv, "GET", path, token, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, r.status, r.body)
	}
	if err := json.Unmarshal(r.body, out); err != nil {
		t.Fatal(err)
	}
}

func TestConsoleSignUpSessionAndLogout(t *testing.T) {
	s, srv := newUAConsole(t)
	b := newUA(t, srv)

	// Signed out, every page asks to sign in and comes back after.
	for path, want := range map[string]string{"/": "/login?next=%2F", "/accounts": "/login?next=%2Faccounts", "/a/x/apps?y=1": "/login?next=%2Fa%2Fx%2Fapps%3Fy%3D1"} {
		if p := b.send("GET", path, nil, nil); p.status != http.StatusSeeOther || p.location != want {
			t.Errorf("GET %s signed out = %d to %q, want 303 to %s", path, p.status, p.location, want)
		}
	}
	if p := b.get("/"); p.status != 200 || !strings.Contains(p.body, `name="next" value="/"`) || !strings.Contains(p.body, "Sign in") {
		t.Fatalf("the sign-in page = %d %s", p.status, p.body)
	}
	// Static assets get the headers too.
	if p := b.send("GET", "/static/console.css", nil, nil); p.status != 200 {
		t.Fatalf("GET /static/console.css = %d", p.status)
	}

	b.get("/signup")
	p := b.post("/signup", url.Values{"email": {"ada@example.com"}, "password": {uaPassword}, "confirm": {uaPassword + "!"}})
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "The two passwords differ.") || !strings.Contains(p.body, `value="ada@example.com"`) {
		t.Fatalf("sign-up with differing passwords = %d %s, want 400 saying so and keeping the email", p.status, p.body)
	}
	if strings.Contains(p.body, uaPassword) {
		t.Fatal("the sign-up page shows the password again")
	}
	if uaCookie(p, "cloister_session") != nil {
		t.Fatal("a failed sign-up set a session")
	}

	p = b.signUp("ada@example.com")
	ck := uaCookie(p, "cloister_session")
	if ck == nil || ck.Value == "" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.Path != "/" {
		t.Fatalf("session cookie = %+v, want HttpOnly, SameSite=Lax, not Secure over HTTP", ck)
	}
	p = b.follow(p)
	if p.status != 200 || !strings.Contains(p.body, "Welcome to Cloister") || !strings.Contains(p.body, "ada@example.com") {
		t.Fatalf("after sign-up: %d %s", p.status, p.body)
	}
	var me api.Me
	uaAPIGet(t, s, "/v1/users/me", b.session(), &me)
	if me.Email != "ada@example.com" || me.Credential != "session" {
		t.Fatalf("the cookie's token is %+v, want ada's session", me)
	}

	// Signing out ends the session on the server, not only in the browser.
	old := b.session()
	p = b.post("/logout", url.Values{})
	if p.status != http.StatusSeeOther || p.location != "/login" {
		t.Fatalf("signing out = %d to %q, want 303 to /login", p.status, p.location)
	}
	if ck := uaCookie(p, "cloister_session"); ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("signing out left the session cookie: %+v", ck)
	}
	if p = b.follow(p); !strings.Contains(p.body, "Signed out.") {
		t.Fatalf("after signing out: %s", p.body)
	}
	replay := newUA(t, srv)
	u, _ := url.Parse(srv.URL)
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: "cloister_session", Value: old, Path: "/"}})
	if p := replay.send("GET", "/accounts", nil, nil); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/login?next=") {
		t.Fatalf("GET /accounts with the signed-out cookie = %d to %q, want to be sent to sign in", p.status, p.location)
	}
	if r := do(t, s.srv, "GET", "/v1/users/me", old, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("the API with the signed-out token = %d, want 401", r.status)
	}
}

func TestConsoleCookiesAreSecureOverTLS(t *testing.T) {
	s := newStack(t, memory(t))
	srv := httptest.NewTLSServer(uaConsole(t, s))
	t.Cleanup(srv.Close)
	b := newUA(t, srv)
	p := b.send("GET", "/signup", nil, nil)
	if ck := uaCookie(p, "cloister_csrf"); ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("CSRF cookie over TLS = %+v, want Secure, HttpOnly, SameSite=Strict", ck)
	}
	b.csrf = uaCSRF.FindStringSubmatch(p.body)[1]
	p = b.post("/signup", url.Values{"email": {"ada@example.com"}, "password": {uaPassword}, "confirm": {uaPassword}})
	ck := uaCookie(p, "cloister_session")
	if p.status != http.StatusSeeOther || ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
		t.Fatalf("sign-up over TLS = %d, session cookie %+v, want Secure, HttpOnly, SameSite=Lax", p.status, ck)
	}
	if p = b.follow(p); p.status != 200 || !strings.Contains(p.body, "ada@example.com") {
		t.Fatalf("after sign-up over TLS: %d %s", p.status, p.body)
	}
}

func TestConsoleRefusesForgedPosts(t *testing.T) {
	s, srv := newUAConsole(t)
	b := newUA(t, srv)
	b.signUp("ada@example.com")
	b.get("/accounts")
	token := b.session()

	cases := []struct {
		name   string
		form   url.Values
		header http.Header
	}{
		{"no token", url.Values{"name": {"Forged"}}, nil},
		{"empty token", url.Values{"name": {"Forged"}, "csrf": {""}}, nil},
		{"wrong token", url.Values{"name": {"Forged"}, "csrf": {strings.Repeat("A", 43)}}, nil},
		{"cross-site with the right token", url.Values{"name": {"Forged"}, "csrf": {b.csrf}}, http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{"same-site (another subdomain) with the right token", url.Values{"name": {"Forged"}, "csrf": {b.csrf}}, http.Header{"Sec-Fetch-Site": {"same-site"}}},
		{"another origin with the right token", url.Values{"name": {"Forged"}, "csrf": {b.csrf}}, http.Header{"Origin": {"https://evil.example"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := b.send("POST", "/accounts", tc.form, tc.header)
			if p.status != http.StatusForbidden {
				t.Fatalf("POST /accounts (%s) = %d, want 403: %s", tc.name, p.status, p.body)
			}
			if uaCookie(p, "cloister_session") != nil {
				t.Error("a refused POST touched the session cookie")
			}
		})
	}
	// Signing out is a POST too: a forged one keeps the session.
	if p := b.send("POST", "/logout", url.Values{}, nil); p.status != http.StatusForbidden {
		t.Fatalf("POST /logout without a token = %d, want 403", p.status)
	}
	var accts api.List[api.Account]
	uaAPIGet(t, s, "/v1/accounts", token, &accts)
	if len(accts.Items) != 0 {
		t.Fatalf("refused POSTs created accounts: %+v", accts.Items)
	}

	// The same form from the console itself works.
	if p := b.post("/accounts", url.Values{"name": {"Real"}}); p.status != http.StatusSeeOther {
		t.Fatalf("POST /accounts with the token = %d %s", p.status, p.body)
	}
	uaAPIGet(t, s, "/v1/accounts", token, &accts)
	if len(accts.Items) != 1 || accts.Items[0].Name != "Real" {
		t.Fatalf("accounts = %+v, want only Real", accts.Items)
	}
}

func TestConsoleLogin(t *testing.T) {
	_, srv := newUAConsole(t)
	newUA(t, srv).signUp("ada@example.com")
	b := newUA(t, srv)

	b.get("/login")
	p := b.post("/login", url.Values{"email": {"ada@example.com"}, "password": {"not the password"}, "next": {"/accounts"}})
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "email or password is wrong") ||
		!strings.Contains(p.body, `value="ada@example.com"`) || !strings.Contains(p.body, `name="next" value="/accounts"`) {
		t.Fatalf("wrong password = %d %s, want 401 with the API's message, keeping the email and next", p.status, p.body)
	}
	if uaCookie(p, "cloister_session") != nil || strings.Contains(p.body, "not the password") {
		t.Fatal("a failed login set a session or shows the password")
	}

	// next sends back to a page of the console, never to another site.
	cases := []struct{ next, want string }{
		{"/accounts", "/accounts"},
		{"/a/x/apps?y=1", "/a/x/apps?y=1"},
		{"", "/"},
		{"//evil.example", "/"},
		{"//evil.example/a", "/"},
		{"https://evil.example", "/"},
		{"https://evil.example/accounts", "/"},
		{"/\\evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"accounts", "/"},
	}
	for _, tc := range cases {
		t.Run("next="+tc.next, func(t *testing.T) {
			b := newUA(t, srv)
			lp := b.get("/login?next=" + url.QueryEscape(tc.next))
			if !strings.Contains(lp.body, `name="next" value="`+tc.want+`"`) {
				t.Errorf("the sign-in page for next=%q does not carry %q", tc.next, tc.want)
			}
			p := b.post("/login", url.Values{"email": {"ada@example.com"}, "password": {uaPassword}, "next": {tc.next}})
			if p.status != http.StatusSeeOther || !uaOnSite(p.location) {
				t.Fatalf("login with next=%q = %d to %q, want 303 to a console page", tc.next, p.status, p.location)
			}
			if p.location != tc.want {
				t.Errorf("login with next=%q goes to %q, want %q", tc.next, p.location, tc.want)
			}
		})
	}
}

// TestConsoleNextWithControlCharacters: browsers drop tabs and newlines
// from a URL before reading it, so "/\t/evil.example" is "//evil.example",
// another site.
func TestConsoleNextWithControlCharacters(t *testing.T) {
	_, srv := newUAConsole(t)
	newUA(t, srv).signUp("ada@example.com")
	for _, next := range []string{"/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "/\t\\evil.example"} {
		b := newUA(t, srv)
		b.get("/login?next=" + url.QueryEscape(next))
		p := b.post("/login", url.Values{"email": {"ada@example.com"}, "password": {uaPassword}, "next": {next}})
		if p.status != http.StatusSeeOther || !uaOnSite(p.location) {
			t.Errorf("login with next=%q = %d to %q, want 303 to a console page", next, p.status, p.location)
		}
	}
}

// uaOnSite tells whether a browser would stay on the console when sent to
// location: as the URL standard does, it drops tabs and newlines first.
func uaOnSite(location string) bool {
	l := strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, location)
	l = strings.ReplaceAll(l, `\`, "/")
	return strings.HasPrefix(l, "/") && !strings.HasPrefix(l, "//")
}

// uaAppForm is the application form with every field filled in.
func uaAppForm() url.Values {
	return url.Values{
		"name": {"hello"}, "description": {"says hello over TLS"},
		"input_image": {"registry.example.com/samples/hello:1"}, "output_image": {"registry.example.com/samples/hello-sgx"},
		"memory_mib": {"512"}, "threads": {"8"}, "isvprodid": {"7"}, "isvsvn": {"3"}, "debug": {"on"},
		"entrypoint": {"/usr/bin/hello\n--serve\n"}, "args": {"--port\n8443"}, "allow_cmdline_args": {"on"},
		"env": {"MODE=prod\nGREETING=hi=there\n"}, "passthrough_env": {"TZ\nLANG"}, "rw_dirs": {"/data\n/var/cache/hello"},
		"domain": {"hello.cloister.test"}, "key_type": {"rsa-3072"}, "key_path": {"/run/keys/key.pem"},
		"cert_path": {"/run/keys/cert.pem"}, "validity_days": {"30"},
	}
}

func TestConsoleApplications(t *testing.T) {
	s, srv := newUAConsole(t)
	b := newUA(t, srv)
	b.signUp("ada@example.com")
	acct := b.createAccount("Payments")
	token := b.session()

	if p := b.get("/a/" + acct + "/apps"); p.status != 200 || !strings.Contains(p.body, "No applications yet") {
		t.Fatalf("empty applications page = %d %s", p.status, p.body)
	}
	b.get("/a/" + acct + "/apps/new")
	p := b.post("/a/"+acct+"/apps", uaAppForm())
	m := regexp.MustCompile(`^/a/` + acct + `/apps/([^/]+)$`).FindStringSubmatch(p.location)
	if p.status != http.StatusSeeOther || m == nil {
		t.Fatalf("creating an app = %d to %q: %s", p.status, p.location, p.body)
	}
	appID := m[1]
	if p = b.follow(p); p.status != 200 || !strings.Contains(p.body, "Application hello created.") {
		t.Fatalf("after creating the app: %d %s", p.status, p.body)
	}

	var app api.App
	uaAPIGet(t, s, "/v1/accounts/"+acct+"/apps/"+appID, token, &app)
	want := api.AppSpec{
		Name: "hello", Description: "says hello over TLS",
		InputImage: "registry.example.com/samples/hello:1", OutputImage: "registry.example.com/samples/hello-sgx",
		ISVProdID: 7, ISVSVN: 3, MemorySize: 512 << 20, Threads: 8,
		Entrypoint: []string{"/usr/bin/hello", "--serve"}, Args: []string{"--port", "8443"}, AllowCmdlineArgs: true,
		Env:            []api.EnvVar{{Name: "MODE", Value: "prod"}, {Name: "GREETING", Value: "hi=there"}},
		PassthroughEnv: []string{"TZ", "LANG"}, RWDirs: []string{"/data", "/var/cache/hello"}, Debug: true,
		Certificate: api.CertificateConfig{Domain: "hello.cloister.test", Issuer: "cloister", KeyType: "rsa-3072",
			KeyPath: "/run/keys/key.pem", CertPath: "/run/keys/cert.pem", ValidityDays: 30},
	}
	if g, w := uaJSON(t, app.AppSpec), uaJSON(t, want); g != w {
		t.Fatalf("the API has the app as\n%s\nwant\n%s", g, w)
	}
	// The app's page shows every field back.
	p = b.get("/a/" + acct + "/apps/" + appID)
	for _, s := range []string{`value="hello"`, `value="says hello over TLS"`, `value="512"`, `value="8"`, `value="7"`, `value="3"`,
		`name="debug" checked`, `name="allow_cmdline_args" checked`, "/usr/bin/hello\n--serve", "--port\n8443", "MODE=prod\nGREETING=hi=there",
		"TZ\nLANG", "/data\n/var/cache/hello", `value="hello.cloister.test"`, `<option selected>rsa-3072</option>`,
		`value="/run/keys/key.pem"`, `value="/run/keys/cert.pem"`, `value="30"`} {
		if !strings.Contains(p.body, s) {
			t.Errorf("the app's page lacks %q", s)
		}
	}
	if t.Failed() {
		t.Fatalf("the app's page: %s", p.body)
	}

	// Editing changes what the form changes.
	edit := uaAppForm()
	edit.Set("memory_mib", "1024")
	edit.Set("description", "says hello, louder")
	edit.Del("debug")
	edit.Set("env", "MODE=staging")
	p = b.post("/a/"+acct+"/apps/"+appID, edit)
	if p.status != http.StatusSeeOther || p.location != "/a/"+acct+"/apps/"+appID {
		t.Fatalf("saving the app = %d to %q: %s", p.status, p.location, p.body)
	}
	if p = b.follow(p); !strings.Contains(p.body, "Application hello saved.") {
		t.Fatalf("after saving the app: %s", p.body)
	}
	uaAPIGet(t, s, "/v1/accounts/"+acct+"/apps/"+appID, token, &app)
	if app.MemorySize != 1024<<20 || app.Description != "says hello, louder" || app.Debug || len(app.Env) != 1 || app.Env[0].Value != "staging" ||
		app.Certificate.KeyType != "rsa-3072" || app.ISVProdID != 7 {
		t.Fatalf("after editing, the API has %+v", app)
	}

	// A form error keeps what was typed and says what is wrong, whether the
	// console or the API finds it.
	for _, tc := range []struct{ field, value, says string }{
		{"memory_mib", "lots", `Memory (MiB) must be a whole number, not &#34;lots&#34;`},
		{"env", "NOT A PAIR", `environment line &#34;NOT A PAIR&#34; is not NAME=value`},
		{"input_image", "nope", "input_image"},
		{"threads", "100000", "threads"},
	} {
		for _, path := range []string{"/a/" + acct + "/apps", "/a/" + acct + "/apps/" + appID} {
			bad := uaAppForm()
			bad.Set("name", "hello2")
			bad.Set(tc.field, tc.value)
			p = b.post(path, bad)
			if p.status != http.StatusBadRequest || !strings.Contains(p.body, `role="alert"`) || !strings.Contains(p.body, tc.says) {
				t.Errorf("POST %s with %s=%q = %d, want 400 saying %q: %s", path, tc.field, tc.value, p.status, tc.says, p.body)
				continue
			}
			for _, kept := range []string{`value="hello2"`, `value="registry.example.com/samples/hello-sgx"`, `value="hello.cloister.test"`, "TZ\nLANG", tc.value} {
				if !strings.Contains(p.body, kept) {
					t.Errorf("POST %s with %s=%q: the form lost %q", path, tc.field, tc.value, kept)
				}
			}
		}
	}
	uaAPIGet(t, s, "/v1/accounts/"+acct+"/apps/"+appID, token, &app)
	if app.Name != "hello" || app.MemorySize != 1024<<20 {
		t.Fatalf("a refused edit changed the app: %+v", app)
	}

	// Another user sees nothing of this account.
	eve := newUA(t, srv)
	eve.signUp("eve@example.com")
	eve.createAccount("Eve")
	for _, path := range []string{"/a/" + acct, "/a/" + acct + "/apps", "/a/" + acct + "/apps/new", "/a/" + acct + "/apps/" + appID, "/a/" + acct + "/apps/hello"} {
		if p := eve.get(path); p.status != http.StatusNotFound || strings.Contains(p.body, "hello.cloister.test") || strings.Contains(p.body, "Payments") {
			t.Errorf("eve GET %s = %d, want 404 showing nothing: %s", path, p.status, p.body)
		}
	}
	if p := eve.post("/a/"+acct+"/apps/"+appID, uaAppForm()); p.status != http.StatusNotFound {
		t.Errorf("eve saving ada's app = %d, want 404", p.status)
	}
	if p := eve.post("/a/"+acct+"/apps/"+appID+"/delete", url.Values{}); p.status != http.StatusNotFound {
		t.Errorf("eve deleting ada's app = %d, want 404", p.status)
	}
	uaAPIGet(t, s, "/v1/accounts/"+acct+"/apps/"+appID, token, &app)
	if app.Description != "says hello, louder" {
		t.Fatalf("eve changed ada's app: %+v", app)
	}

	// Deleting through the console.
	b.get("/a/" + acct + "/apps/" + appID)
	p = b.post("/a/"+acct+"/apps/"+appID+"/delete", url.Values{})
	if p.status != http.StatusSeeOther || p.location != "/a/"+acct+"/apps" {
		t.Fatalf("deleting the app = %d to %q: %s", p.status, p.location, p.body)
	}
	if p = b.follow(p); !strings.Contains(p.body, "Application deleted") || !strings.Contains(p.body, "No applications yet") {
		t.Fatalf("after deleting the app: %s", p.body)
	}
	if p = b.get("/a/" + acct + "/apps/" + appID); p.status != http.StatusNotFound {
		t.Fatalf("the deleted app's page = %d, want 404", p.status)
	}
}

// TestConsoleAppWithoutDomain: an application needs no TLS certificate.
// The form always sends a key type, which must not count when there is no
// domain.
func TestConsoleAppWithoutDomain(t *testing.T) {
	s, srv := newUAConsole(t)
	b := newUA(t, srv)
	b.signUp("ada@example.com")
	acct := b.createAccount("Payments")
	b.get("/a/" + acct + "/apps/new")
	form := uaAppForm()
	form.Set("domain", "")
	p := b.post("/a/"+acct+"/apps", form)
	if p.status != http.StatusSeeOther {
		t.Fatalf("creating an app without a domain = %d: %s", p.status, uaAlert.FindString(p.body))
	}
	var app api.App
	uaAPIGet(t, s, "/v1/accounts/"+acct+"/apps/hello", b.session(), &app)
	if app.Certificate.Issuer != "none" {
		t.Fatalf("an app without a domain has certificate %+v, want issuer none", app.Certificate)
	}
}

var uaAlert = regexp.MustCompile(`role="alert">.*`)

func uaJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
