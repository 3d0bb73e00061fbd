package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// fakeGateway stands in for Cloister's gateway: its public enrolment
// endpoint, and its mTLS node listener that requires client certificates
// from the account's CA. The gateway's real node endpoints are being
// written at the same time as this agent; the end-to-end test against the
// real gateway comes with the full journey (DESIGN §1). The fake answers
// with the shapes, statuses and strict decoding the agent relies on, so it
// is also the contract the gateway must meet.
type fakeGateway struct {
	t       *testing.T
	account string
	token   string

	rootKey, issuerKey *ecdsa.PrivateKey
	root, issuer       *x509.Certificate

	public *httptest.Server // POST /v1/agent/enroll
	node   *httptest.Server // /v1/node/*, mTLS

	mu         sync.Mutex
	nodes      int             // node ids handed out
	enrolls    int             // calls of the enrolment endpoint
	enrollErr  *api.Problem    // when set, enrolment answers it
	failFirst  int             // enrolments to answer 503 before the rest
	enrolled   []api.Enroll    // enrolment requests (the token included)
	beats      []seenHeartbeat // heartbeats received
	beatErr    *api.Problem    // when set, heartbeats answer it
	nonces     []string        // nonces handed out, base64
	issues     []seenIssue     // issuance requests
	issueErr   *api.Problem    // when set, issuance answers it
	simRoot    *sim.Root       // issues the simulated QEs
	qes        []*sim.QE       // simulated QEs handed out
	qeErr      *api.Problem    // when set, simulated QE requests answer it
	qeCalls    int             // simulated QE requests
	qeAt       time.Time       // when the last simulated QE was handed out
	agentQEs   []*sim.QE       // simulated QEs handed out for an enrolment
	agentQEErr *api.Problem    // when set, POST /v1/agent/simulation-qe answers it

	attests         []seenAttest // re-attestations received
	attestErr       *api.Problem // when set, re-attestations answer it (a 403 makes the node untrusted)
	attestFailFirst int          // re-attestations to answer 503 before the rest
	untrusted       bool         // after a refused re-attestation: node requests answer 401
}

// seenAttest is a re-attestation as the fake received it.
type seenAttest struct {
	Node     string
	At       time.Time
	Evidence []byte
	Quote    *sgx.Quote // nil when the evidence does not parse
	// Bound: REPORTDATA is SHA-256 of the client certificate's
	// SubjectPublicKeyInfo, then 32 zero bytes.
	Bound bool
}

// seenHeartbeat is a heartbeat as the fake received it.
type seenHeartbeat struct {
	Node      string // from the client certificate's URI
	Serial    string // of the client certificate
	Instances []instance
}

type seenIssue struct {
	Node string
	Body issueRequest
}

const (
	fakeImageID   = "img-0001"
	fakeMRENCLAVE = "5a" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
)

func newFakeGateway(t *testing.T) *fakeGateway {
	t.Helper()
	g := &fakeGateway{t: t, account: "acct-1", token: "cjt_" + hex.EncodeToString(randBytes(t, 32))}
	g.rootKey, g.root = newCA(t, "Cloister test root", nil, nil)
	g.issuerKey, g.issuer = newCA(t, "Cloister test issuing CA", g.root, g.rootKey)
	var err error
	if g.simRoot, err = sim.NewRoot(rand.Reader, time.Now()); err != nil {
		t.Fatal(err)
	}

	pub := http.NewServeMux()
	pub.HandleFunc("POST /v1/agent/enroll", g.enroll)
	pub.HandleFunc("POST /v1/agent/simulation-qe", g.agentSimulatedQE)
	g.public = httptest.NewServer(pub)
	t.Cleanup(g.public.Close)

	nodeMux := http.NewServeMux()
	nodeMux.HandleFunc("POST /v1/node/heartbeat", g.heartbeat)
	nodeMux.HandleFunc("POST /v1/node/nonce", g.nonce)
	nodeMux.HandleFunc("POST /v1/node/certificate", g.certificate)
	nodeMux.HandleFunc("POST /v1/node/simulation/qe", g.simulatedQE)
	nodeMux.HandleFunc("POST /v1/node/attest", g.attest)
	g.node = httptest.NewUnstartedServer(nodeMux)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(g.root)
	g.node.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs, MinVersion: tls.VersionTLS12}
	// The test that closes the listener under the agent makes handshakes
	// fail; they are not news.
	g.node.Config.ErrorLog = log.New(io.Discard, "", 0)
	g.node.StartTLS()
	t.Cleanup(g.node.Close)
	return g
}

