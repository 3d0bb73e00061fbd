package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/testkit"
)

func TestApplicationRoutes(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	_, member := s.user("member@example.com")
	_, auditor := s.user("auditor@example.com")
	acct := s.account(admin, "A")
	s.addMember(admin, acct, "member@example.com", "member")
	s.addMember(admin, acct, "auditor@example.com", "auditor")
	base := "/v1/accounts/" + acct + "/apps"
	body := map[string]any{
		"name": "hello", "input_image": "registry.example.com/samples/hello:1", "output_image": "registry.example.com/samples/hello-sgx",
		"isvprodid": 1, "env": []map[string]string{{"name": "MODE", "value": "prod"}},
		"certificate": map[string]any{"domain": "hello.cloister.test"},
	}

	if r := do(t, s.srv, "POST", base, auditor, body); r.status != 403 {
		t.Fatalf("auditor creating an app = %d %s, want 403", r.status, r.body)
	}
	r := do(t, s.srv, "POST", base, member, body)
	if r.status != 201 || !strings.Contains(string(r.body), `"issuer":"cloister"`) || !strings.Contains(string(r.body), `"memory_size":268435456`) {
		t.Fatalf("member creating an app = %d %s", r.status, r.body)
	}
	var app struct{ ID string }
	r.decode(t, &app)
	bad := map[string]any{"name": "x", "input_image": "nope", "output_image": "registry.example.com/x"}
	if r := do(t, s.srv, "POST", base, member, bad); r.status != 400 || !strings.Contains(string(r.body), "input_image: ") {
		t.Fatalf("creating with a bad input image = %d %s, want 400 naming input_image", r.status, r.body)
	}
	// What is wrong with a reference is said in the user's terms, never the
	// parser library's.
	for _, c := range []struct{ field, value, says string }{
		{"input_image", "registry.example.com/samples/hello", "has no tag: name one, e.g. registry.example.com/samples/hello:1"},
		{"input_image", "http://registry.example.com/samples/hello:1", "is a URL"},
		{"output_image", "registry.example.com/samples/hello-sgx:1", "names a tag or digest"},
	} {
		b := map[string]any{"name": "x", "input_image": "registry.example.com/x:1", "output_image": "registry.example.com/x"}
		b[c.field] = c.value
		r := do(t, s.srv, "POST", base, member, b)
		if r.status != 400 || !strings.Contains(string(r.body), c.field+": ") || !strings.Contains(string(r.body), c.says) || strings.Contains(string(r.body), "name.") {
			t.Fatalf("creating with %s %q = %d %s, want 400 saying %q", c.field, c.value, r.status, r.body, c.says)
		}
	}
	if r := do(t, s.srv, "POST", base, member, map[string]any{"name": "x", "colour": "red"}); r.status != 400 || !strings.Contains(string(r.body), "colour") {
		t.Fatalf("creating with an unknown field = %d %s, want 400 naming it", r.status, r.body)
	}
	if r := do(t, s.srv, "GET", base+"/hello", auditor, nil); r.status != 200 || !strings.Contains(string(r.body), app.ID) {
		t.Fatalf("auditor getting the app by name = %d %s", r.status, r.body)
	}

	// A merge patch changes what it names and keeps the rest.
	patch := rawBody{data: `{"memory_size": 1073741824, "certificate": {"key_type": "rsa-3072"}, "env": null}`, contentType: "application/merge-patch+json"}
	r = do(t, s.srv, "PATCH", base+"/"+app.ID, member, patch)
	for _, want := range []string{`"memory_size":1073741824`, `"key_type":"rsa-3072"`, `"domain":"hello.cloister.test"`, `"env":[]`, `"isvprodid":1`} {
		if r.status != 200 || !strings.Contains(string(r.body), want) {
			t.Fatalf("patching = %d %s; want %s", r.status, r.body, want)
		}
	}
	if r := do(t, s.srv, "PATCH", base+"/"+app.ID, member, rawBody{data: `{"threads": 0, "bogus": 1}`, contentType: "application/merge-patch+json"}); r.status != 400 {
		t.Fatalf("patching an unknown field = %d %s, want 400", r.status, r.body)
	}
	if r := do(t, s.srv, "PATCH", base+"/"+app.ID, member, rawBody{data: `{"threads": 999}`, contentType: "application/merge-patch+json"}); r.status != 400 || !strings.Contains(string(r.body), "threads: ") {
		t.Fatalf("patching threads to 999 = %d %s, want 400 naming threads", r.status, r.body)
	}
	if r := do(t, s.srv, "GET", base, member, nil); r.status != 200 || strings.Count(string(r.body), `"id":`) != 1 {
		t.Fatalf("listing apps = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "DELETE", base+"/hello", auditor, nil); r.status != 403 {
		t.Fatalf("auditor deleting = %d, want 403", r.status)
	}
	if r := do(t, s.srv, "DELETE", base+"/hello", member, nil); r.status != 204 {
		t.Fatalf("member deleting = %d %s, want 204", r.status, r.body)
	}
	if r := do(t, s.srv, "GET", base+"/"+app.ID, member, nil); r.status != 404 {
		t.Fatalf("getting a deleted app = %d, want 404", r.status)
	}

	// The account's signing key appears once the converter saw AccountCreated.
	testkit.Eventually(t, 60*time.Second, func() bool {
		r := do(t, s.srv, "GET", "/v1/accounts/"+acct+"/signing-key", auditor, nil)
		return r.status == 200 && strings.Contains(string(r.body), "BEGIN PUBLIC KEY")
	}, "no signing key for the account")

	// Who did what is in the audit log.
	r = do(t, s.srv, "GET", "/v1/accounts/"+acct+"/audit", admin, nil)
	for _, want := range []string{`"action":"app.create"`, `"action":"app.update"`, `"action":"app.delete"`, `"email":"member@example.com"`} {
		if !strings.Contains(string(r.body), want) {
			t.Fatalf("audit log lacks %s: %s", want, r.body)
		}
	}
}
