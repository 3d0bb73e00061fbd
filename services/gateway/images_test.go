package gateway_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/testkit"
)

// TestImageAndRegistryRoutes: the routes of images and registry logins,
// by role; the suite's converter has no launcher, so images stay pending
// (conversions are tested with the converter).
func TestImageAndRegistryRoutes(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	_, member := s.user("member@example.com")
	_, auditor := s.user("auditor@example.com")
	acct := s.account(admin, "A")
	s.addMember(admin, acct, "member@example.com", "member")
	s.addMember(admin, acct, "auditor@example.com", "auditor")
	base := "/v1/accounts/" + acct

	// Registry logins: stored, listed without the password, deleted.
	reg := base + "/registries/registry.example.com:5000"
	if r := do(t, s.srv, "PUT", reg, auditor, map[string]string{"username": "bot", "password": "s3cret-pw"}); r.status != 403 {
		t.Fatalf("auditor storing a login = %d, want 403", r.status)
	}
	if r := do(t, s.srv, "PUT", reg, member, map[string]string{"username": "bot", "password": "s3cret-pw"}); r.status != 200 || strings.Contains(string(r.body), "s3cret") {
		t.Fatalf("storing a login = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "PUT", base+"/registries/Not A Host", member, map[string]string{"username": "bot", "password": "x"}); r.status != 400 || !strings.Contains(string(r.body), "registry: ") {
		t.Fatalf("storing a login for a bad host = %d %s, want 400 naming registry", r.status, r.body)
	}
	r := do(t, s.srv, "GET", base+"/registries", auditor, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"registry":"registry.example.com:5000"`) || strings.Contains(string(r.body), "s3cret") {
		t.Fatalf("listing logins = %d %s", r.status, r.body)
	}

	// Images.
	app := map[string]any{"name": "hello", "input_image": "registry.example.com:5000/samples/hello:1", "output_image": "registry.example.com:5000/samples/hello-sgx"}
	if r := do(t, s.srv, "POST", base+"/apps", member, app); r.status != 201 {
		t.Fatalf("creating the app = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", base+"/images", auditor, map[string]string{"app": "hello", "tag": "1"}); r.status != 403 {
		t.Fatalf("auditor converting = %d, want 403", r.status)
	}
	if r := do(t, s.srv, "POST", base+"/images", member, map[string]string{"app": "hello", "tag": "bad tag"}); r.status != 400 || !strings.Contains(string(r.body), "tag: ") {
		t.Fatalf("converting with a bad tag = %d %s, want 400 naming tag", r.status, r.body)
	}
	var img struct{ ID, Status, Output string }
	testkit.EventuallyMsg(t, 20*time.Second, func() bool { // the signing key comes with AccountCreated
		r = do(t, s.srv, "POST", base+"/images", member, map[string]string{"app": "hello", "tag": "1"})
		return r.status == 202
	}, func() string { return fmt.Sprintf("converting never accepted: %d %s", r.status, r.body) })
	r.decode(t, &img)
	if img.Status != "pending" || img.Output != "registry.example.com:5000/samples/hello-sgx:1" {
		t.Fatalf("converting = %s", r.body)
	}
	if r := do(t, s.srv, "POST", base+"/images", member, map[string]string{"app": "hello", "tag": "1"}); r.status != 409 {
		t.Fatalf("converting the same tag again = %d %s, want 409", r.status, r.body)
	}
	if r := do(t, s.srv, "GET", base+"/images?app=hello", auditor, nil); r.status != 200 || !strings.Contains(string(r.body), img.ID) {
		t.Fatalf("listing images = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "GET", base+"/images/"+img.ID, auditor, nil); r.status != 200 {
		t.Fatalf("getting the image = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "DELETE", base+"/images/"+img.ID, member, nil); r.status != 204 {
		t.Fatalf("deleting the image = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "DELETE", reg, member, nil); r.status != 204 {
		t.Fatalf("deleting the login = %d %s", r.status, r.body)
	}
	r = do(t, s.srv, "GET", "/v1/accounts/"+acct+"/audit", admin, nil)
	for _, want := range []string{`"action":"registry.put"`, `"action":"image.convert"`, `"action":"image.delete"`, `"action":"registry.delete"`} {
		if !strings.Contains(string(r.body), want) {
			t.Fatalf("audit log lacks %s", want)
		}
	}
	if strings.Contains(string(r.body), "s3cret") {
		t.Fatal("the audit log holds a registry password")
	}
}
