package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// nodesPEMCerts parses every certificate of a PEM file.
func nodesPEMCerts(t *testing.T, data string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for rest := []byte(data); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			if len(strings.TrimSpace(string(rest))) > 0 {
				t.Fatalf("trailing data after the PEM blocks: %q", rest)
			}
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// nodesWantPEMFile checks p is a PEM attachment named filename and returns its
// certificates.
func nodesWantPEMFile(t *testing.T, p consolePage, filename string) []*x509.Certificate {
	t.Helper()
	if p.status != http.StatusOK || p.header.Get("Content-Type") != "application/x-pem-file" {
		t.Fatalf("download = %d %s, want 200 application/x-pem-file; body %s", p.status, p.header.Get("Content-Type"), p.body)
	}
	disp, params, err := mime.ParseMediaType(p.header.Get("Content-Disposition"))
	if err != nil || disp != "attachment" || params["filename"] != filename {
		t.Fatalf("Content-Disposition = %q, want an attachment named %s", p.header.Get("Content-Disposition"), filename)
	}
	return nodesPEMCerts(t, p.body)
}

// TestConsoleNodes: through the console, a user creates a join token and
// sees its secret once, a node enrolled with it appears with the enclave
// its heartbeat reports, its certificate's chain downloads and verifies,
// the certificate and the token are revoked and the node deregistered;
// another account's node is a 404.
func TestConsoleNodes(t *testing.T) {
	s := newStack(t, memory(t))
	adminID, admin := s.user("admin@example.com")
	_, stranger := s.user("stranger@example.com")
	acct := s.account(admin, "A")
	otherAcct := s.account(stranger, "B")
	s.waitCA(t, admin, acct)
	s.waitCA(t, stranger, otherAcct)
	theirs := s.enrolNode(t, stranger, otherAcct, "their-node")

	r := do(t, s.srv, "GET", "/v1/accounts/"+acct+"/ca", admin, nil)
	var ca struct {
		RootSHA256 string `json:"root_sha256"`
	}
	r.decode(t, &ca)

	web := consoleServer(t, s.gw)
	b := newConsoleClient(t, web)
	b.login("admin@example.com")
	nodes := "/a/" + acct + "/nodes"

	b.get(nodes).want(t, http.StatusOK, "No nodes yet", "cloister-node-agent --join-token … --server "+web.URL, "No join tokens yet")

	// A form the console cannot read, or without its CSRF token, is
	// refused and changes nothing.
	if p := b.post("/a/"+acct+"/join-tokens", url.Values{"name": {"rack-1"}, "ttl": {"soon"}}); p.status != http.StatusBadRequest ||
		!strings.Contains(p.body, "time to live") || !strings.Contains(p.body, `value="rack-1"`) {
		t.Fatalf("creating a token with a bad TTL = %d, want 400 saying so with the form kept; body %s", p.status, p.body)
	}
	if p := b.post("/a/"+acct+"/join-tokens", url.Values{"name": {"rack-1"}, "csrf": {"forged"}}); p.status != http.StatusForbidden {
		t.Fatalf("creating a token without the CSRF token = %d, want 403", p.status)
	}

	// The secret shows once, on the answer to the creation.
	p := b.post("/a/"+acct+"/join-tokens", url.Values{"name": {"rack-1"}, "ttl": {"24h"}, "max_uses": {"2"},
		"labels": {"zone=eu\r\nrack = 1\r\n"}})
	if p.status != http.StatusOK || p.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("creating a token = %d (Cache-Control %q), want 200 no-store; body %s", p.status, p.header.Get("Cache-Control"), p.body)
	}
	m := regexp.MustCompile(`<code id="token-secret"[^>]*>(cjt_[A-Za-z0-9_-]+)</code>`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("the token page shows no secret:\n%s", p.body)
	}
	secret := m[1]
	for _, want := range []string{`data-copy="token-secret"`, "cloister-node-agent --join-token " + secret + " --server " + web.URL, "will not be shown again"} {
		if !strings.Contains(p.body, want) {
			t.Fatalf("the token page does not contain %q:\n%s", want, p.body)
		}
	}
	if p := b.get(nodes).want(t, http.StatusOK, "rack-1", "rack=1, zone=eu", "0 / 2", `class="status-live"`); strings.Contains(p.body, secret) {
		t.Fatal("the nodes page shows the token's secret again")
	}

	// A node enrols with it through the API, as the agent does.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r = do(t, s.srv, "POST", "/v1/agent/enroll", "", map[string]any{"join_token": secret, "node_name": "node-1", "csr": string(csrOf(t, key))})
	var enrolled struct {
		Node struct {
			ID                string
			CertificateSerial string `json:"certificate_serial"`
		}
		ChainPEM string `json:"chain_pem"`
	}
	r.decode(t, &enrolled)
	if r.status != http.StatusCreated {
		t.Fatalf("enrolling with the console's token = %d %s", r.status, r.body)
	}
	n := enrolledNode{ID: enrolled.Node.ID, Serial: enrolled.Node.CertificateSerial, Key: key, Chain: pemChain(t, enrolled.ChainPEM)}
	node := nodes + "/" + n.ID
	if p := b.get(nodes).want(t, http.StatusOK, `href="`+node+`">node-1</a>`, `class="status-active"`, "1 / 2", "0 running"); strings.Contains(p.body, "their-node") {
		t.Fatal("the nodes page lists another account's node")
	}

	// A heartbeat reports an enclave: the node's page shows it, with its
	// application by name.
	nodeSrv := s.nodeServer(t)
	c := nodeClient(t, nodeSrv, n.tlsCert())
	appID, mr, serial := s.enclaveOn(t, admin, adminID, acct, "hello.cloister.test", c, nodeSrv)
	r = nodeDo(t, c, nodeSrv, "POST", "/v1/node/heartbeat", map[string]any{"instances": []map[string]any{{"id": "enclave-1",
		"certificate_serial": serial, "status": "running", "started_at": vectorTime.Add(-time.Minute)}}})
	var hb struct {
		Instances []struct {
			ImageID string `json:"image_id"`
		}
	}
	r.decode(t, &hb)
	if r.status != http.StatusOK || len(hb.Instances) != 1 {
		t.Fatalf("heartbeat = %d %s", r.status, r.body)
	}
	b.get(node).want(t, http.StatusOK, "<h1>Node node-1</h1>", "<code>enclave-1</code>", `<a href="/a/`+acct+`/apps/`+appID+`">hello</a>`,
		`href="/a/`+acct+`/images/`+hb.Instances[0].ImageID+`"`, "<code>"+mr+"</code>", `class="status-running"`, n.Serial, "Deregister node")
	b.get(nodes).want(t, http.StatusOK, "1 running")
	// Where users look for it, the Applications tab: the application runs,
	// on that node; its page lists the instance.
	b.get("/a/"+acct+"/apps").want(t, http.StatusOK, `<span class="status-running">1 running</span>`, `on <a href="`+node+`">node-1</a>`)
	b.get("/a/"+acct+"/apps/"+appID).want(t, http.StatusOK, "Running instances", "<code>enclave-1</code>", `<a href="`+node+`">node-1</a>`,
		`href="/a/`+acct+`/images/`+hb.Instances[0].ImageID+`"`)

	// Another account's node is not found, by either address.
	for _, path := range []string{"/a/" + otherAcct + "/nodes/" + theirs.ID, nodes + "/" + theirs.ID,
		"/a/" + acct + "/certificates/" + theirs.Serial + "/chain.pem", "/a/" + otherAcct + "/certificates/ca.pem"} {
		if p := b.get(path); p.status != http.StatusNotFound {
			t.Fatalf("GET %s = %d, want 404; body %s", path, p.status, p.body)
		}
	}

	// The node's certificate is listed under the account's CA; its chain
	// downloads and verifies up to the root the page shows.
	certs := "/a/" + acct + "/certificates"
	if p := b.get(certs).want(t, http.StatusOK, ca.RootSHA256, `href="`+certs+`/ca.pem"`, `href="`+certs+`/`+n.Serial+`/chain.pem"`,
		`href="`+node+`">node-1</a>`, `for="reason-`+n.Serial+`"`); strings.Contains(p.body, secret) || strings.Contains(p.body, theirs.Serial) {
		t.Fatal("the certificates page shows a secret or another account's certificate")
	}
	chain := nodesWantPEMFile(t, b.get(certs+"/"+n.Serial+"/chain.pem"), n.Serial+".pem")
	if len(chain) != 3 || chain[0].SerialNumber.Text(16) != n.Serial || string(chain[0].Raw) != string(n.Chain[0]) {
		t.Fatalf("the chain of %s holds %d certificates, want it first then the issuing CA and the root", n.Serial, len(chain))
	}
	if sum := sha256.Sum256(chain[2].Raw); hex.EncodeToString(sum[:]) != ca.RootSHA256 {
		t.Fatalf("the chain's root has SHA-256 %x, want %s", sum, ca.RootSHA256)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(chain[2])
	inter.AddCert(chain[1])
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: vectorTime,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("verifying the downloaded chain: %v", err)
	}
	if caChain := nodesWantPEMFile(t, b.get(certs+"/ca.pem"), "ca.pem"); len(caChain) != 2 || !caChain[1].Equal(chain[2]) || !caChain[0].Equal(chain[1]) {
		t.Fatalf("ca.pem holds %d certificates, want the issuing CA then the root", len(caChain))
	}
	b.get(certs+"/"+n.Serial).want(t, http.StatusOK, n.Serial, "node-1", "BEGIN CERTIFICATE", "Revoke certificate")

	// Revoked, with its reason: gone from the default list, shown under
	// the revoked.
	b.get(certs).want(t, http.StatusOK)
	b.post(certs+"/"+n.Serial+"/revoke", url.Values{"reason": {"retired rack"}}).wantRedirect(t, certs+"?show=revoked")
	b.get(certs+"?show=revoked").want(t, http.StatusOK, "Certificate "+n.Serial+" revoked", `href="`+certs+`/`+n.Serial+`"`, "retired rack")
	if p := b.get(certs).want(t, http.StatusOK); strings.Contains(p.body, `href="`+certs+`/`+n.Serial+`"`) {
		t.Fatal("the list of certificates not revoked still shows the revoked one")
	}

	// The token, revoked from the console, is listed revoked with no
	// button.
	r = do(t, s.srv, "GET", "/v1/accounts/"+acct+"/join-tokens", admin, nil)
	var tokens struct{ Items []struct{ ID, Name string } }
	r.decode(t, &tokens)
	if len(tokens.Items) != 1 {
		t.Fatalf("join tokens = %s, want the console's one", r.body)
	}
	revoke := "/a/" + acct + "/join-tokens/" + tokens.Items[0].ID + "/revoke"
	b.get(nodes).want(t, http.StatusOK, `action="`+revoke+`"`)
	b.post(revoke, nil).wantRedirect(t, nodes)
	if p := b.get(nodes).want(t, http.StatusOK, "Join token rack-1 revoked", `class="status-revoked"`); strings.Contains(p.body, `action="`+revoke+`"`) {
		t.Fatal("a revoked token still has a Revoke button")
	}

	// The form carries an idempotency key: sent twice (a double click, a
	// reload of the answer), it makes one token.
	fk := regexp.MustCompile(`name="idempotency_key" value="([A-Za-z0-9_-]{22})"`).FindStringSubmatch(b.get(nodes).body)
	if fk == nil {
		t.Fatal("the join token form carries no idempotency key")
	}
	for range 2 {
		b.post("/a/"+acct+"/join-tokens", url.Values{"name": {"rack-2"}, "idempotency_key": {fk[1]}}).want(t, http.StatusOK, "Join token rack-2", "cjt_")
	}
	r = do(t, s.srv, "GET", "/v1/accounts/"+acct+"/join-tokens", admin, nil)
	r.decode(t, &tokens)
	if len(tokens.Items) != 2 {
		t.Fatalf("join tokens after one form sent twice = %s, want rack-1 and one rack-2", r.body)
	}
	if p := b.post("/a/"+acct+"/join-tokens", url.Values{"name": {"rack-3"}, "idempotency_key": {fk[1]}}); p.status != http.StatusBadRequest ||
		!strings.Contains(p.body, "Idempotency-Key was used for another request") || !strings.Contains(p.body, `value="rack-3"`) ||
		strings.Contains(p.body, fk[1]) {
		t.Fatalf("another form with that key = %d, want 400 saying so, with the form kept and a new key; body %s", p.status, p.body)
	}

	// Deregistered: the node's page says so and offers nothing more.
	b.get(node).want(t, http.StatusOK)
	b.post(node+"/deregister", nil).wantRedirect(t, node)
	if p := b.get(node).want(t, http.StatusOK, "Node node-1 deregistered", `class="status-deregistered"`); strings.Contains(p.body, "Deregister node") {
		t.Fatal("a deregistered node still has a Deregister button")
	}
	if p := b.post(nodes+"/"+theirs.ID+"/deregister", nil); p.status != http.StatusNotFound {
		t.Fatalf("deregistering another account's node = %d, want 404", p.status)
	}
}
