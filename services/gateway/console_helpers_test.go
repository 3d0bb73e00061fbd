package gateway_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/services/gateway/console"
)

// The plumbing the console tests share: a console in front of a real
// stack's API, a cookie-jar browser that holds every response to the
// console's security rules, and the pages it gets.

// consolePassword is every console test user's password.
const consolePassword = "correct horse battery"

// newConsole is the web console in front of api (a stack's gateway).
func newConsole(t *testing.T, api http.Handler) *console.Console {
	t.Helper()
	con, err := console.New(console.Config{API: api})
	if err != nil {
		t.Fatal(err)
	}
	return con
}

// consoleServer serves the web console in front of api over HTTP.
func consoleServer(t *testing.T, api http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(newConsole(t, api))
	t.Cleanup(srv.Close)
	return srv
}

// consoleTLSServer serves the web console in front of api over HTTPS.
func consoleTLSServer(t *testing.T, api http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(newConsole(t, api))
	t.Cleanup(srv.Close)
	return srv
}

// newConsoleStack is a real stack with the web console served in front of
// its API.
func newConsoleStack(t *testing.T) (*stack, *httptest.Server) {
	t.Helper()
	s := newStack(t, memory(t))
	return s, consoleServer(t, s.gw)
}

// consoleTimeout bounds every request of a consoleClient.
const consoleTimeout = 30 * time.Second

// consoleClient is a user's browser on the console: its own cookies, the
// CSRF token of the last page that had a form, and no redirect followed
// unless asked (so that each 303 is seen). Every response it gets goes
// through checkConsoleResponse.
type consoleClient struct {
	t    *testing.T
	srv  *httptest.Server
	c    *http.Client
	csrf string // the token of the last page that had a form
}

// consolePage is one response of the console.
type consolePage struct {
	method   string
	path     string // the request's path and query
	status   int
	header   http.Header
	body     string
	location string // of a redirect
}

func newConsoleClient(t *testing.T, srv *httptest.Server) *consoleClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *srv.Client() // trusts the TLS server's certificate
	c.Jar = jar
	return &consoleClient{t: t, srv: srv, c: &c}
}

// consoleCSRFField is the CSRF token of a page's form.
var consoleCSRFField = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// send makes one request (no redirect followed), checks the response and
// keeps the CSRF token of the page, if it has one. A nil form sends no
// body; header is added to the request's.
func (b *consoleClient) send(method, path string, form url.Values, header http.Header) consolePage {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), consoleTimeout)
	defer cancel()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, b.srv.URL+path, body)
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
	p := consolePage{method: method, path: path, status: resp.StatusCode, header: resp.Header, body: string(data),
		location: resp.Header.Get("Location")}
	checkConsoleResponse(b.t, p)
	if m := consoleCSRFField.FindStringSubmatch(p.body); m != nil {
		b.csrf = html.UnescapeString(m[1])
	}
	return p
}

// get loads path, leaving a redirect for the test to check.
func (b *consoleClient) get(path string) consolePage {
	b.t.Helper()
	return b.send(http.MethodGet, path, nil, nil)
}

// open loads a page, following redirects as a browser does.
func (b *consoleClient) open(path string) consolePage {
	b.t.Helper()
	return b.follow(b.get(path))
}

// follow follows p's redirects, if any, as long as they stay on the console.
func (b *consoleClient) follow(p consolePage) consolePage {
	b.t.Helper()
	for i := 0; p.location != ""; i++ {
		if i == 10 {
			b.t.Fatalf("too many redirects, at %s", p.location)
		}
		if !strings.HasPrefix(p.location, "/") || strings.HasPrefix(p.location, "//") {
			b.t.Fatalf("%s redirects off the console to %q", p.path, p.location)
		}
		p = b.get(p.location)
	}
	return p
}

// post submits form (nil for an empty one) with the CSRF token of the last
// page, unless the form has a csrf field of its own, without following the
// redirect. The caller's form is left as it was.
func (b *consoleClient) post(path string, form url.Values) consolePage {
	b.t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	if _, ok := f["csrf"]; !ok {
		if b.csrf == "" {
			b.t.Fatalf("posting to %s before loading a page with a form", path)
		}
		f.Set("csrf", b.csrf)
	}
	return b.postRaw(path, f)
}

// postRaw submits form (nil for an empty one) as it is: no CSRF token is
// added.
func (b *consoleClient) postRaw(path string, form url.Values) consolePage {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	return b.send(http.MethodPost, path, form, nil)
}

// session is the API token in the browser's session cookie.
func (b *consoleClient) session() string {
	b.t.Helper()
	u, err := url.Parse(b.srv.URL)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "cloister_session" {
			return c.Value
		}
	}
	b.t.Fatal("no session cookie")
	return ""
}

