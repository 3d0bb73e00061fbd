// Package console is Cloister's web console: server-rendered pages
// (html/template, assets embedded in the binary, a little plain
// JavaScript) for the whole journey, from sign-up to a running enclave.
//
// The console is a client of the public REST API, like the CLI: every
// page calls the gateway's /v1 handler in process with the user's session
// token, so the API's authentication, roles, validation and tenant
// isolation apply unchanged, and an error the API gives is the error the
// page shows.
//
// Security: the session token lives in an HttpOnly, SameSite=Lax cookie
// (Secure when served over TLS); every POST carries a CSRF token that must
// match a second, SameSite=Strict cookie, and cross-origin POSTs are
// refused outright (net/http's CrossOriginProtection); the
// Content-Security-Policy allows no inline script or style.
package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Cookie names.
const (
	cookieSession = "cloister_session"
	cookieCSRF    = "cloister_csrf"
	cookieFlash   = "cloister_flash"
)

// csp allows only the console's own scripts, styles and images.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxFormBytes bounds a form body.
const maxFormBytes = 256 << 10

// Config is what the console needs.
type Config struct {
	// API is the gateway's REST handler (serving /v1/); the console calls
	// it in process.
	API    http.Handler
	Logger *slog.Logger
	// PublicURL is where users reach the gateway when a proxy in front of
	// it ends TLS (e.g. https://cloister.example.com): the console then
	// marks its cookies Secure and names it in the commands it shows.
	// Without it, the request itself says (TLS, and its Host).
	PublicURL *url.URL
}

// Console serves the web console under /.
type Console struct {
	public *url.URL
	api    http.Handler
	log    *slog.Logger
	pages  *pages
	mux    *http.ServeMux
	static http.Handler
}

// New returns the console.
func New(cfg Config) (*Console, error) {
	if cfg.API == nil {
		return nil, errors.New("console: the API handler is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if u := cfg.PublicURL; u != nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
		return nil, fmt.Errorf("console: the public URL %q is not an http(s) URL with a host", u)
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c := &Console{public: cfg.PublicURL, api: cfg.API, log: cfg.Logger.With("component", "console"), pages: p, mux: http.NewServeMux(),
		static: http.StripPrefix("/static/", http.FileServerFS(sub))}
	c.routes()
	return c, nil
}

// ServeHTTP adds the security headers and checks every unsafe request
// for a cross-origin source and a CSRF token before routing it.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if c.public != nil {
		r = r.WithContext(context.WithValue(r.Context(), publicURLKey{}, c.public))
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := crossOrigin.Check(r); err != nil {
			c.renderError(w, r, http.StatusForbidden, "This form was sent from another site, so it was refused. Open the console and try again.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			c.renderError(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error())
			return
		}
		if !validCSRF(r) {
			c.renderError(w, r, http.StatusForbidden, "The form's security token is missing or out of date (perhaps the page was open for a long time). Reload the page and try again.")
			return
		}
	}
	c.mux.ServeHTTP(w, r)
}

var crossOrigin = http.NewCrossOriginProtection()

// cookieName is name, with the __Host- prefix where the cookie is
// Secure: a browser then takes it only from this very origin, over https,
// for the path /, so a sibling subdomain can neither plant nor shadow it.
// Over plain HTTP (-dev) a browser would refuse the prefix.
func cookieName(r *http.Request, name string) string {
	if secure(r) {
		return "__Host-" + name
	}
	return name
}

// session is the signed-in user's API token, or "".
func session(r *http.Request) string {
	ck, err := r.Cookie(cookieName(r, cookieSession))
	if err != nil {
		return ""
	}
	return ck.Value
}

// publicURLKey holds the configured public URL in a request's context.
type publicURLKey struct{}

// secure tells whether cookies should be Secure: the public URL is
// https, or else the request came over TLS.
func secure(r *http.Request) bool {
	if u, ok := r.Context().Value(publicURLKey{}).(*url.URL); ok {
		return u.Scheme == "https"
	}
	return r.TLS != nil
}

// publicURL is the URL users reach the console (and the API) at: the
// configured one, else what this request came to.
func publicURL(r *http.Request) string {
	if u, ok := r.Context().Value(publicURLKey{}).(*url.URL); ok {
		return strings.TrimSuffix(u.String(), "/")
	}
	scheme := "http"
	if secure(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// setSession signs the browser in; the signed-out CSRF token goes, since
// from now on the token is the session's (sessionCSRF).
func setSession(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: cookieName(r, cookieSession), Value: token, Path: "/", Expires: expires,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: cookieName(r, cookieCSRF), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
}

func clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName(r, cookieSession), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteLaxMode})
}

