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

	// A certificate issued more than ten minutes ago is no licence to the
	// secrets: its enclave attests again.
	s.converterLater.Store(int64(11 * time.Minute))
	r = nodeDo(t, c, srv, "POST", "/v1/node/certificate", request(body, nonce(), pub, pub))
	if r.status != 403 || !strings.Contains(r.problem(t).Detail, "attest again") {
		t.Fatalf("secrets for a certificate issued 11 minutes before = %d %s, want 403", r.status, r.body)
	}
	s.converterLater.Store(0)

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

// Under the account's secrets_need_approval, a new value of a secret
// waits for a task of kind secret: enclaves started meanwhile are given
// the version before it (or nothing); approved, it is delivered; denied,
// it is dropped. The setting cannot be turned off under a quorum.
func TestSecretChangesNeedApproval(t *testing.T) {
	s := newStack(t, memory(t))
	adminID, admin := s.user("admin@example.com")
	acct := s.account(admin, "A")
	s.waitCA(t, admin, acct)
	base := "/v1/accounts/" + acct
	const domain = "hello.cloister.test"
	app, body := s.approvedHello(t, admin, adminID, acct, domain)
	appPath := base + "/apps/" + app.ID

	if r := do(t, s.srv, "PUT", appPath+"/secrets/db-password", admin, map[string]any{"value": []byte("v1")}); r.status != 200 {
		t.Fatalf("PUT v1 = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "PATCH", base, admin, map[string]any{"secrets_need_approval": true}); r.status != 200 ||
		!strings.Contains(string(r.body), `"secrets_need_approval":true`) {
		t.Fatalf("turning secrets_need_approval on = %d %s", r.status, r.body)
	}
	// The image converter learns the setting from the account's event:
	// a probe secret's new values turn pending.
	var r response
	testkit.Eventually(t, 10*time.Second, func() bool {
		r = do(t, s.srv, "PUT", appPath+"/secrets/probe", admin, map[string]any{"value": []byte("x")})
		return r.status == 200 && strings.Contains(string(r.body), `"pending":true`)
	}, "a new value was not pending after secrets_need_approval was turned on: %s", latest{&r})
	r = do(t, s.srv, "PUT", appPath+"/secrets/db-password", admin, map[string]any{"value": []byte("v2")})
	var set struct {
		Versions []struct {
			Version uint32
			Pending bool
		}
	}
	r.decode(t, &set)
	pendingVersion := set.Versions[len(set.Versions)-1].Version

	deliver := s.secretsEnclave(t, admin, acct, app.ID, domain, body)
	if b := deliver(); string(b.Secrets["db-password"]) != string(latestApproved(t, set.Versions, "v1")) {
		t.Fatalf("while v%d waits, the enclave got %q, want the approved value v1", pendingVersion, b.Secrets["db-password"])
	}

	task := s.secretTask(t, admin, acct, "db-password", pendingVersion)
	if r := do(t, s.srv, "POST", base+"/tasks/"+task+"/approve", admin, nil); r.status != 200 {
		t.Fatalf("approving the secret task = %d %s", r.status, r.body)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return string(deliver().Secrets["db-password"]) == "v2" },
		"the approved value never reached an enclave")

	// A denied value is dropped: the approved one stays.
	if r := do(t, s.srv, "PUT", appPath+"/secrets/db-password", admin, map[string]any{"value": []byte("v3")}); r.status != 200 {
		t.Fatalf("PUT v3 = %d %s", r.status, r.body)
	}
	denied := s.secretTask(t, admin, acct, "db-password", pendingVersion+1)
	if r := do(t, s.srv, "POST", base+"/tasks/"+denied+"/deny", admin, nil); r.status != 200 {
		t.Fatalf("denying the secret task = %d %s", r.status, r.body)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		var l struct {
			Items []struct {
				Name     string
				Versions []struct{ Pending bool }
			}
		}
		do(t, s.srv, "GET", appPath+"/secrets", admin, nil).decode(t, &l)
		for _, sec := range l.Items {
			if sec.Name == "db-password" {
				return !sec.Versions[len(sec.Versions)-1].Pending
			}
		}
		return false
	}, "the denied version is still listed")
	if got := string(deliver().Secrets["db-password"]); got != "v2" {
		t.Fatalf("after the denial the enclave got %q, want v2", got)
	}

	// Set anew after a delete, its numbers start again, and each version
	// is a task of its own: version 2 is not the approved one of before.
	if r := do(t, s.srv, "DELETE", appPath+"/secrets/db-password", admin, nil); r.status != 204 {
		t.Fatalf("DELETE = %d %s", r.status, r.body)
	}
	for _, v := range []string{"w1", "w2"} {
		if r := do(t, s.srv, "PUT", appPath+"/secrets/db-password", admin, map[string]any{"value": []byte(v)}); r.status != 200 {
			t.Fatalf("PUT %s = %d %s", v, r.status, r.body)
		}
	}
	again := s.secretTask(t, admin, acct, "db-password", pendingVersion)
	if r := do(t, s.srv, "POST", base+"/tasks/"+again+"/approve", admin, nil); r.status != 200 {
		t.Fatalf("approving the new version's task = %d %s", r.status, r.body)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return string(deliver().Secrets["db-password"]) == "w2" },
		"the new secret's approved version never reached an enclave")

	// Under a quorum, one admin cannot turn the setting off.
	s.user("other@example.com")
	s.addMember(admin, acct, "other@example.com", "admin")
	testkit.Eventually(t, 10*time.Second, func() bool {
		r := do(t, s.srv, "PATCH", base, admin, map[string]any{"approvals_required": 1})
		return r.status == 200 || r.status == 202
	}, "the quorum could not be raised")
	testkit.Eventually(t, 10*time.Second, func() bool {
		r := do(t, s.srv, "GET", base, admin, nil)
		return strings.Contains(string(r.body), `"approvals_required":1`)
	}, "the quorum never became 1")
	if r := do(t, s.srv, "PATCH", base, admin, map[string]any{"secrets_need_approval": false}); r.status != 409 ||
		!strings.Contains(r.problem(t).Detail, "approvals_required") {
		t.Fatalf("turning secrets_need_approval off under a quorum = %d %s, want 409", r.status, r.body)
	}
}

