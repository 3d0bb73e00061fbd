package gateway_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// nodeServer serves the gateway's node-facing API over TLS as `cloister
// server` does: NodeHandler with NodeTLSConfig and a server certificate of
// its own.
func (s *stack) nodeServer(t testing.TB) *httptest.Server {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway"}}, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s.gw.NodeHandler())
	srv.TLS = s.gw.NodeTLSConfig(tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key})
	// Refused handshakes are expected here; keep them out of the output.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// enrolledNode is a node enrolled through the API with its own key.
type enrolledNode struct {
	ID, Serial string
	Key        *ecdsa.PrivateKey
	// Chain is the leaf, the issuing CA and the root, DER.
	Chain [][]byte
}

func (n enrolledNode) leaf(t *testing.T) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(n.Chain[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (n enrolledNode) tlsCert() *tls.Certificate {
	return &tls.Certificate{Certificate: n.Chain, PrivateKey: n.Key}
}

func csrOf(t testing.TB, key crypto.Signer, dnsNames ...string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: dnsNames}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func pemChain(t testing.TB, chain string) [][]byte {
	t.Helper()
	var out [][]byte
	for rest := []byte(chain); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		out = append(out, b.Bytes)
	}
	if len(out) == 0 {
		t.Fatalf("no certificate in %q", chain)
	}
	return out
}

// enrolNode creates a join token as token and enrols a node with it
// through POST /v1/agent/enroll, as a node agent does.
func (s *stack) enrolNode(t *testing.T, token, accountID, name string) enrolledNode {
	t.Helper()
	return s.enrolNodeWith(t, token, accountID, name, nil)
}

// enrolNodeWith is enrolNode presenting evidence(key) when evidence is
// not nil.
func (s *stack) enrolNodeWith(t *testing.T, token, accountID, name string, evidence func(key *ecdsa.PrivateKey, nonce []byte) []byte) enrolledNode {
	t.Helper()
	r := do(t, s.srv, "POST", "/v1/accounts/"+accountID+"/join-tokens", token, map[string]any{"name": name})
	var tok struct{ Secret string }
	r.decode(t, &tok)
	if r.status != 201 {
		t.Fatalf("creating a join token = %d %s", r.status, r.body)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	body := map[string]any{"join_token": tok.Secret, "node_name": name, "csr": string(csrOf(t, key))}
	if evidence != nil {
		r := do(t, s.srv, "POST", "/v1/agent/nonce", "", map[string]any{"join_token": tok.Secret})
		var nonce struct{ Nonce []byte }
		r.decode(t, &nonce)
		if r.status != 201 || len(nonce.Nonce) != 32 {
			t.Fatalf("a nonce for the enrolment = %d %s", r.status, r.body)
		}
		body["evidence"], body["nonce"] = evidence(key, nonce.Nonce), nonce.Nonce
	}
	r = do(t, s.srv, "POST", "/v1/agent/enroll", "", body)
	var enrolled struct {
		Node struct {
			ID                string
			CertificateSerial string `json:"certificate_serial"`
		}
		ChainPEM string `json:"chain_pem"`
	}
	r.decode(t, &enrolled)
	if r.status != 201 {
		t.Fatalf("enrolling %s = %d %s", name, r.status, r.body)
	}
	return enrolledNode{ID: enrolled.Node.ID, Serial: enrolled.Node.CertificateSerial, Key: key, Chain: pemChain(t, enrolled.ChainPEM)}
}

// nodeClient calls srv presenting cert (none when nil), trusting srv's
// server certificate.
func nodeClient(t testing.TB, srv *httptest.Server, cert *tls.Certificate) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// nodeCall sends a request to the node listener and returns the reply,
// or the error when the TLS handshake or the transport failed.
func nodeCall(t *testing.T, c *http.Client, srv *httptest.Server, method, path string, body any) (response, error) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: data}
	if r.status >= 500 {
		t.Fatalf("%s %s = %d, a server error: %s", method, path, r.status, data)
	}
	validate(t, req, r)
	return r, nil
}