// serverCA is the PEM of the node listener's certificate, for --server-ca.
func (g *fakeGateway) serverCA() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.node.Certificate().Raw})
}

func (g *fakeGateway) urls() (public, node *url.URL) {
	p, err := url.Parse(g.public.URL)
	if err != nil {
		g.t.Fatal(err)
	}
	n, err := url.Parse(g.node.URL)
	if err != nil {
		g.t.Fatal(err)
	}
	return p, n
}

func (g *fakeGateway) enroll(w http.ResponseWriter, r *http.Request) {
	var b api.Enroll
	if !strictDecode(w, r, &b) {
		return
	}
	g.mu.Lock()
	g.enrolls++
	g.enrolled = append(g.enrolled, b)
	refuse, unavailable := g.enrollErr, g.failFirst > 0
	if unavailable {
		g.failFirst--
	}
	g.mu.Unlock()
	switch {
	case refuse != nil:
		problem(w, refuse.Status, refuse.Detail)
		return
	case unavailable:
		problem(w, http.StatusServiceUnavailable, "the node registry is unavailable")
		return
	case b.JoinToken != g.token:
		problem(w, http.StatusUnauthorized, "the join token is unknown")
		return
	}
	blk, _ := pem.Decode([]byte(b.CSR))
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		problem(w, http.StatusBadRequest, "csr: not a PEM certificate request")
		return
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		problem(w, http.StatusBadRequest, "csr: not signed by its own key")
		return
	}
	if k, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		problem(w, http.StatusBadRequest, "csr: the key must be EC P-256")
		return
	}
	g.mu.Lock()
	g.nodes++
	nodeID := fmt.Sprintf("node-%d", g.nodes)
	g.mu.Unlock()
	uri, _ := url.Parse("urn:cloister:node:" + g.account + ":" + nodeID)
	leaf := g.sign(&x509.Certificate{Subject: pkix.Name{CommonName: "node " + nodeID}, URIs: []*url.URL{uri},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, csr.PublicKey)
	chain := append(certPEM(leaf), certPEM(g.issuer)...)
	chain = append(chain, certPEM(g.root)...)
	reply(w, http.StatusCreated, api.Enrolled{Node: api.Node{ID: nodeID, Name: b.NodeName, Status: "active", Labels: map[string]string{},
		CertificateSerial: leaf.SerialNumber.Text(16), EnrolledAt: time.Now().UTC(), Instances: []api.Instance{}}, ChainPEM: string(chain)})
}

// peer is the node a node-facing request comes from, by its certificate.
func (g *fakeGateway) peer(r *http.Request) (node string, cert *x509.Certificate) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		g.t.Errorf("%s %s without a client certificate", r.Method, r.URL.Path)
		return "", nil
	}
	cert = r.TLS.PeerCertificates[0]
	account, node, err := nodeURI(cert)
	if err != nil || account != g.account {
		g.t.Errorf("%s %s: client certificate of %q/%q (%v), want a node of %s", r.Method, r.URL.Path, account, node, err, g.account)
	}
	return node, cert
}

func (g *fakeGateway) heartbeat(w http.ResponseWriter, r *http.Request) {
	node, cert := g.peer(r)
	var b heartbeatRequest
	if !strictDecode(w, r, &b) {
		return
	}
	if b.Instances == nil {
		problem(w, http.StatusBadRequest, "instances must be an array")
		return
	}
	g.mu.Lock()
	g.beats = append(g.beats, seenHeartbeat{Node: node, Serial: cert.SerialNumber.Text(16), Instances: b.Instances})
	fail := g.beatErr
	if g.untrusted {
		fail = errUntrusted
	}
	g.mu.Unlock()
	if fail != nil {
		problem(w, fail.Status, fail.Detail)
		return
	}
	reply(w, http.StatusOK, api.Node{ID: node, Status: "active"})
}

