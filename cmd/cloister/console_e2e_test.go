package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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

// shot saves a full-page screenshot named after the page.
func (b *browser) shot(name string) {
	b.t.Helper()
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

// text returns the text of the first element matching sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(get(b, "reading "+sel, chromedp.Text(chromedp.CSS(sel))))
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
	dataDir, addr, nodeAddr, registry := t.TempDir(), freeAddr(t), freeAddr(t), freeAddr(t)
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

	// The same page on a phone.
	b.do("resizing to a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(3)))
	b.open("/a/" + account + "/apps")
	b.shot("apps-phone")
	b.do("resizing back", chromedp.EmulateReset())
}
