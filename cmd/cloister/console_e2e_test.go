package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cloister-cc/cloister/libs/testkit"
)

// chromiumPath finds Debian's Chromium (or Chrome). Without one the
// browser test skips, except in CI, where .ci/run installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium on $PATH: .ci/run installs Debian's chromium package")
	}
	t.Skip("no Chromium on $PATH (apt-get install chromium)")
	return ""
}

// browser is a headless Chromium tab driven by chromedp, which saves a
// screenshot of every page it is asked to into the test's artifacts.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
	n    int
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // root in CI containers
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, base: base, dir: t.ArtifactDir()}
	// The first run starts the browser, without a timeout (see chromedp.Run).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return b
}

// do runs chromedp actions, within a minute.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.failed(what, err)
	}
}

// get runs one chromedp action that returns a value, within a minute.
func get[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.failed(what, err)
	}
	return v
}

// failed ends the test with a screenshot and what the page says.
func (b *browser) failed(what string, err error) {
	b.t.Helper()
	b.shot("failed")
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	b.t.Fatalf("%s: %v\nat %s:\n%.3000s", what, err, loc, body)
}

// open loads a console path and waits for its page.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do("opening "+path, chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("main")))
}

// unlabelled lists the page's form controls that no label names.
const unlabelled = `[...document.querySelectorAll("input:not([type=hidden]), select, textarea, button")]
	.filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !(e.tagName === "BUTTON" && e.textContent.trim()))
	.map(e => e.outerHTML.slice(0, 120))`