func (g *fakeGateway) nonce(w http.ResponseWriter, r *http.Request) {
	g.peer(r)
	var b struct{}
	if !strictDecode(w, r, &b) {
		return
	}
	n := randBytes(g.t, 32)
	g.mu.Lock()
	g.nonces = append(g.nonces, b64(n))
	g.mu.Unlock()
	reply(w, http.StatusCreated, nonceAnswer{Nonce: n, ExpiresAt: ptr(time.Now().Add(5 * time.Minute).UTC())})
}

func (g *fakeGateway) certificate(w http.ResponseWriter, r *http.Request) {
	node, _ := g.peer(r)
	var b issueRequest
	if !strictDecode(w, r, &b) {
		return
	}
	g.mu.Lock()
	g.issues = append(g.issues, seenIssue{Node: node, Body: b})
	fail := g.issueErr
	g.mu.Unlock()
	if fail != nil {
		problem(w, fail.Status, fail.Detail)
		return
	}
	blk, _ := pem.Decode([]byte(b.CSR))
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		problem(w, http.StatusBadRequest, "csr: "+err.Error())
		return
	}
	leaf := g.sign(&x509.Certificate{Subject: pkix.Name{CommonName: csr.DNSNames[0]}, DNSNames: csr.DNSNames,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, csr.PublicKey)
	chain := append(certPEM(leaf), certPEM(g.issuer)...)
	reply(w, http.StatusCreated, map[string]any{
		"certificate": api.Certificate{Serial: leaf.SerialNumber.Text(16), Kind: "app", SubjectID: b.AppID, DNSNames: csr.DNSNames,
			NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, PEM: string(certPEM(leaf)), NodeID: node, ImageID: fakeImageID,
			MRENCLAVE: fakeMRENCLAVE, VerdictID: "verdict-1"},
		"chain_pem": string(chain),
		"verdict":   api.Verdict{ID: "verdict-1", OK: true, Advisories: []string{}, MRENCLAVE: fakeMRENCLAVE, MRSIGNER: "00"},
	})
}

// simulatedQE answers as the gateway's POST /v1/node/simulation/qe: a QE
// of the fake's simulation root, serialised.
func (g *fakeGateway) simulatedQE(w http.ResponseWriter, r *http.Request) {
	g.peer(r)
	g.mu.Lock()
	g.qeCalls++
	fail := g.qeErr
	g.mu.Unlock()
	if fail != nil {
		problem(w, fail.Status, fail.Detail)
		return
	}
	qe, err := g.simRoot.NewQE(rand.Reader, sim.DefaultPlatform(), time.Now())
	if err != nil {
		g.t.Errorf("NewQE() = %v", err)
		problem(w, http.StatusInternalServerError, err.Error())
		return
	}
	b, err := qe.MarshalBinary()
	if err != nil {
		g.t.Errorf("MarshalBinary() = %v", err)
		problem(w, http.StatusInternalServerError, err.Error())
		return
	}
	g.mu.Lock()
	g.qes = append(g.qes, qe)
	g.qeAt = time.Now()
	g.mu.Unlock()
	reply(w, http.StatusCreated, api.SimulatedQE{QE: b})
}

// agentSimulatedQE answers as the gateway's POST /v1/agent/simulation-qe:
// with the join token, a QE of the fake's simulation root, serialised.
func (g *fakeGateway) agentSimulatedQE(w http.ResponseWriter, r *http.Request) {
	var b api.AgentSimulatedQE
	if !strictDecode(w, r, &b) {
		return
	}
	g.mu.Lock()
	fail := g.agentQEErr
	g.mu.Unlock()
	switch {
	case fail != nil:
		problem(w, fail.Status, fail.Detail)
		return
	case b.JoinToken != g.token:
		problem(w, http.StatusUnauthorized, "the join token is unknown")
		return
	}
	qe, err := g.simRoot.NewQE(rand.Reader, sim.DefaultPlatform(), time.Now())
	if err != nil {
		g.t.Errorf("NewQE() = %v", err)
		problem(w, http.StatusInternalServerError, err.Error())
		return
	}
	raw, err := qe.MarshalBinary()
	if err != nil {
		g.t.Errorf("MarshalBinary() = %v", err)
		problem(w, http.StatusInternalServerError, err.Error())
		return
	}
	g.mu.Lock()
	g.agentQEs = append(g.agentQEs, qe)
	g.mu.Unlock()
	reply(w, http.StatusCreated, api.SimulatedQE{QE: raw})
}

