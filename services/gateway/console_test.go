package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/gateway/api"
	"github.com/cloister-cc/cloister/services/gateway/console"
)

func TestConsoleSignUpSessionAndLogout(t *testing.T) {
	s, srv := newConsoleStack(t)
	b := newConsoleClient(t, srv)

	// Signed out, every page asks to sign in and comes back after.
	for path, want := range map[string]string{"/": "/login?next=%2F", "/accounts": "/login?next=%2Faccounts", "/a/x/apps?y=1": "/login?next=%2Fa%2Fx%2Fapps%3Fy%3D1"} {
		if p := b.get(path); p.status != http.StatusSeeOther || p.location != want {
			t.Errorf("GET %s signed out = %d to %q, want 303 to %s", path, p.status, p.location, want)
		}
	}
	if p := b.open("/"); p.status != 200 || !strings.Contains(p.body, `name="next" value="/"`) || !strings.Contains(p.body, "Sign in") {
		t.Fatalf("the sign-in page = %d %s", p.status, p.body)
	}
	// Static assets get the headers too.
	if p := b.get("/static/console.css"); p.status != 200 {
		t.Fatalf("GET /static/console.css = %d", p.status)
	}

	b.open("/signup")
	p := b.post("/signup", url.Values{"email": {"ada@example.com"}, "password": {consolePassword}, "confirm": {consolePassword + "!"}})
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "The two passwords differ.") || !strings.Contains(p.body, `value="ada@example.com"`) {
		t.Fatalf("sign-up with differing passwords = %d %s, want 400 saying so and keeping the email", p.status, p.body)
	}
	if strings.Contains(p.body, consolePassword) {
		t.Fatal("the sign-up page shows the password again")
	}
	if p.cookie("cloister_session") != nil {
		t.Fatal("a failed sign-up set a session")
	}

	p = b.signUp("ada@example.com")
	ck := p.cookie("cloister_session")
	if ck == nil || ck.Value == "" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.Path != "/" {
		t.Fatalf("session cookie = %+v, want HttpOnly, SameSite=Lax, not Secure over HTTP", ck)
	}
	p = b.follow(p)
	if p.status != 200 || !strings.Contains(p.body, "Welcome to Cloister") || !strings.Contains(p.body, "ada@example.com") {
		t.Fatalf("after sign-up: %d %s", p.status, p.body)
	}
	var me api.Me
	apiGet(t, s, "/v1/users/me", b.session(), &me)
	if me.Email != "ada@example.com" || me.Credential != "session" {
		t.Fatalf("the cookie's token is %+v, want ada's session", me)
	}

	// Signing out ends the session on the server, not only in the browser.
	old := b.session()
	p = b.post("/logout", url.Values{})
	if p.status != http.StatusSeeOther || p.location != "/login" {
		t.Fatalf("signing out = %d to %q, want 303 to /login", p.status, p.location)
	}
	if ck := p.cookie("cloister_session"); ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("signing out left the session cookie: %+v", ck)
	}
	if p = b.follow(p); !strings.Contains(p.body, "Signed out.") {
		t.Fatalf("after signing out: %s", p.body)
	}
	replay := newConsoleClient(t, srv)
	replay.setSession(old)
	if p := replay.get("/accounts"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/login?next=") {
		t.Fatalf("GET /accounts with the signed-out cookie = %d to %q, want to be sent to sign in", p.status, p.location)
	}
	if r := do(t, s.srv, "GET", "/v1/users/me", old, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("the API with the signed-out token = %d, want 401", r.status)
	}
}

// TestConsoleCookiesAreSecureOverTLS: over https the console's cookies
// are Secure, HttpOnly and __Host- prefixed (this origin only, path /,
// no Domain), so a sibling subdomain cannot plant or shadow them.
func TestConsoleCookiesAreSecureOverTLS(t *testing.T) {
	s := newStack(t, memory(t))
	b := newConsoleClient(t, consoleTLSServer(t, s.gw))
	p := b.get("/signup")
	if ck := p.cookie("__Host-cloister_csrf"); ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Domain != "" {
		t.Fatalf("CSRF cookie over TLS = %+v, want __Host-, Secure, HttpOnly, SameSite=Strict, path /", ck)
	}
	if ck := p.cookie("cloister_csrf"); ck != nil {
		t.Fatalf("over TLS the CSRF cookie is also set without its prefix: %+v", ck)
	}
	if b.csrf == "" || consoleCSRFField.FindStringSubmatch(p.body) == nil {
		t.Fatalf("the sign-up page over TLS has no CSRF token: %s", p.body)
	}
	p = b.post("/signup", url.Values{"email": {"ada@example.com"}, "password": {consolePassword}, "confirm": {consolePassword}})
	ck := p.cookie("__Host-cloister_session")
	if p.status != http.StatusSeeOther || ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
		t.Fatalf("sign-up over TLS = %d, session cookie %+v, want __Host-, Secure, HttpOnly, SameSite=Lax, path /", p.status, ck)
	}
	if p = b.follow(p); p.status != 200 || !strings.Contains(p.body, "ada@example.com") {
		t.Fatalf("after sign-up over TLS: %d %s", p.status, p.body)
	}
	if got := b.post("/accounts", url.Values{"name": {"Over TLS"}}); got.status != http.StatusSeeOther {
		t.Fatalf("a form over TLS after sign-up = %d %s", got.status, got.body)
	}
}