// nodeDo is nodeCall where the transport must work: the reply is checked
// against the OpenAPI document.
func nodeDo(t *testing.T, c *http.Client, srv *httptest.Server, method, path string, body any) response {
	t.Helper()
	r, err := nodeCall(t, c, srv, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// wantRefused checks that a node call is refused with 401, or in the
// handshake, with a detail saying want (when given).
func wantRefused(t *testing.T, c *http.Client, srv *httptest.Server, want string) {
	t.Helper()
	r, err := nodeCall(t, c, srv, "POST", "/v1/node/nonce", nil)
	if err != nil {
		if want != "" {
			t.Fatalf("POST /v1/node/nonce failed in transport (%v), want a 401 saying %q", err, want)
		}
		return
	}
	if r.status != http.StatusUnauthorized {
		t.Fatalf("POST /v1/node/nonce = %d %s, want 401", r.status, r.body)
	}
	if p := r.problem(t); !strings.Contains(p.Detail, want) {
		t.Fatalf("POST /v1/node/nonce detail = %q, want it to say %q", p.Detail, want)
	}
}

// forge issues a client certificate naming the node, with its key and
// serial, from a CA that is not the account's: issuer nil means
// self-signed.
func forge(t *testing.T, n enrolledNode, uri string, issuer *x509.Certificate, issuerKey crypto.Signer) *tls.Certificate {
	t.Helper()
	serial, ok := new(big.Int).SetString(n.Serial, 16)
	if !ok {
		t.Fatalf("serial %q is not hex", n.Serial)
	}
	u, _ := url.Parse(uri)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "node " + n.ID}, URIs: []*url.URL{u},
		NotBefore: vectorTime.Add(-time.Hour), NotAfter: vectorTime.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	parent, signer := tmpl, crypto.Signer(n.Key)
	if issuer != nil {
		parent, signer = issuer, issuerKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &n.Key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	chain := [][]byte{der}
	if issuer != nil {
		chain = append(chain, issuer.Raw)
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: n.Key}
}

// foreignCA is a CA of some other deployment.
func foreignCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "another CA"},
		NotBefore: vectorTime.Add(-24 * time.Hour), NotAfter: vectorTime.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

// latest prints the response it points to as it is when printed, for a
// failure message about the last of several attempts.
type latest struct{ r *response }

func (l latest) String() string { return fmt.Sprintf("%d %s", l.r.status, l.r.body) }

func (s *stack) waitCA(t *testing.T, token, accountID string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() bool {
		return do(t, s.srv, "GET", "/v1/accounts/"+accountID+"/ca", token, nil).status == 200
	}, "the account's CA did not appear")
}