// errUntrusted is the gateway's answer to a node made untrusted by a
// refused re-attestation.
var errUntrusted = &api.Problem{Status: http.StatusUnauthorized, Detail: "node node-1 is untrusted: re-attestation failed"}

// attest answers as the gateway's POST /v1/node/attest: the evidence must
// be a quote whose REPORTDATA binds the key of the client certificate; a
// refusal (403) makes the node untrusted, so that its later requests get
// 401. The fake checks the binding only, not the quote's signatures.
func (g *fakeGateway) attest(w http.ResponseWriter, r *http.Request) {
	node, cert := g.peer(r)
	var b api.NodeAttest
	if !strictDecode(w, r, &b) {
		return
	}
	if len(b.Evidence) == 0 {
		problem(w, http.StatusBadRequest, "evidence is required: the node's quote, base64")
		return
	}
	seen := seenAttest{Node: node, At: time.Now(), Evidence: b.Evidence}
	q, perr := sgx.ParseQuote(b.Evidence)
	if perr == nil {
		binding := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
		seen.Quote = q
		seen.Bound = bytes.Equal(q.Body.ReportData[:], append(binding[:], make([]byte, 32)...))
	}
	g.mu.Lock()
	if g.untrusted {
		g.mu.Unlock()
		problem(w, errUntrusted.Status, errUntrusted.Detail)
		return
	}
	g.attests = append(g.attests, seen)
	fail, unavailable := g.attestErr, g.attestFailFirst > 0
	if unavailable {
		g.attestFailFirst--
	}
	switch {
	case unavailable:
		fail = &api.Problem{Status: http.StatusServiceUnavailable, Detail: "the attestation service is unavailable"}
	case fail != nil:
	case perr != nil:
		fail = &api.Problem{Status: http.StatusForbidden, Detail: "the node's re-attestation was refused: malformed quote: " + perr.Error()}
	case !seen.Bound:
		fail = &api.Problem{Status: http.StatusForbidden, Detail: "the node's re-attestation was refused: report data does not bind the node's key"}
	}
	if fail != nil && fail.Status == http.StatusForbidden {
		g.untrusted = true
	}
	g.mu.Unlock()
	if fail != nil {
		problem(w, fail.Status, fail.Detail)
		return
	}
	now := time.Now().UTC()
	reply(w, http.StatusOK, api.Node{ID: node, Status: "active", Labels: map[string]string{}, CertificateSerial: cert.SerialNumber.Text(16),
		Attested: true, Simulated: true, VerdictID: "verdict-reattest", LastAttested: &now, Instances: []api.Instance{}})
}

// attestations returns the re-attestations the fake has seen.
func (g *fakeGateway) attestations() []seenAttest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]seenAttest(nil), g.attests...)
}

func (g *fakeGateway) sign(tmpl *x509.Certificate, pub any) *x509.Certificate {
	g.t.Helper()
	tmpl.SerialNumber = new(big.Int).SetBytes(randBytes(g.t, 16))
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Minute), time.Now().Add(24*time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, g.issuer, pub, g.issuerKey)
	if err != nil {
		g.t.Fatalf("issuing a certificate: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		g.t.Fatal(err)
	}
	return c
}

// counts returns how many enrolments and heartbeats the fake has seen.
func (g *fakeGateway) counts() (enrolls, beats int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.enrolls, len(g.beats)
}

func (g *fakeGateway) heartbeats() []seenHeartbeat {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]seenHeartbeat(nil), g.beats...)
}

// newCA makes a CA certificate, self-signed when parent is nil.
func newCA(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, c
}

// strictDecode decodes the body as the gateway does: JSON content type,
// one object, no unknown field.
func strictDecode(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.Header.Get("Content-Type") != "application/json" {
		problem(w, http.StatusBadRequest, "Content-Type must be application/json")
		return false
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		problem(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	return true
}

func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Code: "test"})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }
