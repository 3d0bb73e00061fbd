package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/gateway/api"
	"github.com/cloister-cc/cloister/services/imageconverter"
)

// TestConsoleImagesAndTasks walks the console's images and tasks pages
// against the real stack, with a converter that converts: sign up, create
// an account and an application with a domain, convert its image from an
// in-process registry, follow the progress JSON, read the MRENCLAVE on the
// image page, and approve the domain and image tasks; refusals (a member
// approving, a task approved twice, a form without its CSRF token,
// another account's image) show as pages, not blank answers.
func TestConsoleImagesAndTasks(t *testing.T) {
	s := newStack(t, memory(t))
	startImageWorker(t, s)
	host := startImageRegistry(t)
	pushRandomImage(t, host+"/in:1")
	srv := consoleServer(t, s.gw)

	ada := newConsoleClient(t, srv)
	ada.signUp("ada@example.com")
	acct := ada.createAccount("A")
	images, tasks := "/a/"+acct+"/images", "/a/"+acct+"/tasks"

	// Before any application, the images page says to create one.
	ada.get(images).want(t, http.StatusOK, "Create an application first")
	ada.get(tasks).want(t, http.StatusOK, "Nothing to approve.")

	const domain = "hello.cloister.test"
	r := ada.post("/a/"+acct+"/apps", url.Values{"name": {"hello"}, "input_image": {host + "/in:1"}, "output_image": {host + "/out"},
		"entrypoint": {"/bin/hello"}, "memory_mib": {"64"}, "threads": {"2"}, "domain": {domain}, "key_type": {"ec-p256"}})
	appPage := r.seeOther(t)
	appID := appPage[strings.LastIndex(appPage, "/")+1:]
	ada.get(images).want(t, http.StatusOK, `<label for="convert-app">Application</label>`, `<option value="`+appID+`">hello`, "No images yet.")

	// A form without its CSRF token is refused before it does anything.
	if r := ada.postRaw(images, url.Values{"app": {appID}, "tag": {"1"}}); r.status != http.StatusForbidden || !strings.Contains(r.body, "security token") {
		t.Fatalf("converting without the csrf field = %d, want 403 about the token:\n%s", r.status, r.body)
	}
	// A bad tag is the API's 400, shown on the form with what was typed.
	ada.post(images, url.Values{"app": {appID}, "tag": {"bad tag"}}).want(t, http.StatusBadRequest, "tag: ", `value="bad tag"`)

	// The account's signing key comes with AccountCreated: converting may
	// be refused for a moment.
	testkit.EventuallyMsg(t, 20*time.Second, func() bool {
		r = ada.post(images, url.Values{"app": {appID}, "tag": {"1"}})
		return r.status == http.StatusSeeOther
	}, func() string { return fmt.Sprintf("converting never accepted: %d %s", r.status, r.body) })
	imagePage := r.seeOther(t)
	imageID := imagePage[strings.LastIndex(imagePage, "/")+1:]
	if imagePage != images+"/"+imageID {
		t.Fatalf("converting redirected to %s, want the image's page", imagePage)
	}
	page := ada.get(imagePage).want(t, http.StatusOK, "Conversion of "+host+"/out:1 started", "hello:1")
	// A long reference may wrap after its '/' and ':'.
	ada.get(images).want(t, http.StatusOK, "/<wbr>out:<wbr>1</code>")
	if !strings.Contains(page.body, "data-poll=") && !strings.Contains(page.body, `class="status-converted"`) {
		t.Fatalf("the image page of a conversion in progress has no live progress:\n%s", page.body)
	}

	// The progress JSON is the API's image, until it is converted.
	var img api.Image
	testkit.EventuallyMsg(t, 60*time.Second, func() bool {
		r := ada.get(imagePage + "/progress")
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("progress = %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
		}
		if err := json.Unmarshal([]byte(r.body), &img); err != nil || img.ID != imageID {
			t.Fatalf("progress = %s (%v), want the image %s", r.body, err, imageID)
		}
		return img.Status == "converted" || img.Status == "failed"
	}, func() string { return fmt.Sprintf("the conversion never finished: %+v", img) })
	if img.Status != "converted" || len(img.MRENCLAVE) != 64 {
		t.Fatalf("conversion = %+v, want converted with an MRENCLAVE", img)
	}
	page = ada.get(imagePage).want(t, http.StatusOK, `<code id="mrenclave">`+img.MRENCLAVE+`</code>`, `<code id="mrsigner">`+img.MRSIGNER+`</code>`,
		`data-copy="mrenclave"`, img.Digest)
	if strings.Contains(page.body, "data-poll=") {
		t.Fatal("the page of a converted image still polls")
	}
	ada.get(images+"?app="+appID).want(t, http.StatusOK, "Images of hello", imageID)
	ada.get(imagePage).want(t, http.StatusOK, `in its registry: <span class="status-present">present</span>`)

	// A member (not an admin) cannot decide: the tasks page says so.
	bob := newConsoleClient(t, srv)
	bob.signUp("bob@example.com")
	if r := do(t, s.srv, "POST", "/v1/accounts/"+acct+"/members", ada.session(), map[string]string{"email": "bob@example.com", "role": "member"}); r.status != http.StatusCreated {
		t.Fatalf("adding bob = %d %s", r.status, r.body)
	}

	// Both tasks appear: the domain's and, once converted, the image's.
	approve := regexp.MustCompile(`action="(/a/` + acct + `/tasks/[0-9a-f-]+)/approve"`)
	var pending [][]string
	testkit.EventuallyMsg(t, 20*time.Second, func() bool {
		r = ada.get(tasks)
		pending = approve.FindAllStringSubmatch(r.body, -1)
		return len(pending) == 2
	}, func() string { return fmt.Sprintf("the domain and image tasks never appeared:\n%s", r.body) })
	r.want(t, http.StatusOK, "<code>"+domain+"</code>", `href="/a/`+acct+`/images/`+imageID+`"`, "0 / 1", "ada@example.com")
	bobPage := bob.get(tasks).want(t, http.StatusOK, "Only the account's admins", domain)
	if approve.MatchString(bobPage.body) {
		t.Fatal("a member sees Approve buttons")
	}
	bob.post(pending[0][1]+"/approve", url.Values{"status": {"pending"}}).want(t, http.StatusForbidden, `role="alert"`, "could not be approved", domain)

	for _, p := range pending {
		r := ada.post(p[1]+"/approve", url.Values{"status": {"pending"}})
		if r.status != http.StatusSeeOther || r.location != tasks+"?status=pending" {
			t.Fatalf("approving = %d %s, want a redirect to the pending tasks", r.status, r.location)
		}
	}
	ada.get(tasks).want(t, http.StatusOK, "Task approved.", "Nothing to approve.")
	approved := ada.get(tasks+"?status=approved").want(t, http.StatusOK, "1 / 1", "/withdraw\"")
	if n := strings.Count(approved.body, `/withdraw"`); n != 2 {
		t.Fatalf("approved tasks with a Withdraw button = %d, want 2", n)
	}
	// Approving again is the API's 409, on the tasks page.
	ada.post(pending[0][1]+"/approve", url.Values{"status": {"pending"}}).want(t, http.StatusConflict, "could not be approved", "only a pending task")
	ada.get(imagePage).want(t, http.StatusOK, `<span class="status-approved">approved</span>`)

	// Another account sees nothing of this one.
	eve := newConsoleClient(t, srv)
	eve.signUp("eve@example.com")
	eveAcct := eve.createAccount("E")
	for _, path := range []string{imagePage, "/a/" + eveAcct + "/images/" + imageID} {
		if r := eve.get(path); r.status != http.StatusNotFound || strings.Contains(r.body, img.MRENCLAVE) {
			t.Fatalf("another account's GET %s = %d, want 404:\n%s", path, r.status, r.body)
		}
		if r := eve.get(path + "/progress"); r.status != http.StatusNotFound || strings.Contains(r.body, img.MRENCLAVE) {
			t.Fatalf("another account's GET %s/progress = %d %s, want 404", path, r.status, r.body)
		}
	}
	if r := eve.post(imagePage+"/delete", nil); r.status != http.StatusNotFound {
		t.Fatalf("another account deleting the image = %d, want 404", r.status)
	}
	if r := newConsoleClient(t, srv).get(imagePage + "/progress"); r.status != http.StatusUnauthorized {
		t.Fatalf("progress without a session = %d %s, want 401", r.status, r.body)
	}

	// A registry that lost the image: the page says so, and what to do.
	lost, err := name.ParseReference(img.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(lost); err != nil {
		t.Fatal(err)
	}
	ada.get(imagePage).want(t, http.StatusOK, "The converted image is no longer in its registry", "convert the application again")
	var apiImg api.Image
	apiGet(t, s, "/v1/accounts/"+acct+"/images/"+imageID, ada.session(), &apiImg)
	if apiImg.ReferenceStatus != "missing" {
		t.Fatalf("the API's reference_status of a lost image = %q, want missing", apiImg.ReferenceStatus)
	}

	// Deleting needs the CSRF token too; with it, the image goes.
	if r := ada.postRaw(imagePage+"/delete", nil); r.status != http.StatusForbidden {
		t.Fatalf("deleting without the csrf field = %d, want 403", r.status)
	}
	ada.get(imagePage).want(t, http.StatusOK, img.MRENCLAVE)
	if r := ada.post(imagePage+"/delete", nil); r.status != http.StatusSeeOther || r.location != images {
		t.Fatalf("deleting = %d %s", r.status, r.location)
	}
	if r := ada.get(images).want(t, http.StatusOK, "Image deleted."); strings.Contains(r.body, imageID) {
		t.Fatal("the deleted image is still listed")
	}
	ada.get(imagePage).want(t, http.StatusNotFound)
}

// startImageWorker starts a converter that converts, beside the
// stack's, which only serves the API; it shares the stack's KEK. It
// returns the converter's connection.
func startImageWorker(t testing.TB, s *stack) *nats.Conn {
	t.Helper()
	kek, err := pki.NewKEK(bytes.Repeat([]byte{9}, pki.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	// The converter measures the launcher as opaque bytes.
	launcher := []byte("#!/bin/sh\n# not the real launcher\n")
	rt, err := enclave.StandInRuntime("registry.test/gramine-runtime-standin")
	if err != nil {
		t.Fatal(err)
	}
	o := s.st.Options("imageconverter")
	ic, err := imageconverter.Start(context.Background(), imageconverter.Config{Options: o, KEK: kek, GenerateKey: reuseSigningKey, Launcher: launcher, Runtime: rt, JobAckWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ic.Stop)
	return o.NATS
}

// startImageRegistry serves go-containerregistry's in-process registry and
// returns its host:port.
func startImageRegistry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func pushRandomImage(t testing.TB, ref string) {
	t.Helper()
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}