// TestConsoleCSRFBoundToSession: the token changes at login, and one
// session's token is refused with another session.
func TestConsoleCSRFBoundToSession(t *testing.T) {
	_, srv := newConsoleStack(t)
	ada := newConsoleClient(t, srv)
	ada.open("/signup")
	signedOut := ada.csrf
	ada.signUp("ada@example.com")
	ada.open("/accounts")
	if ada.csrf == "" || ada.csrf == signedOut {
		t.Fatalf("the CSRF token after sign-up is %q, the one before %q: want a new one", ada.csrf, signedOut)
	}
	bob := newConsoleClient(t, srv)
	bob.signUp("bob@example.com")
	bob.open("/accounts")
	if p := ada.send("POST", "/accounts", url.Values{"name": {"Forged"}, "csrf": {bob.csrf}}, nil); p.status != http.StatusForbidden {
		t.Fatalf("a form with another session's token = %d, want 403", p.status)
	}
	if p := ada.send("POST", "/accounts", url.Values{"name": {"Forged"}, "csrf": {signedOut}}, nil); p.status != http.StatusForbidden {
		t.Fatalf("a form with the token from before sign-in = %d, want 403", p.status)
	}
	if p := ada.post("/accounts", url.Values{"name": {"Real"}}); p.status != http.StatusSeeOther {
		t.Fatalf("a form with the session's token = %d %s", p.status, p.body)
	}
}

// Behind a proxy that ends TLS, the console hears plain HTTP: with its
// public URL set to https, its cookies are Secure all the same.
func TestConsoleBehindATLSProxy(t *testing.T) {
	s := newStack(t, memory(t))
	public, _ := url.Parse("https://cloister.example.com/")
	con, err := console.New(console.Config{API: s.gw, PublicURL: public})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)
	b := newConsoleClient(t, srv)
	p := b.get("/signup")
	if ck := p.cookie("__Host-cloister_csrf"); ck == nil || !ck.Secure {
		t.Fatalf("CSRF cookie behind an https public URL = %+v, want __Host- and Secure", ck)
	}
	for _, bad := range []string{"ftp://cloister.example.com", "https://", "/relative"} {
		u, _ := url.Parse(bad)
		if _, err := console.New(console.Config{API: s.gw, PublicURL: u}); err == nil {
			t.Errorf("console.New with the public URL %q succeeded, want an error", bad)
		}
	}
}

func TestConsoleRefusesForgedPosts(t *testing.T) {
	s, srv := newConsoleStack(t)
	b := newConsoleClient(t, srv)
	b.signUp("ada@example.com")
	b.open("/accounts")
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
			if p.cookie("cloister_session") != nil {
				t.Error("a refused POST touched the session cookie")
			}
		})
	}
	// Signing out is a POST too: a forged one keeps the session.
	if p := b.postRaw("/logout", nil); p.status != http.StatusForbidden {
		t.Fatalf("POST /logout without a token = %d, want 403", p.status)
	}
	var accts api.List[api.Account]
	apiGet(t, s, "/v1/accounts", token, &accts)
	if len(accts.Items) != 0 {
		t.Fatalf("refused POSTs created accounts: %+v", accts.Items)
	}

	// The same form from the console itself works.
	if p := b.post("/accounts", url.Values{"name": {"Real"}}); p.status != http.StatusSeeOther {
		t.Fatalf("POST /accounts with the token = %d %s", p.status, p.body)
	}
	apiGet(t, s, "/v1/accounts", token, &accts)
	if len(accts.Items) != 1 || accts.Items[0].Name != "Real" {
		t.Fatalf("accounts = %+v, want only Real", accts.Items)
	}
}