// csrfToken returns the request's CSRF token: forms carry it back in the
// field "csrf". Signed in, it is the session's own (sessionCSRF), so it
// changes at every login and is worthless with another session; signed
// out, it is a random one kept in a cookie, set when there is none.
func csrfToken(w http.ResponseWriter, r *http.Request) string {
	if s := session(r); s != "" {
		return sessionCSRF(s)
	}
	if ck, err := r.Cookie(cookieName(r, cookieCSRF)); err == nil && len(ck.Value) == 43 {
		return ck.Value
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: cookieName(r, cookieCSRF), Value: v, Path: "/", HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
	// Later reads in this request see it.
	r.AddCookie(&http.Cookie{Name: cookieName(r, cookieCSRF), Value: v})
	return v
}

// sessionCSRF is the CSRF token of a session: only who holds the session
// token (an HttpOnly cookie) can compute it.
func sessionCSRF(session string) string {
	sum := sha256.Sum256([]byte("cloister console csrf\x00" + session))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func validCSRF(r *http.Request) bool {
	want := ""
	if s := session(r); s != "" {
		want = sessionCSRF(s)
	} else if ck, err := r.Cookie(cookieName(r, cookieCSRF)); err == nil {
		want = ck.Value
	}
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(r.PostFormValue("csrf"))) == 1
}

// flash keeps a one-line message for the next page (after a redirect).
func flash(w http.ResponseWriter, r *http.Request, msg string) {
	http.SetCookie(w, &http.Cookie{Name: cookieName(r, cookieFlash), Value: url.QueryEscape(msg), Path: "/", MaxAge: 60,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteLaxMode})
}

// takeFlash returns and clears the flash message.
func takeFlash(w http.ResponseWriter, r *http.Request) string {
	ck, err := r.Cookie(cookieName(r, cookieFlash))
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName(r, cookieFlash), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteLaxMode})
	msg, _ := url.QueryUnescape(ck.Value)
	return msg
}

// statusOf is the HTTP status of an API error, else 500.
func statusOf(err error) int {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	return http.StatusInternalServerError
}

// call sends one request to the API in process, as the signed-in user,
// and decodes its JSON answer into out (if not nil).
func (c *Console) call(r *http.Request, method, path string, in, out any) error {
	return c.callAs(r.Context(), r, session(r), method, path, in, out)
}

func (c *Console) callAs(ctx context.Context, r *http.Request, token, method, path string, in, out any) error {
	cl := c.client(r, token)
	return cl.Do(ctx, method, path, in, out)
}

// client calls the API in process as token, from r's address.
func (c *Console) client(r *http.Request, token string) api.Client {
	return api.Client{Token: token, HTTP: api.InProcess(c.api, r.RemoteAddr), MaxReply: -1}
}

// formKeyField is the creation forms' field that carries their idempotency key.
const formKeyField = "idempotency_key"

// newFormKey is a fresh idempotency key for a creation form.
func newFormKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create sends a creation form's request with the form's idempotency
// key: a form sent twice (a double click, a reload, sending it again
// after the API was unavailable) makes one object, and a moment's
// unavailability is waited out. On failure v keeps the key when the
// request may have landed (5xx), so that the form shown again is safe to
// send again.
func (c *Console) create(r *http.Request, v *view, path string, in, out any) error {
	key := r.PostFormValue(formKeyField)
	if key == "" {
		return c.call(r, http.MethodPost, path, in, out)
	}
	ctx, cancel := context.WithTimeout(r.Context(), createTimeout)
	defer cancel()
	cl := c.client(r, session(r))
	err := cl.DoOnce(ctx, http.MethodPost, path, key, in, out)
	if statusOf(err) >= 500 {
		v.FormKey = key
	}
	return err
}

// createTimeout bounds the wait for an unavailable API behind a form.
const createTimeout = 15 * time.Second

// accountPath is the API path of an account's collection or object.
func accountPath(account string, parts ...string) string {
	p := "/v1/accounts/" + url.PathEscape(account)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// consolePath is the console's path of an account's page.
func consolePath(account string, parts ...string) string {
	p := "/a/" + url.PathEscape(account)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// safeNext accepts only a local path to go back to after signing in:
// browsers drop tabs and newlines and read a backslash as a slash, so
// "/\t/evil.example" would leave the site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') ||
		strings.IndexFunc(next, unicode.IsControl) >= 0 {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return next
}