// setSession puts token in the browser's session cookie.
func (b *consoleClient) setSession(token string) {
	b.t.Helper()
	u, err := url.Parse(b.srv.URL)
	if err != nil {
		b.t.Fatal(err)
	}
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "cloister_session", Value: token, Path: "/"}})
}

// signUp signs a new user up through the form and checks the redirect.
func (b *consoleClient) signUp(email string) consolePage {
	b.t.Helper()
	b.get("/signup").want(b.t, http.StatusOK)
	p := b.post("/signup", url.Values{"email": {email}, "password": {consolePassword}, "confirm": {consolePassword}})
	if p.status != http.StatusSeeOther || p.location != "/accounts" {
		b.t.Fatalf("signing up %s = %d to %q, want 303 to /accounts: %s", email, p.status, p.location, p.body)
	}
	return p
}

// login signs an existing user in through the form and checks the
// redirect.
func (b *consoleClient) login(email string) {
	b.t.Helper()
	b.get("/login").want(b.t, http.StatusOK)
	b.post("/login", url.Values{"email": {email}, "password": {consolePassword}, "next": {"/"}}).wantRedirect(b.t, "/")
}

// createAccount creates an account through the form and returns its id.
func (b *consoleClient) createAccount(name string) string {
	b.t.Helper()
	b.open("/accounts")
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

// want checks p's status and that its body holds each of texts.
func (p consolePage) want(t *testing.T, status int, texts ...string) consolePage {
	t.Helper()
	if p.status != status {
		t.Fatalf("%s %s = %d, want %d:\n%s", p.method, p.path, p.status, status, p.body)
	}
	for _, s := range texts {
		if !strings.Contains(p.body, s) {
			t.Fatalf("%s %s does not contain %q:\n%s", p.method, p.path, s, p.body)
		}
	}
	return p
}

// seeOther wants p to be a 303 and returns where it goes.
func (p consolePage) seeOther(t *testing.T) string {
	t.Helper()
	if p.status != http.StatusSeeOther {
		t.Fatalf("%s %s = %d, want 303:\n%s", p.method, p.path, p.status, p.body)
	}
	return p.location
}

// wantRedirect wants p to be a 303 to location.
func (p consolePage) wantRedirect(t *testing.T, location string) consolePage {
	t.Helper()
	if p.status != http.StatusSeeOther || p.location != location {
		t.Fatalf("%s %s = %d to %q, want 303 to %q; body %s", p.method, p.path, p.status, p.location, location, p.body)
	}
	return p
}

// cookie is p's Set-Cookie named name, or nil.
func (p consolePage) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var (
	consoleScriptTag     = regexp.MustCompile(`(?is)<script\b[^>]*>`)
	consoleStyleAttr     = regexp.MustCompile(`(?is)<[a-z][^>]*\sstyle\s*=`)
	consoleStyleTag      = regexp.MustCompile(`(?is)<style\b`)
	consoleHandlerAttr   = regexp.MustCompile(`(?is)<[a-z][^>]*\son[a-z]+\s*=`)
	consoleJavascriptURL = regexp.MustCompile(`(?is)(href|src|action)\s*=\s*"\s*javascript:`)
)

// checkConsoleResponse holds every response of the console to its security
// rules: the security headers, no server error, and on an HTML page no
// inline script or style (which the CSP would block) and no caching.
func checkConsoleResponse(t *testing.T, p consolePage) {
	t.Helper()
	h := p.header
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s %s: Content-Security-Policy = %q", p.method, p.path, csp)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s %s: X-Content-Type-Options = %q, want nosniff", p.method, p.path, got)
	}
	if got := h.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("%s %s: X-Frame-Options = %q, want DENY", p.method, p.path, got)
	}
	if p.status >= 500 {
		t.Errorf("%s %s = %d, a server error: %s", p.method, p.path, p.status, p.body)
	}
	if !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		return
	}
	for _, tag := range consoleScriptTag.FindAllString(p.body, -1) {
		if !strings.Contains(tag, " src=") {
			t.Errorf("%s %s has an inline script: %s", p.method, p.path, tag)
		}
	}
	for _, re := range []*regexp.Regexp{consoleStyleAttr, consoleStyleTag, consoleHandlerAttr, consoleJavascriptURL} {
		if m := re.FindString(p.body); m != "" {
			t.Errorf("%s %s has inline style or script the CSP blocks: %s", p.method, p.path, m)
		}
	}
	if p.location == "" && h.Get("Cache-Control") != "no-store" {
		t.Errorf("%s %s: Cache-Control = %q, want no-store on a page", p.method, p.path, h.Get("Cache-Control"))
	}
}

// apiGet reads an API resource of s as token into out.
func apiGet(t *testing.T, s *stack, path, token string, out any) {
	t.Helper()
	r := do(t, s.srv, "GET", path, token, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, r.status, r.body)
	}
	if err := json.Unmarshal(r.body, out); err != nil {
		t.Fatal(err)
	}
}

// jsonOf is v in JSON, to compare values field by field.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
