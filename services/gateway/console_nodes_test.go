package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"mime"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/services/gateway/console"
)

// nodesBrowser is a user agent of the console: a cookie jar, redirects
// not followed (so that each 303 is seen), and the CSRF token of the last
// page it read.
type nodesBrowser struct {
	t    *testing.T
	srv  *httptest.Server
	c    *http.Client
	csrf string
}

// nodesReply is a console reply.
type nodesReply struct {
	status int
	header http.Header
	body   string
}

var nodesCSRFField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newNodesBrowser(t *testing.T, srv *httptest.Server) *nodesBrowser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &nodesBrowser{t: t, srv: srv, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *nodesBrowser) send(req *http.Request) nodesReply {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	p := nodesReply{status: resp.StatusCode, header: resp.Header, body: string(data)}
	if p.status >= 500 {
		b.t.Fatalf("%s %s = %d, a server error: %s", req.Method, req.URL.Path, p.status, p.body)
	}
	if m := nodesCSRFField.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	return p
}

func (b *nodesBrowser) get(path string) nodesReply {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.srv.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.send(req)
}

// post sends form with the CSRF token of the last page read.
func (b *nodesBrowser) post(path string, form url.Values) nodesReply {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		form.Set("csrf", b.csrf)
	}
	req, err := http.NewRequest(http.MethodPost, b.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.send(req)
}

// postRedirect posts form and wants a 303 to want.
func (b *nodesBrowser) postRedirect(path string, form url.Values, want string) {
	b.t.Helper()
	p := b.post(path, form)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != want {
		b.t.Fatalf("POST %s = %d to %q, want 303 to %q; body %s", path, p.status, p.header.Get("Location"), want, p.body)
	}
}

// page200 reads path and wants 200 and every one of want in the page.
func (b *nodesBrowser) page200(path string, want ...string) string {
	b.t.Helper()
	p := b.get(path)
	if p.status != http.StatusOK {
		b.t.Fatalf("GET %s = %d, want 200; body %s", path, p.status, p.body)
	}
	for _, w := range want {
		if !strings.Contains(p.body, w) {
			b.t.Fatalf("GET %s does not contain %q:\n%s", path, w, p.body)
		}
	}
	return p.body
}