func TestConsoleLogin(t *testing.T) {
	_, srv := newConsoleStack(t)
	newConsoleClient(t, srv).signUp("ada@example.com")
	b := newConsoleClient(t, srv)

	b.open("/login")
	p := b.post("/login", url.Values{"email": {"ada@example.com"}, "password": {"not the password"}, "next": {"/accounts"}})
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "email or password is wrong") ||
		!strings.Contains(p.body, `value="ada@example.com"`) || !strings.Contains(p.body, `name="next" value="/accounts"`) {
		t.Fatalf("wrong password = %d %s, want 401 with the API's message, keeping the email and next", p.status, p.body)
	}
	if p.cookie("cloister_session") != nil || strings.Contains(p.body, "not the password") {
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
			b := newConsoleClient(t, srv)
			lp := b.open("/login?next=" + url.QueryEscape(tc.next))
			if !strings.Contains(lp.body, `name="next" value="`+tc.want+`"`) {
				t.Errorf("the sign-in page for next=%q does not carry %q", tc.next, tc.want)
			}
			p := b.post("/login", url.Values{"email": {"ada@example.com"}, "password": {consolePassword}, "next": {tc.next}})
			if p.status != http.StatusSeeOther || !onConsole(p.location) {
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
	_, srv := newConsoleStack(t)
	newConsoleClient(t, srv).signUp("ada@example.com")
	for _, next := range []string{"/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "/\t\\evil.example"} {
		b := newConsoleClient(t, srv)
		b.open("/login?next=" + url.QueryEscape(next))
		p := b.post("/login", url.Values{"email": {"ada@example.com"}, "password": {consolePassword}, "next": {next}})
		if p.status != http.StatusSeeOther || !onConsole(p.location) {
			t.Errorf("login with next=%q = %d to %q, want 303 to a console page", next, p.status, p.location)
		}
	}
}

// onConsole tells whether a browser would stay on the console when sent to
// location: as the URL standard does, it drops tabs and newlines first.
func onConsole(location string) bool {
	l := strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, location)
	l = strings.ReplaceAll(l, `\`, "/")
	return strings.HasPrefix(l, "/") && !strings.HasPrefix(l, "//")
}

// appForm is the application form with every field filled in.
func appForm() url.Values {
	return url.Values{
		"name": {"hello"}, "description": {"says hello over TLS"},
		"input_image": {"registry.example.com/samples/hello:1"}, "output_image": {"registry.example.com/samples/hello-sgx"},
		"memory_mib": {"512"}, "threads": {"8"}, "isvprodid": {"7"}, "isvsvn": {"3"}, "debug": {"on"},
		"entrypoint": {"/usr/bin/hello\n--serve\n"}, "args": {"--port\n8443"}, "allow_cmdline_args": {"on"},
		"env": {"MODE=prod\nGREETING=hi=there\n"}, "passthrough_env": {"TZ\nLANG"}, "rw_dirs": {"/data\n/var/cache/hello"},
		"domain": {"hello.cloister.test"}, "key_type": {"rsa-3072"}, "key_path": {"/run/keys/key.pem"},
		"cert_path": {"/run/keys/cert.pem"}, "validity_days": {"30"},
		"secrets_dir": {"/run/secrets"}, "secret_env": {"DB_PASSWORD=db-password\n"}, "volumes": {"/srv/data=hello-data"},
	}
}

func TestConsoleApplications(t *testing.T) {
	s, srv := newConsoleStack(t)
	b := newConsoleClient(t, srv)
	b.signUp("ada@example.com")
	acct := b.createAccount("Payments")
	token := b.session()

	if p := b.open("/a/" + acct + "/apps"); p.status != 200 || !strings.Contains(p.body, "No applications yet") {
		t.Fatalf("empty applications page = %d %s", p.status, p.body)
	}
	b.open("/a/"+acct+"/apps/new").want(t, http.StatusOK, "(0: the CA's default, 30 days)")
	p := b.post("/a/"+acct+"/apps", appForm())
	m := regexp.MustCompile(`^/a/` + acct + `/apps/([^/]+)$`).FindStringSubmatch(p.location)
	if p.status != http.StatusSeeOther || m == nil {
		t.Fatalf("creating an app = %d to %q: %s", p.status, p.location, p.body)
	}
	appID := m[1]
	if p = b.follow(p); p.status != 200 || !strings.Contains(p.body, "Application hello created.") {
		t.Fatalf("after creating the app: %d %s", p.status, p.body)
	}

	var app api.App
	apiGet(t, s, "/v1/accounts/"+acct+"/apps/"+appID, token, &app)
	want := api.AppSpec{
		Name: "hello", Description: "says hello over TLS",
		InputImage: "registry.example.com/samples/hello:1", OutputImage: "registry.example.com/samples/hello-sgx",
		ISVProdID: 7, ISVSVN: 3, MemorySize: 512 << 20, Threads: 8,
		Entrypoint: []string{"/usr/bin/hello", "--serve"}, Args: []string{"--port", "8443"}, AllowCmdlineArgs: true,
		Env:            []api.EnvVar{{Name: "MODE", Value: "prod"}, {Name: "GREETING", Value: "hi=there"}},
		PassthroughEnv: []string{"TZ", "LANG"}, RWDirs: []string{"/data", "/var/cache/hello"}, Debug: true,
		Certificate: api.CertificateConfig{Domain: "hello.cloister.test", Issuer: "cloister", KeyType: "rsa-3072",
			KeyPath: "/run/keys/key.pem", CertPath: "/run/keys/cert.pem", ValidityDays: 30},
		SecretsDir: "/run/secrets", SecretEnv: []api.SecretEnv{{Name: "DB_PASSWORD", Secret: "db-password"}},
		Volumes: []api.Volume{{Path: "/srv/data", KeyName: "hello-data"}},
	}
	if g, w := jsonOf(t, app.AppSpec), jsonOf(t, want); g != w {
		t.Fatalf("the API has the app as\n%s\nwant\n%s", g, w)
	}
	// The app's page shows every field back.
	p = b.open("/a/" + acct + "/apps/" + appID)
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
	edit := appForm()
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
	apiGet(t, s, "/v1/accounts/"+acct+"/apps/"+appID, token, &app)
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
			bad := appForm()
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
	apiGet(t, s, "/v1/accounts/"+acct+"/apps/"+appID, token, &app)
	if app.Name != "hello" || app.MemorySize != 1024<<20 {
		t.Fatalf("a refused edit changed the app: %+v", app)
	}

	// Another user sees nothing of this account.
	eve := newConsoleClient(t, srv)
	eve.signUp("eve@example.com")
	eve.createAccount("Eve")
	for _, path := range []string{"/a/" + acct, "/a/" + acct + "/apps", "/a/" + acct + "/apps/new", "/a/" + acct + "/apps/" + appID, "/a/" + acct + "/apps/hello"} {
		if p := eve.open(path); p.status != http.StatusNotFound || strings.Contains(p.body, "hello.cloister.test") || strings.Contains(p.body, "Payments") {
			t.Errorf("eve GET %s = %d, want 404 showing nothing: %s", path, p.status, p.body)
		}
	}
	if p := eve.post("/a/"+acct+"/apps/"+appID, appForm()); p.status != http.StatusNotFound {
		t.Errorf("eve saving ada's app = %d, want 404", p.status)
	}
	if p := eve.post("/a/"+acct+"/apps/"+appID+"/delete", url.Values{}); p.status != http.StatusNotFound {
		t.Errorf("eve deleting ada's app = %d, want 404", p.status)
	}
	apiGet(t, s, "/v1/accounts/"+acct+"/apps/"+appID, token, &app)
	if app.Description != "says hello, louder" {
		t.Fatalf("eve changed ada's app: %+v", app)
	}

	// Deleting through the console.
	b.open("/a/" + acct + "/apps/" + appID)
	p = b.post("/a/"+acct+"/apps/"+appID+"/delete", url.Values{})
	if p.status != http.StatusSeeOther || p.location != "/a/"+acct+"/apps" {
		t.Fatalf("deleting the app = %d to %q: %s", p.status, p.location, p.body)
	}
	if p = b.follow(p); !strings.Contains(p.body, "Application deleted") || !strings.Contains(p.body, "No applications yet") {
		t.Fatalf("after deleting the app: %s", p.body)
	}
	if p = b.open("/a/" + acct + "/apps/" + appID); p.status != http.StatusNotFound {
		t.Fatalf("the deleted app's page = %d, want 404", p.status)
	}
}

// TestConsoleAppWithoutDomain: an application needs no TLS certificate.
// The form always sends a key type, which must not count when there is no
// domain.
func TestConsoleAppWithoutDomain(t *testing.T) {
	s, srv := newConsoleStack(t)
	b := newConsoleClient(t, srv)
	b.signUp("ada@example.com")
	acct := b.createAccount("Payments")
	b.open("/a/" + acct + "/apps/new")
	form := appForm()
	form.Set("domain", "")
	// Secrets come with the certificate: without one, none.
	form.Del("secrets_dir")
	form.Del("secret_env")
	form.Del("volumes")
	p := b.post("/a/"+acct+"/apps", form)
	if p.status != http.StatusSeeOther {
		t.Fatalf("creating an app without a domain = %d: %s", p.status, alertLine.FindString(p.body))
	}
	var app api.App
	apiGet(t, s, "/v1/accounts/"+acct+"/apps/hello", b.session(), &app)
	if app.Certificate.Issuer != "none" {
		t.Fatalf("an app without a domain has certificate %+v, want issuer none", app.Certificate)
	}
}

// alertLine is a page's alert, to say why a form was refused.
var alertLine = regexp.MustCompile(`role="alert">.*`)

// An application's secrets in the console: an admin sets one from the
// app's page, which then lists its name and version but never its
// value; a member is refused with the API's reason, and the value they
// typed is not shown back; the admin deletes it.
func TestConsoleSecrets(t *testing.T) {
	s, srv := newConsoleStack(t)
	ada := newConsoleClient(t, srv)
	ada.signUp("ada@example.com")
	acct := ada.createAccount("Payments")
	p := ada.post("/a/"+acct+"/apps", appForm())
	m := regexp.MustCompile(`^/a/` + acct + `/apps/([^/]+)$`).FindStringSubmatch(p.location)
	if m == nil {
		t.Fatalf("creating an app = %d to %q: %s", p.status, p.location, p.body)
	}
	appPage := "/a/" + acct + "/apps/" + m[1]
	if p := ada.open(appPage); p.status != 200 || !strings.Contains(p.body, "has no secrets") || !strings.Contains(p.body, `value="/run/secrets"`) {
		t.Fatalf("the app's page = %d %s", p.status, p.body)
	}
	const value = "hunter2-in-the-console"
	p = ada.post(appPage+"/secrets", url.Values{"name": {"db-password"}, "value": {value}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("setting a secret = %d %s", p.status, p.body)
	}
	p = ada.follow(p)
	if p.status != 200 || !strings.Contains(p.body, "Secret db-password set.") || !strings.Contains(p.body, "<code>db-password</code>") ||
		strings.Contains(p.body, value) {
		t.Fatalf("after setting a secret: %d %s", p.status, p.body)
	}
	if p := ada.post(appPage+"/secrets", url.Values{"name": {"../x"}, "value": {value}}); p.status != 400 || !strings.Contains(p.body, "secret name") ||
		strings.Contains(p.body, value) {
		t.Fatalf("a malformed name = %d, want 400 with the reason and without the value: %s", p.status, p.body)
	}

	bob := newConsoleClient(t, srv)
	bob.signUp("bob@example.com")
	s.addMember(ada.session(), acct, "bob@example.com", "member")
	if p := bob.open(appPage); p.status != 200 || !strings.Contains(p.body, "<code>db-password</code>") {
		t.Fatalf("a member's view of the app = %d %s", p.status, p.body)
	}
	if p := bob.post(appPage+"/secrets", url.Values{"name": {"db-password"}, "value": {"bobs-" + value}}); p.status != http.StatusForbidden ||
		!strings.Contains(p.body, "your role in this account does not allow this") || strings.Contains(p.body, "bobs-"+value) {
		t.Fatalf("a member setting a secret = %d, want 403 without the value: %s", p.status, p.body)
	}
	if p := bob.post(appPage+"/secrets/db-password/delete", url.Values{}); p.status != http.StatusForbidden {
		t.Fatalf("a member deleting a secret = %d, want 403: %s", p.status, p.body)
	}

	p = ada.post(appPage+"/secrets/db-password/delete", url.Values{})
	if p = ada.follow(p); p.status != 200 || !strings.Contains(p.body, "Secret db-password deleted.") || !strings.Contains(p.body, "has no secrets") {
		t.Fatalf("after deleting the secret: %d %s", p.status, p.body)
	}

	// Under secrets_need_approval, a new value is a task the tasks page
	// shows by the secret's name and version, never its value.
	if r := do(t, s.srv, "PATCH", "/v1/accounts/"+acct, ada.session(), map[string]any{"secrets_need_approval": true}); r.status != 200 {
		t.Fatalf("turning secrets_need_approval on = %d %s", r.status, r.body)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		ada.post(appPage+"/secrets", url.Values{"name": {"api.key"}, "value": {value}})
		p := ada.open("/a/" + acct + "/tasks")
		return p.status == 200 && strings.Contains(p.body, "secret <code>api.key</code>")
	}, "the tasks page never showed a secret task")
	if p := ada.open("/a/" + acct + "/tasks"); strings.Contains(p.body, value) {
		t.Fatalf("the tasks page shows a secret's value: %s", p.body)
	}
}