// shot saves a full-page screenshot named after the page, after checking
// that every form control on it has a label.
func (b *browser) shot(name string) {
	b.t.Helper()
	if !strings.HasPrefix(name, "failed") {
		if missing := get(b, "finding unlabelled controls", chromedp.Evaluate[[]string](unlabelled)); len(missing) > 0 {
			b.t.Errorf("page %s has form controls without a label: %q", name, missing)
		}
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.n++
	if err := os.WriteFile(filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.n, name)), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// fill types into the inputs named by CSS selector, clearing them first.
func (b *browser) fill(fields map[string]string) {
	b.t.Helper()
	for sel, v := range fields {
		clear := fmt.Sprintf(`document.querySelector(%q).value = ""; undefined`, sel)
		b.do("filling "+sel, chromedp.Evaluate[chromedp.Void](clear), chromedp.SendKeys(chromedp.CSS(sel), v))
	}
}

// submit clicks a button (CSS selector) and waits until the next page has
// loaded. Confirmations (data-confirm) are accepted, as a user would.
func (b *browser) submit(sel string) {
	b.t.Helper()
	b.do("marking the page", chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.old = "1"; window.confirm = () => true; undefined`))
	b.do("submitting with "+sel, chromedp.Click(chromedp.CSS(sel)), chromedp.WaitReady(chromedp.CSS(`html:not([data-old]) main`)))
}

// text returns the text of the first element matching sel, once the page
// has finished loading. It reads it in the page rather than by DevTools
// node id: a document that finishes loading between a query and a read
// makes such an id stale ("No node with given id found").
func (b *browser) text(sel string) string {
	b.t.Helper()
	// "=" keeps an empty text truthy, so that the poll ends.
	v := get(b, "reading "+sel, chromedp.Poll[string](fmt.Sprintf(
		`document.readyState === "complete" && document.querySelector(%q) !== null && "=" + document.querySelector(%q).innerText`, sel, sel)))
	return strings.TrimSpace(strings.TrimPrefix(v, "="))
}

// location is the path (and query) the browser is on.
func (b *browser) location() string {
	b.t.Helper()
	return strings.TrimPrefix(get(b, "reading the location", chromedp.Location()), b.base)
}

// has reports whether the page has an element matching sel.
func (b *browser) has(sel string) bool {
	b.t.Helper()
	return get(b, "counting "+sel, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))) > 0
}

// TestConsoleJourney drives Chromium through the web console from sign-up
// to a running instance, as DESIGN §1 asks, with the real server, node
// agent and launcher, and saves a screenshot of every page.
func TestConsoleJourney(t *testing.T) {
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("starts the server, Chromium, a node agent and an enclave")
	}
	dataDir, addr, nodeAddr, registry := t.TempDir(), testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	startServerArgs(t, addr, "-dev", "--data-dir", dataDir, "--launcher", launcherBinary(t), "--node-http", nodeAddr,
		"--registry", registry, "--sample", helloBinary(t))
	b := newBrowser(t, "http://"+addr)

	// Signed out, the console asks to sign in; keyboard users can skip
	// straight to the content.
	b.open("/")
	if loc := b.location(); !strings.HasPrefix(loc, "/login") {
		t.Fatalf("/ signed out went to %s, want /login", loc)
	}
	b.do("tabbing", chromedp.MouseClickXY(600, 890), chromedp.KeyEvent("\t"))
	if focused := get(b, "reading the focus", chromedp.Evaluate[string](`document.activeElement.textContent`)); focused != "Skip to content" {
		t.Fatalf("the first Tab focuses %q, want the skip link", focused)
	}
	b.shot("login")

	b.open("/signup")
	b.fill(map[string]string{"#email": "sec@example.com", "#password": "a long passphrase", "#confirm": "a long passphrase"})
	b.shot("signup")
	b.submit(`form[action="/signup"] button[type=submit]`)
	if loc := b.location(); loc != "/accounts" {
		t.Fatalf("after sign-up the console is at %s, want /accounts", loc)
	}
	b.shot("accounts-empty")

	b.fill(map[string]string{"#name": "Enclaves"})
	b.submit(`form[action="/accounts"] button[type=submit]`)
	loc := b.location()
	account := strings.TrimSuffix(strings.TrimPrefix(loc, "/a/"), "/apps")
	if !strings.HasPrefix(loc, "/a/") || account == loc {
		t.Fatalf("after creating the account the console is at %s, want /a/<id>/apps", loc)
	}
	if !strings.Contains(b.text("main"), "No applications yet") {
		t.Fatalf("a new account's applications page lacks its empty state: %s", b.text("main"))
	}
	b.shot("apps-empty")

	b.open("/a/" + account + "/apps/new")
	b.fill(map[string]string{
		"#name": "hello", "#input_image": registry + "/samples/hello-https:1", "#output_image": registry + "/samples/hello-sgx",
		"#memory_mib": "64", "#threads": "4", "#passthrough_env": "HELLO_ADDR", "#domain": "hello.cloister.test",
	})
	b.shot("app-new")
	b.submit(`main form.grid button[type=submit]`)
	if !strings.Contains(b.text(".flash"), "Application hello created") {
		t.Fatalf("creating the app: %s", b.text("main"))
	}
	b.shot("app")
	b.open("/a/" + account + "/apps")
	b.shot("apps")

	// No SGX here: the account accepts simulated evidence.
	b.open("/a/" + account + "/policy")
	b.do("ticking the policy", chromedp.Evaluate[chromedp.Void](`for (const sel of ['input[name=accept_statuses][value=UpToDate]', 'input[name=allow_simulation]']) {
		const box = document.querySelector(sel); if (!box.checked) box.click(); }; undefined`))
	b.submit(`form.policy button[type=submit]`)
	if !strings.Contains(b.text(".flash"), "Simulated evidence is accepted") {
		t.Fatalf("saving the policy: %s", b.text("main"))
	}
	b.shot("policy")

	// Convert the image; the account's signing key may still be on its way.
	b.open("/a/" + account + "/images")
	b.shot("images-empty")
	for i := 0; ; i++ {
		b.fill(map[string]string{"#convert-tag": "1"})
		b.submit(`form[action$="/images"] button[type=submit]`)
		if strings.Contains(b.location(), "/images/") {
			break
		}
		if i == 30 || !strings.Contains(b.text(".error"), "not ready") {
			t.Fatalf("converting: %s", b.text("main"))
		}
		time.Sleep(time.Second)
	}
	b.shot("image-converting")
	// The page follows the conversion and reloads when it is done.
	b.do("waiting for the conversion", chromedp.WaitVisible(chromedp.CSS("#mrenclave")))
	mrenclave := b.text("#mrenclave")
	if len(mrenclave) != 64 || !b.has(`button[data-copy=mrenclave]:not([hidden])`) {
		t.Fatalf("the converted image's page shows MRENCLAVE %q, or no copy button", mrenclave)
	}
	b.shot("image")
	b.open("/a/" + account + "/images")
	b.shot("images")

	// Approve the domain and the image.
	b.open("/a/" + account + "/tasks")
	b.shot("tasks")
	for b.has(`button[aria-label^="Approve"]`) {
		b.submit(`button[aria-label^="Approve"]`)
	}
	if !strings.Contains(b.text("main"), "Nothing to approve") {
		t.Fatalf("after approving, the tasks page says: %s", b.text("main"))
	}
	b.open("/a/" + account + "/tasks?status=all")
	b.shot("tasks-approved")

	// A join token, shown once, and a node agent started with it.
	b.open("/a/" + account + "/nodes")
	b.shot("nodes-empty")
	b.fill(map[string]string{"#token-name": "rack-1", "#token-max-uses": "1"})
	b.submit(`form[action$="/join-tokens"] button[type=submit]`)
	secret := b.text("#token-secret")
	if !strings.HasPrefix(secret, "cjt_") {
		t.Fatalf("the token page shows %q, want the secret", secret)
	}
	b.shot("token")
	agentAPI := startAgent(t, addr, nodeAddr, dataDir, secret)

	// The converted image's launcher gets its certificate; a client that
	// trusts only the account CA (downloaded from the console) talks to it.
	root := unpackImage(t, t.TempDir(), registry+"/samples/hello-sgx:1")
	helloAddr := testkit.FreeAddr(t)
	enclave := startLauncher(t, root, agentAPI, helloAddr)
	chain := get(b, "downloading ca.pem", chromedp.Evaluate[string](
		fmt.Sprintf(`fetch(%q).then(r => r.text())`, "/a/"+account+"/certificates/ca.pem"), chromedp.EvalAwaitPromise))
	if page := waitForHTTPS(t, testkit.TrustingOnly(t, chain, "hello.cloister.test"), helloAddr, enclave); !strings.Contains(page, "Hello from an attested enclave") {
		t.Fatalf("the enclave answered %q", page)
	}

	// The running instance on its node.
	b.open("/a/" + account + "/nodes")
	b.shot("nodes")
	b.submit(`main table a[href*="/nodes/"]`)
	for i := 0; !strings.Contains(b.text("main"), mrenclave); i++ {
		if i == 40 {
			t.Fatalf("the node page never showed the running instance: %s", b.text("main"))
		}
		time.Sleep(500 * time.Millisecond)
		b.do("reloading", chromedp.Reload(), chromedp.WaitReady(chromedp.CSS("main")))
	}
	if !b.has(`main .status-running`) {
		t.Fatalf("the instance is not shown running: %s", b.text("main"))
	}
	b.shot("node")

	b.open("/a/" + account + "/certificates")
	if !strings.Contains(b.text("main"), "hello.cloister.test") {
		t.Fatalf("the certificates page lacks the enclave's certificate: %s", b.text("main"))
	}
	b.shot("certificates")
	b.submit(`main table tbody tr td:first-child a[href*="/certificates/"]`)
	b.shot("certificate")
	// The account opens on its overview: the enclave running, and the day
	// drawn with the attestations and issuances behind it (counted every
	// 2 s).
	for i := 0; !b.has(`figure.chart svg rect.bar-ok`); i++ {
		if i == 40 {
			t.Fatalf("the overview never drew the attestations: %s", b.text("main"))
		}
		time.Sleep(500 * time.Millisecond)
		b.open("/a/" + account)
	}
	if loc := b.location(); loc != "/a/"+account+"/overview" {
		t.Fatalf("the account opens on %s, want its overview", loc)
	}
	if text := b.text("main ul.tiles"); !regexp.MustCompile(`\b1\s+active node`).MatchString(text) || !regexp.MustCompile(`\b1\s+running instance`).MatchString(text) {
		t.Fatalf("the overview's figures say: %s", text)
	}
	if !b.has(`figure.chart svg rect.bar-issued`) || !strings.Contains(b.text("#running ~ table"), "node-1") {
		t.Fatalf("the overview lacks the issuances or the instance on node-1: %s", b.text("main"))
	}
	b.shot("overview")
	b.open("/a/" + account + "/audit")
	b.shot("audit")
	b.open("/accounts")
	b.shot("accounts")
	// Another account's page, or none, is a 404 that says so.
	b.open("/a/01a21d36-0000-7000-8000-000000000000/apps")
	if !strings.Contains(b.text("main"), "no such account") {
		t.Fatalf("an unknown account's page says: %s", b.text("main"))
	}
	b.shot("not-found")

	// The same page on a phone.
	b.do("resizing to a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(3)))
	b.open("/a/" + account + "/apps")
	b.shot("apps-phone")
	b.do("resizing back", chromedp.EmulateReset())
}