func (b *nodesBrowser) login(email string) {
	b.t.Helper()
	b.page200("/login")
	b.postRedirect("/login", url.Values{"email": {email}, "password": {"correct horse battery"}, "next": {"/"}}, "/")
}

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
func nodesWantPEMFile(t *testing.T, p nodesReply, filename string) []*x509.Certificate {
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
	_, admin := s.user("admin@example.com")
	_, stranger := s.user("stranger@example.com")
	acct := s.account(admin, "A")
	otherAcct := s.account(stranger, "B")
	s.waitCA(t, admin, acct)
	s.waitCA(t, stranger, otherAcct)
	theirs := s.enrolNode(t, stranger, otherAcct, "their-node")

	r := do(t, s.srv, "POST", "/v1/accounts/"+acct+"/apps", admin, map[string]any{"name": "hello",
		"input_image": "registry.example.com/samples/hello:1", "output_image": "registry.example.com/samples/hello-sgx"})
	var app struct{ ID string }
	r.decode(t, &app)
	if r.status != http.StatusCreated {
		t.Fatalf("creating an app = %d %s", r.status, r.body)
	}
	r = do(t, s.srv, "GET", "/v1/accounts/"+acct+"/ca", admin, nil)
	var ca struct {
		RootSHA256 string `json:"root_sha256"`
	}
	r.decode(t, &ca)

	con, err := console.New(console.Config{API: s.gw})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(con)
	t.Cleanup(web.Close)
	b := newNodesBrowser(t, web)
	b.login("admin@example.com")
	nodes := "/a/" + acct + "/nodes"

	b.page200(nodes, "No nodes yet", "cloister-node-agent --join-token … --server "+web.URL, "No join tokens yet")

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
		t.Fatalf("the token nodesReply shows no secret:\n%s", p.body)
	}
	secret := m[1]
	for _, want := range []string{`data-copy="token-secret"`, "cloister-node-agent --join-token " + secret + " --server " + web.URL, "will not be shown again"} {
		if !strings.Contains(p.body, want) {
			t.Fatalf("the token nodesReply does not contain %q:\n%s", want, p.body)
		}
	}
	if body := b.page200(nodes, "rack-1", "rack=1, zone=eu", "0 / 2", `class="status-live"`); strings.Contains(body, secret) {
		t.Fatal("the nodes nodesReply shows the token's secret again")
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
	if body := b.page200(nodes, `href="`+node+`">node-1</a>`, `class="status-active"`, "1 / 2", "0 running"); strings.Contains(body, "their-node") {
		t.Fatal("the nodes nodesReply lists another account's node")
	}

	// A heartbeat reports an enclave: the node's page shows it, with its
	// application by name.
	imageID, mr := uuid.NewString(), strings.Repeat("ab", 32)
	nodeSrv := s.nodeServer(t)
	c := nodeClient(t, nodeSrv, n.tlsCert())
	if r := nodeDo(t, c, nodeSrv, "POST", "/v1/node/heartbeat", map[string]any{"instances": []map[string]any{{"id": "enclave-1",
		"app_id": app.ID, "image_id": imageID, "mrenclave": mr, "status": "running", "started_at": vectorTime.Add(-time.Minute)}}}); r.status != http.StatusOK {
		t.Fatalf("heartbeat = %d %s", r.status, r.body)
	}
	b.page200(node, "<h1>Node node-1</h1>", "<code>enclave-1</code>", `<a href="/a/`+acct+`/apps/`+app.ID+`">hello</a>`,
		`href="/a/`+acct+`/images/`+imageID+`"`, "<code>"+mr+"</code>", `class="status-running"`, n.Serial, "Deregister node")
	b.page200(nodes, "1 running")

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
	if body := b.page200(certs, ca.RootSHA256, `href="`+certs+`/ca.pem"`, `href="`+certs+`/`+n.Serial+`/chain.pem"`,
		`href="`+node+`">node-1</a>`, `for="reason-`+n.Serial+`"`); strings.Contains(body, secret) || strings.Contains(body, theirs.Serial) {
		t.Fatal("the certificates nodesReply shows a secret or another account's certificate")
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
	b.page200(certs+"/"+n.Serial, n.Serial, "node-1", "BEGIN CERTIFICATE", "Revoke certificate")

	// Revoked, with its reason: gone from the default list, shown under
	// the revoked.
	b.page200(certs)
	b.postRedirect(certs+"/"+n.Serial+"/revoke", url.Values{"reason": {"retired rack"}}, certs+"?show=revoked")
	b.page200(certs+"?show=revoked", "Certificate "+n.Serial+" revoked", `href="`+certs+`/`+n.Serial+`"`, "retired rack")
	if body := b.page200(certs); strings.Contains(body, `href="`+certs+`/`+n.Serial+`"`) {
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
	b.page200(nodes, `action="`+revoke+`"`)
	b.postRedirect(revoke, nil, nodes)
	if body := b.page200(nodes, "Join token rack-1 revoked", `class="status-revoked"`); strings.Contains(body, `action="`+revoke+`"`) {
		t.Fatal("a revoked token still has a Revoke button")
	}

	// Deregistered: the node's page says so and offers nothing more.
	b.page200(node)
	b.postRedirect(node+"/deregister", nil, node)
	if body := b.page200(node, "Node node-1 deregistered", `class="status-deregistered"`); strings.Contains(body, "Deregister node") {
		t.Fatal("a deregistered node still has a Deregister button")
	}
	if p := b.post(nodes+"/"+theirs.ID+"/deregister", nil); p.status != http.StatusNotFound {
		t.Fatalf("deregistering another account's node = %d, want 404", p.status)
	}
}