// latestApproved is want, once versions shows an approved version before
// the pending one: a guard that the test set up what it means to.
func latestApproved(t *testing.T, versions []struct {
	Version uint32
	Pending bool
}, want string) []byte {
	t.Helper()
	if len(versions) < 2 || versions[0].Pending || !versions[len(versions)-1].Pending {
		t.Fatalf("versions = %+v, want an approved one then a pending one", versions)
	}
	return []byte(want)
}

// secretTask waits for the pending secret task of a secret's version and
// returns its id.
func (s *stack) secretTask(t *testing.T, token, acct, name string, version uint32) string {
	t.Helper()
	var id string
	testkit.Eventually(t, 10*time.Second, func() bool {
		var tasks struct {
			Items []struct {
				ID, Kind string
				Secret   *struct {
					Name    string
					Version uint32
				}
			}
		}
		do(t, s.srv, "GET", "/v1/accounts/"+acct+"/tasks?status=pending", token, nil).decode(t, &tasks)
		for _, tk := range tasks.Items {
			if tk.Kind == "secret" && tk.Secret != nil && tk.Secret.Name == name && tk.Secret.Version == version {
				id = tk.ID
				return true
			}
		}
		return false
	}, "no pending secret task for %s version %d", name, version)
	return id
}

// secretsEnclave enrols a node in the account and returns what an enclave
// of the approved image body, started now, is given: each call attests
// with a fresh nonce and recipient key and opens the bundle.
func (s *stack) secretsEnclave(t *testing.T, token, acct, appID, domain string, body sgx.ReportBody) func() enclave.Bundle {
	srv := s.nodeServer(t)
	n := s.enrolNode(t, token, acct, "node-"+appID[:8])
	c := nodeClient(t, srv, n.tlsCert())
	qe, err := s.att.SimulatedQE(acct)
	if err != nil {
		t.Fatal(err)
	}
	return func() enclave.Bundle {
		t.Helper()
		var nonce struct{ Nonce []byte }
		nodeDo(t, c, srv, "POST", "/v1/node/nonce", nil).decode(t, &nonce)
		priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		binding := enclave.KeyBinding(sha256.Sum256(spki), priv.PublicKey().Bytes())
		rb := body
		copy(rb.ReportData[:32], binding[:])
		copy(rb.ReportData[32:], nonce.Nonce)
		quote, err := qe.Quote(rb)
		if err != nil {
			t.Fatal(err)
		}
		var issued struct {
			Certificate struct{ Serial string }
			Secrets     []byte
		}
		var r response
		testkit.Eventually(t, 10*time.Second, func() bool {
			r = nodeDo(t, c, srv, "POST", "/v1/node/certificate", map[string]any{"app_id": appID, "csr": string(csrOf(t, key, domain)),
				"quote": quote, "recipient_key": priv.PublicKey().Bytes()})
			return r.status == 201
		}, "no certificate: %s", latest{&r})
		r.decode(t, &issued)
		if len(issued.Secrets) == 0 {
			return enclave.Bundle{}
		}
		b, err := enclave.OpenBundle(priv, enclave.BundleInfo(appID, issued.Certificate.Serial), issued.Secrets)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}