// TestNodeMTLS: an enrolled node calls the node listener with its client
// certificate; what names no node of this deployment, or a node that is
// gone, or a revoked certificate, is refused on the next request, on the
// same connection.
func TestNodeMTLS(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, memory(t))
	adminID, admin := s.user("admin@example.com")
	acct := s.account(admin, "A")
	other := s.account(admin, "B")
	s.waitCA(t, admin, acct)
	s.waitCA(t, admin, other)
	base := "/v1/accounts/" + acct
	srv := s.nodeServer(t)

	n1 := s.enrolNode(t, admin, acct, "node-1")
	if uri := n1.leaf(t).URIs; len(uri) != 1 || uri[0].String() != "urn:cloister:node:"+acct+":"+n1.ID {
		t.Fatalf("node certificate URIs = %v, want urn:cloister:node:%s:%s", uri, acct, n1.ID)
	}
	c1 := nodeClient(t, srv, n1.tlsCert())

	// A heartbeat with an enclave of an approved application whose
	// certificate the node obtained: the node is listed running it, with
	// its certificate's application and MRENCLAVE.
	started := vectorTime.Add(-time.Minute)
	appID, mr, serial := s.enclaveOn(t, admin, adminID, acct, "hello.cloister.test", c1, srv)
	r := nodeDo(t, c1, srv, "POST", "/v1/node/heartbeat", map[string]any{"instances": []map[string]any{
		{"id": "enclave-1", "certificate_serial": serial, "status": "running", "started_at": started}}})
	var hb struct {
		ID            string
		LastHeartbeat *time.Time `json:"last_heartbeat"`
		Instances     []struct {
			ID, MRENCLAVE, Status string
			AppID                 string `json:"app_id"`
			CertificateSerial     string `json:"certificate_serial"`
		}
	}
	r.decode(t, &hb)
	if r.status != 200 || hb.ID != n1.ID || hb.LastHeartbeat == nil || len(hb.Instances) != 1 || hb.Instances[0].MRENCLAVE != mr ||
		hb.Instances[0].AppID != appID || hb.Instances[0].CertificateSerial != serial {
		t.Fatalf("heartbeat = %d %s", r.status, r.body)
	}
	r = do(t, s.srv, "GET", base+"/nodes", admin, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"id":"enclave-1"`) || !strings.Contains(string(r.body), `"status":"running"`) {
		t.Fatalf("listing nodes after the heartbeat = %d %s", r.status, r.body)
	}
	// An enclave on a certificate the node did not obtain is not its to
	// report: its own client certificate, say.
	if r := nodeDo(t, c1, srv, "POST", "/v1/node/heartbeat", map[string]any{"instances": []map[string]any{
		{"id": "enclave-2", "certificate_serial": n1.Serial}}}); r.status != 403 || r.problem(t).Reason != "instance_not_issued_here" {
		t.Fatalf("heartbeat reporting an enclave on the node's own certificate = %d %s, want 403", r.status, r.body)
	}
	if r := nodeDo(t, c1, srv, "POST", "/v1/node/heartbeat", map[string]any{"instances": []map[string]any{{"id": "x", "mrenclave": "zz"}}}); r.status != 400 || !strings.Contains(r.problem(t).Detail, "mrenclave") {
		t.Fatalf("heartbeat with a bad mrenclave = %d %s, want 400", r.status, r.body)
	}

	// A nonce: 32 bytes, base64.
	r = nodeDo(t, c1, srv, "POST", "/v1/node/nonce", nil)
	var nonce struct {
		Nonce     string
		ExpiresAt time.Time `json:"expires_at"`
	}
	r.decode(t, &nonce)
	if raw, err := base64.StdEncoding.DecodeString(nonce.Nonce); r.status != 201 || err != nil || len(raw) != 32 || nonce.ExpiresAt.IsZero() {
		t.Fatalf("nonce = %d %s, want 201 with 32 bytes", r.status, r.body)
	}

	// The node routes are on the node listener only, and the node listener
	// serves nothing else.
	if r := do(t, s.srv, "POST", "/v1/node/nonce", admin, nil); r.status != 404 {
		t.Fatalf("POST /v1/node/nonce on the API listener = %d %s, want 404", r.status, r.body)
	}
	if r := nodeDo(t, c1, srv, "GET", "/v1/users/me", nil); r.status != 404 {
		t.Fatalf("GET /v1/users/me on the node listener = %d %s, want 404", r.status, r.body)
	}
	if r := nodeDo(t, c1, srv, "GET", "/v1/node/nonce", nil); r.status != 405 {
		t.Fatalf("GET /v1/node/nonce = %d %s, want 405", r.status, r.body)
	}

	t.Run("refused", func(t *testing.T) {
		// No client certificate: the handshake fails, or the request gets 401.
		wantRefused(t, nodeClient(t, srv, nil), srv, "")
		// NodeHandler served without TLS by mistake reaches no handler.
		plain := httptest.NewServer(s.gw.NodeHandler())
		defer plain.Close()
		if r := do(t, plain, "POST", "/v1/node/nonce", "", nil); r.status != 401 || !strings.Contains(r.problem(t).Detail, "mutual TLS") {
			t.Fatalf("POST /v1/node/nonce without TLS = %d %s, want 401", r.status, r.body)
		}
		// Self-signed, naming the node, with its key and serial.
		uri := "urn:cloister:node:" + acct + ":" + n1.ID
		wantRefused(t, nodeClient(t, srv, forge(t, n1, uri, nil, nil)), srv, "not a node's of this deployment")
		// From another CA, the same.
		ca, caKey := foreignCA(t)
		wantRefused(t, nodeClient(t, srv, forge(t, n1, uri, ca, caKey)), srv, "not a node's of this deployment")
		// Naming an account that has no CA here.
		wantRefused(t, nodeClient(t, srv, forge(t, n1, "urn:cloister:node:"+uuid.NewString()+":"+n1.ID, ca, caKey)), srv, "has no CA")
		// Naming no node at all.
		wantRefused(t, nodeClient(t, srv, forge(t, n1, "https://node.example.com", ca, caKey)), srv, "names no node")
		// Another account's CA vouching for this account's node: it can
		// only name the node in its own account, where there is none.
		issued, err := cav1.NewCAClient(s.nc).IssueNodeCertificate(ctx, &cav1.IssueNodeCertificateRequest{AccountId: other, NodeId: n1.ID, Csr: csrOf(t, n1.Key)})
		if err != nil {
			t.Fatal(err)
		}
		cross := &tls.Certificate{Certificate: append([][]byte{issued.GetCertificate().GetDer()}, pemChain(t, string(issued.GetChainPem()))...), PrivateKey: n1.Key}
		wantRefused(t, nodeClient(t, srv, cross), srv, "not enrolled in this account")
		// The node itself still gets through.
		if r := nodeDo(t, c1, srv, "POST", "/v1/node/nonce", nil); r.status != 201 {
			t.Fatalf("the node's own call after the refusals = %d %s", r.status, r.body)
		}
	})

	// An admin revokes another node's certificate: its next call, on the
	// connection it already has, is refused.
	n2 := s.enrolNode(t, admin, acct, "node-2")
	c2 := nodeClient(t, srv, n2.tlsCert())
	if r := nodeDo(t, c2, srv, "POST", "/v1/node/heartbeat", map[string]any{"instances": []any{}}); r.status != 200 {
		t.Fatalf("node-2's heartbeat = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", base+"/certificates/"+n2.Serial+"/revoke", admin, map[string]string{"reason": "key compromise"}); r.status != 200 {
		t.Fatalf("revoking node-2's certificate = %d %s", r.status, r.body)
	}
	wantRefused(t, c2, srv, "revoked: key compromise")

	// Deregistered: node-1's next call is refused.
	if r := do(t, s.srv, "POST", base+"/nodes/"+n1.ID+"/deregister", admin, nil); r.status != 200 {
		t.Fatalf("deregistering node-1 = %d %s", r.status, r.body)
	}
	wantRefused(t, c1, srv, "deregistered")
	r = nodeDo(t, c1, srv, "POST", "/v1/node/heartbeat", map[string]any{"instances": []any{}})
	if r.status != 401 {
		t.Fatalf("heartbeat of a deregistered node = %d %s, want 401", r.status, r.body)
	}
}

// TestNodeIssuesAppCertificate: a node forwards an enclave's CSR and
// simulated quote; the gateway has the quote verified for the app and the
// CA issue the certificate, recording the node. A measurement that is not
// an approved image is refused with the verdict's reason, and a CA
// refusal (a nonce used twice) comes back naming its check.
func TestNodeIssuesAppCertificate(t *testing.T) {
	s := newStack(t, memory(t))
	adminID, admin := s.user("admin@example.com")
	acct := s.account(admin, "A")
	s.waitCA(t, admin, acct)
	base := "/v1/accounts/" + acct
	const domain = "hello.cloister.test"
	app, body := s.convertedHello(t, admin, adminID, acct, domain)
	var r response
	var tasks struct{ Items []struct{ ID string } }
	testkit.Eventually(t, 10*time.Second, func() bool {
		do(t, s.srv, "GET", base+"/tasks?status=pending", admin, nil).decode(t, &tasks)
		return len(tasks.Items) == 2
	}, "the domain and image tasks never appeared")
	for _, task := range tasks.Items {
		if r := do(t, s.srv, "POST", base+"/tasks/"+task.ID+"/approve", admin, nil); r.status != 200 || !strings.Contains(string(r.body), `"status":"approved"`) {
			t.Fatalf("approving %s = %d %s", task.ID, r.status, r.body)
		}
	}

	srv := s.nodeServer(t)
	n := s.enrolNode(t, admin, acct, "node-1")
	c := nodeClient(t, srv, n.tlsCert())
	qe, err := s.att.SimulatedQE(acct)
	if err != nil {
		t.Fatal(err)
	}
	// request is what a node forwards for an enclave of measurement rb
	// with a nonce it obtained.
	request := func(rb sgx.ReportBody, nonce []byte) (map[string]any, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		binding := sha256.Sum256(spki)
		copy(rb.ReportData[:32], binding[:])
		copy(rb.ReportData[32:], nonce)
		quote, err := qe.Quote(rb)
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"app_id": app.ID, "csr": string(csrOf(t, key, domain)), "quote": quote}, key
	}
	newNonce := func() []byte {
		r := nodeDo(t, c, srv, "POST", "/v1/node/nonce", nil)
		var out struct{ Nonce []byte }
		r.decode(t, &out)
		if r.status != 201 || len(out.Nonce) != 32 {
			t.Fatalf("nonce = %d %s", r.status, r.body)
		}
		return out.Nonce
	}

	// The approvals reach the attestation service and the CA through
	// their events: retry until they have.
	var issued struct {
		Certificate struct {
			Serial, Kind, PEM string
			NodeID            string   `json:"node_id"`
			DNSNames          []string `json:"dns_names"`
		}
		ChainPEM string `json:"chain_pem"`
		Verdict  struct {
			ID        string
			OK        bool
			Simulated bool
			MRENCLAVE string
		}
	}
	var used []byte
	testkit.Eventually(t, 10*time.Second, func() bool {
		used = newNonce()
		req, _ := request(body, used)
		r = nodeDo(t, c, srv, "POST", "/v1/node/certificate", req)
		return r.status == 201
	}, "no certificate after the approvals: %s", latest{&r})
	r.decode(t, &issued)
	if issued.Certificate.Kind != "app" || issued.Certificate.NodeID != n.ID || len(issued.Certificate.DNSNames) != 1 || issued.Certificate.DNSNames[0] != domain ||
		!issued.Verdict.OK || !issued.Verdict.Simulated || issued.Verdict.MRENCLAVE != hex.EncodeToString(body.MRENCLAVE[:]) ||
		len(pemChain(t, issued.ChainPEM)) != 3 {
		t.Fatalf("issued = %s", r.body)
	}
	if r := do(t, s.srv, "GET", base+"/certificates/"+issued.Certificate.Serial, admin, nil); r.status != 200 || !strings.Contains(string(r.body), `"node_id":"`+n.ID+`"`) {
		t.Fatalf("the issued certificate through the API = %d %s, want it to record node %s", r.status, r.body, n.ID)
	}

	// A measurement that is no approved image: 403 with the verdict's reason.
	other := body
	other.MRENCLAVE[1] = 1
	req, _ := request(other, newNonce())
	if r := nodeDo(t, c, srv, "POST", "/v1/node/certificate", req); r.status != 403 || !strings.Contains(r.problem(t).Detail, "image_not_approved") {
		t.Fatalf("a certificate for an unapproved measurement = %d %s, want 403 saying image_not_approved", r.status, r.body)
	}
	// The nonce used already: the CA's refusal names its check.
	req, _ = request(body, used)
	if r := nodeDo(t, c, srv, "POST", "/v1/node/certificate", req); r.status != 403 || !strings.Contains(r.problem(t).Detail, "nonce check") {
		t.Fatalf("a certificate on a used nonce = %d %s, want 403 naming the nonce check", r.status, r.body)
	}
	// Malformed requests.
	if r := nodeDo(t, c, srv, "POST", "/v1/node/certificate", map[string]any{"app_id": app.ID, "csr": "x"}); r.status != 400 || !strings.Contains(r.problem(t).Detail, "quote") {
		t.Fatalf("a request without a quote = %d %s, want 400", r.status, r.body)
	}

	// Deregistering the node revokes what it obtained for its enclaves.
	if r := do(t, s.srv, "POST", base+"/nodes/"+n.ID+"/deregister", admin, nil); r.status != 200 {
		t.Fatalf("deregistering = %d %s", r.status, r.body)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		r := do(t, s.srv, "GET", base+"/certificates/"+issued.Certificate.Serial, admin, nil)
		return r.status == 200 && strings.Contains(string(r.body), `"revoked":true`)
	}, "the enclave's certificate outlived its node's deregistration")
}

// TestNodeReattest: a node enrolled with simulated evidence re-attests
// through POST /v1/node/attest with a quote bound to its certificate's
// key (200, last_attested moves); a quote bound to another key is
// refused with 403 and makes the node untrusted, so its next call on the
// same connection gets 401.
func TestNodeReattest(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	acct := s.account(admin, "A")
	s.waitCA(t, admin, acct)
	if r := do(t, s.srv, "PUT", "/v1/accounts/"+acct+"/attestation/policy", admin, map[string]any{"accept_statuses": []string{"UpToDate"}, "allow_simulation": true}); r.status != 200 {
		t.Fatalf("allowing simulation = %d %s", r.status, r.body)
	}
	qe, err := s.att.SimulatedQE(acct)
	if err != nil {
		t.Fatal(err)
	}
	// quote is the node's evidence: REPORTDATA is SHA-256 of key's
	// SubjectPublicKeyInfo, then nonce.
	quote := func(key *ecdsa.PrivateKey, nonce []byte) []byte {
		spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		var rb sgx.ReportBody
		binding := sha256.Sum256(spki)
		copy(rb.ReportData[:32], binding[:])
		copy(rb.ReportData[32:], nonce)
		rb.MRENCLAVE[0] = 0x11
		q, err := qe.Quote(rb)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	srv := s.nodeServer(t)
	n := s.enrolNodeWith(t, admin, acct, "tee-1", quote)
	c := nodeClient(t, srv, n.tlsCert())
	// nonce asks, as the node, for a nonce for its next re-attestation.
	nonce := func() []byte {
		r := nodeDo(t, c, srv, "POST", "/v1/node/attestation-nonce", nil)
		var got struct{ Nonce []byte }
		r.decode(t, &got)
		if r.status != 201 || len(got.Nonce) != 32 {
			t.Fatalf("POST /v1/node/attestation-nonce = %d %s", r.status, r.body)
		}
		return got.Nonce
	}

	var node struct {
		ID, Status, StatusReason string
		Attested                 bool
		VerdictID                string     `json:"verdict_id"`
		LastAttested             *time.Time `json:"last_attested"`
	}
	fresh := nonce()
	good := map[string]any{"evidence": quote(n.Key, fresh), "nonce": fresh}
	r := nodeDo(t, c, srv, "POST", "/v1/node/attest", good)
	r.decode(t, &node)
	if r.status != 200 || node.ID != n.ID || node.Status != "active" || !node.Attested || node.VerdictID == "" || node.LastAttested == nil {
		t.Fatalf("re-attesting with good evidence = %d %s, want 200 with the attested node", r.status, r.body)
	}
	if r := nodeDo(t, c, srv, "POST", "/v1/node/attest", map[string]any{}); r.status != 400 || !strings.Contains(r.problem(t).Detail, "evidence") {
		t.Fatalf("re-attesting without evidence = %d %s, want 400", r.status, r.body)
	}
	// The same evidence again is a replay: refused, the node unjudged.
	if r := nodeDo(t, c, srv, "POST", "/v1/node/attest", good); r.status != 403 || r.problem(t).Reason != "nonce_refused" {
		t.Fatalf("re-attesting with replayed evidence = %d %s, want 403 nonce_refused", r.status, r.body)
	}

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fresh = nonce()
	r = nodeDo(t, c, srv, "POST", "/v1/node/attest", map[string]any{"evidence": quote(other, fresh), "nonce": fresh})
	if r.status != 403 || !strings.Contains(r.problem(t).Detail, "binding") {
		t.Fatalf("re-attesting with evidence of another key = %d %s, want 403 giving the reason", r.status, r.body)
	}
	wantRefused(t, c, srv, "untrusted")
	if r := nodeDo(t, c, srv, "POST", "/v1/node/attest", good); r.status != 401 {
		t.Fatalf("re-attesting an untrusted node = %d %s, want 401", r.status, r.body)
	}
}

// TestNodeSimulatedQE: a node gets a simulated QE for its account only
// once the account's policy allows simulation, and quotes made with it
// pass the attestation service's Verify for that account.
func TestNodeSimulatedQE(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	acct := s.account(admin, "A")
	s.waitCA(t, admin, acct)
	srv := s.nodeServer(t)
	n := s.enrolNode(t, admin, acct, "sim-1")
	c := nodeClient(t, srv, n.tlsCert())

	r := nodeDo(t, c, srv, "POST", "/v1/node/simulation/qe", nil)
	if r.status != 403 || !strings.Contains(r.problem(t).Detail, "simulation is not allowed by the account's policy") {
		t.Fatalf("a simulated QE under the default policy = %d %s, want 403", r.status, r.body)
	}
	if r := do(t, s.srv, "PUT", "/v1/accounts/"+acct+"/attestation/policy", admin, map[string]any{"accept_statuses": []string{"UpToDate"}, "allow_simulation": true}); r.status != 200 {
		t.Fatalf("allowing simulation = %d %s", r.status, r.body)
	}
	r = nodeDo(t, c, srv, "POST", "/v1/node/simulation/qe", nil)
	var got struct{ QE []byte }
	r.decode(t, &got)
	if r.status != 201 || len(got.QE) == 0 {
		t.Fatalf("a simulated QE under a policy allowing simulation = %d %s, want 201 with the QE", r.status, r.body)
	}
	qe, err := sim.ParseQE(got.QE)
	if err != nil {
		t.Fatalf("ParseQE(the node's QE) = %v", err)
	}
	var body sgx.ReportBody
	body.MRENCLAVE[0] = 0x5e
	copy(body.ReportData[:], "node agent's enclave")
	quote, err := qe.Quote(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := attestationv1.NewAttestationClient(s.nc).Verify(context.Background(), &attestationv1.VerifyRequest{AccountId: acct, Quote: quote})
	if v := resp.GetVerdict(); err != nil || !v.GetOk() || !v.GetSimulated() || !bytes.Equal(v.GetMrenclave(), body.MRENCLAVE[:]) {
		t.Fatalf("Verify(quote of the node's QE) = %v, %v, want ok and simulated", v, err)
	}
}

// approvedHello is convertedHello with its domain and image approved by
// token's user, adminID.
func (s *stack) approvedHello(t *testing.T, token, adminID, acct, domain string) (app struct{ ID string }, body sgx.ReportBody) {
	t.Helper()
	base := "/v1/accounts/" + acct
	app, body = s.convertedHello(t, token, adminID, acct, domain)
	var tasks struct{ Items []struct{ ID string } }
	testkit.Eventually(t, 10*time.Second, func() bool {
		do(t, s.srv, "GET", base+"/tasks?status=pending", token, nil).decode(t, &tasks)
		return len(tasks.Items) == 2
	}, "the domain and image tasks never appeared")
	for _, task := range tasks.Items {
		if r := do(t, s.srv, "POST", base+"/tasks/"+task.ID+"/approve", token, nil); r.status != 200 {
			t.Fatalf("approving %s = %d %s", task.ID, r.status, r.body)
		}
	}
	return app, body
}

// enclaveOn makes acct (whose admin is token, user adminID) an approved
// application serving domain, and has the CA issue, through node n (whose
// client is c on srv), the certificate of an enclave of it: what a node
// may then report running. It returns the application's id, the image's
// MRENCLAVE (hex) and the certificate's serial.
func (s *stack) enclaveOn(t *testing.T, token, adminID, acct, domain string, c *http.Client, srv *httptest.Server) (appID, mrenclave, serial string) {
	t.Helper()
	app, body := s.approvedHello(t, token, adminID, acct, domain)
	qe, err := s.att.SimulatedQE(acct)
	if err != nil {
		t.Fatal(err)
	}
	var r response
	testkit.Eventually(t, 10*time.Second, func() bool {
		var nonce struct{ Nonce []byte }
		nodeDo(t, c, srv, "POST", "/v1/node/nonce", nil).decode(t, &nonce)
		req, err := certificateRequest(t, qe, body, nonce.Nonce, app.ID, domain)
		if err != nil {
			t.Fatal(err)
		}
		r = nodeDo(t, c, srv, "POST", "/v1/node/certificate", req)
		return r.status == 201
	}, "no certificate after the approvals: %s", latest{&r})
	var issued struct{ Certificate struct{ Serial string } }
	r.decode(t, &issued)
	return app.ID, hex.EncodeToString(body.MRENCLAVE[:]), issued.Certificate.Serial
}
