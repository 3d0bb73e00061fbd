package gateway_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// An application's secrets, end to end through the API and the node
// listener: set by an admin (not by a member, listed by an auditor,
// never read back), and given only to an enclave whose quote passes for
// an approved image with a fresh nonce and binds the key they are sealed
// to. What the node receives opens with that key alone.
func TestSecretsDelivered(t *testing.T) {
	s := newStack(t, memory(t))
	adminID, admin := s.user("admin@example.com")
	acct := s.account(admin, "A")
	s.waitCA(t, admin, acct)
	base := "/v1/accounts/" + acct
	const domain = "hello.cloister.test"
	app, body := s.approvedHello(t, admin, adminID, acct, domain)
	appPath := base + "/apps/" + app.ID

	// The app takes a secret as a file and one as a variable, and has a
	// volume.
	if r := do(t, s.srv, "PATCH", appPath, admin, map[string]any{"secret_env": []map[string]string{{"name": "DB_PASSWORD", "secret": "db-password"}},
		"volumes": []map[string]string{{"path": "/srv/data", "key_name": "hello-data"}}}); r.status != 200 ||
		!strings.Contains(string(r.body), `"secrets_dir":"/run/cloister/secrets"`) {
		t.Fatalf("PATCH the app's secrets = %d %s", r.status, r.body)
	}
	dbPassword := "hunter2-" + acct
	r := do(t, s.srv, "PUT", appPath+"/secrets/db-password", admin, map[string]any{"value": []byte(dbPassword)})
	if r.status != 200 || bytes.Contains(r.body, []byte(dbPassword)) || bytes.Contains(r.body, []byte(base64.StdEncoding.EncodeToString([]byte(dbPassword)))) ||
		!strings.Contains(string(r.body), `"version":1`) {
		t.Fatalf("PUT a secret = %d %s, want its first version without its value", r.status, r.body)
	}
	if r := do(t, s.srv, "PUT", appPath+"/secrets/api.key", admin, map[string]any{"value": []byte("key-" + acct)}); r.status != 200 {
		t.Fatalf("PUT another = %d %s", r.status, r.body)
	}
	_, member := s.user("member@example.com")
	_, auditor := s.user("auditor@example.com")
	s.addMember(admin, acct, "member@example.com", "member")
	s.addMember(admin, acct, "auditor@example.com", "auditor")
	if r := do(t, s.srv, "PUT", appPath+"/secrets/db-password", member, map[string]any{"value": []byte("x")}); r.status != 403 {
		t.Fatalf("a member setting a secret = %d %s, want 403", r.status, r.body)
	}
	if r := do(t, s.srv, "DELETE", appPath+"/secrets/db-password", member, nil); r.status != 403 {
		t.Fatalf("a member deleting a secret = %d %s, want 403", r.status, r.body)
	}
	if r := do(t, s.srv, "GET", appPath+"/secrets", auditor, nil); r.status != 200 || !strings.Contains(string(r.body), `"name":"db-password"`) ||
		bytes.Contains(r.body, []byte("hunter2")) {
		t.Fatalf("an auditor listing secrets = %d %s", r.status, r.body)
	}
	for _, bad := range []struct{ path, body, want string }{
		{appPath + "/secrets/a..b%2Fc", `{"value":"eA=="}`, "name"},
		{appPath + "/secrets/x", `{"value":"not base64!"}`, ""},
		{appPath + "/secrets/x", `{"value":""}`, "empty"},
		{appPath + "/secrets/x", `{"value":"eA==","extra":1}`, "extra"},
	} {
		r := do(t, s.srv, "PUT", bad.path, admin, rawBody{data: bad.body})
		if r.status != 400 || !strings.Contains(r.problem(t).Detail, bad.want) {
			t.Errorf("PUT %s %s = %d %s, want 400 saying %q", bad.path, bad.body, r.status, r.body, bad.want)
		}
	}
	other := s.account(admin, "B")
	if r := do(t, s.srv, "GET", "/v1/accounts/"+other+"/apps/"+app.ID+"/secrets", admin, nil); r.status != 404 {
		t.Fatalf("the app's secrets through another account = %d %s, want 404", r.status, r.body)
	}

	srv := s.nodeServer(t)
	n := s.enrolNode(t, admin, acct, "node-1")
	c := nodeClient(t, srv, n.tlsCert())
	qe, err := s.att.SimulatedQE(acct)
	if err != nil {
		t.Fatal(err)
	}
	nonce := func() []byte {
		var out struct{ Nonce []byte }
		nodeDo(t, c, srv, "POST", "/v1/node/nonce", nil).decode(t, &out)
		return out.Nonce
	}
	// request is an enclave of measurement rb binding its certificate key
	// and bound (the recipient key in REPORTDATA), sending send.
	request := func(rb sgx.ReportBody, n []byte, bound, send []byte) map[string]any {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		binding := enclave.KeyBinding(sha256.Sum256(spki), bound)
		copy(rb.ReportData[:32], binding[:])
		copy(rb.ReportData[32:], n)
		quote, err := qe.Quote(rb)
		if err != nil {
			t.Fatal(err)
		}
		req := map[string]any{"app_id": app.ID, "csr": string(csrOf(t, key, domain)), "quote": quote}
		if send != nil {
			req["recipient_key"] = send
		}
		return req
	}
	priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
	pub := priv.PublicKey().Bytes()
	var issued struct {
		Certificate struct{ Serial string }
		Secrets     []byte
	}
	var used []byte
	testkit.Eventually(t, 10*time.Second, func() bool {
		used = nonce()
		r = nodeDo(t, c, srv, "POST", "/v1/node/certificate", request(body, used, pub, pub))
		return r.status == http.StatusCreated
	}, "no certificate after the approvals: %s", latest{&r})
	r.decode(t, &issued)
	if len(issued.Secrets) == 0 || bytes.Contains(r.body, []byte("hunter2")) {
		t.Fatalf("issued = %s, want sealed secrets", r.body)
	}
	b, err := enclave.OpenBundle(priv, enclave.BundleInfo(app.ID, issued.Certificate.Serial), issued.Secrets)
	if err != nil || string(b.Secrets["db-password"]) != dbPassword || string(b.Secrets["api.key"]) != "key-"+acct || len(b.VolumeKeys["hello-data"]) != 16 {
		t.Fatalf("the bundle = %v, %v", b, err)
	}
	// The volume's key is made once: the next enclave gets the same.
	var again struct{ Secrets []byte }
	priv2, _ := ecdh.X25519().GenerateKey(rand.Reader)
	r = nodeDo(t, c, srv, "POST", "/v1/node/certificate", request(body, nonce(), priv2.PublicKey().Bytes(), priv2.PublicKey().Bytes()))
	r.decode(t, &again)
	var serial2 struct{ Certificate struct{ Serial string } }
	r.decode(t, &serial2)
	b2, err := enclave.OpenBundle(priv2, enclave.BundleInfo(app.ID, serial2.Certificate.Serial), again.Secrets)
	if err != nil || !bytes.Equal(b2.VolumeKeys["hello-data"], b.VolumeKeys["hello-data"]) {
		t.Fatalf("a second enclave's volume key = %x, %v; want %x", b2.VolumeKeys["hello-data"], err, b.VolumeKeys["hello-data"])
	}

	// An admin exports the volume's key for a backup (audited); a member
	// may not; a key the app has no volume for is not found.
	var exported struct{ Key []byte }
	exportPath := appPath + "/volume-keys/hello-data/export"
	r = do(t, s.srv, "POST", exportPath, admin, nil)
	r.decode(t, &exported)
	if r.status != 200 || !bytes.Equal(exported.Key, b.VolumeKeys["hello-data"]) {
		t.Fatalf("export = %d %s, want the key enclaves get", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", exportPath, member, nil); r.status != 403 {
		t.Fatalf("a member exporting = %d %s, want 403", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", appPath+"/volume-keys/other/export", admin, nil); r.status != 404 {
		t.Fatalf("exporting a key of no volume = %d %s, want 404", r.status, r.body)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		r := do(t, s.srv, "GET", base+"/audit", admin, nil)
		return strings.Contains(string(r.body), `"action":"volume.key.export"`) && strings.Contains(string(r.body), `"action":"secret.set"`)
	}, "the export and the secrets set are not in the audit log")
	if r := do(t, s.srv, "GET", base+"/audit", admin, nil); bytes.Contains(r.body, []byte("hunter2")) ||
		bytes.Contains(r.body, []byte(base64.StdEncoding.EncodeToString(exported.Key))) {
		t.Fatalf("the audit log holds a secret or a key: %s", r.body)
	}

	// No secrets for: an image that is not approved, a nonce used
	// already, a key the quote does not bind.
	unapproved := body
	unapproved.MRENCLAVE[1] ^= 1
	for name, req := range map[string]map[string]any{
		"an unapproved image":    request(unapproved, nonce(), pub, pub),
		"a replayed nonce":       request(body, used, pub, pub),
		"a key REPORTDATA lacks": request(body, nonce(), nil, pub),
		"another key than bound": request(body, nonce(), pub, bytes.Repeat([]byte{7}, 32)),
		"a malformed key":        request(body, nonce(), pub, []byte{1, 2, 3}),
	} {
		r := nodeDo(t, c, srv, "POST", "/v1/node/certificate", req)
		if r.status/100 != 4 || bytes.Contains(r.body, []byte(`"secrets"`)) {
			t.Errorf("%s: %d %s, want a refusal without secrets", name, r.status, r.body)
		}
	}

	// A deleted secret is not given to the next enclave.
	if r := do(t, s.srv, "DELETE", appPath+"/secrets/api.key", admin, nil); r.status != 204 {
		t.Fatalf("DELETE a secret = %d %s", r.status, r.body)
	}
	r = nodeDo(t, c, srv, "POST", "/v1/node/certificate", request(body, nonce(), pub, pub))
	r.decode(t, &issued)
	if b, err := enclave.OpenBundle(priv, enclave.BundleInfo(app.ID, issued.Certificate.Serial), issued.Secrets); err != nil || b.Secrets["api.key"] != nil ||
		b.Secrets["db-password"] == nil {
		t.Fatalf("after the delete the bundle = %v, %v", b, err)
	}
}
