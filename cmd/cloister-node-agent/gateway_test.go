package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/services/attestation"
	"github.com/cloister-cc/cloister/services/gateway/api"
	"github.com/cloister-cc/cloister/services/gateway/gatewaytest"
)

// testGateway is Cloister itself, the gateway in front of the real
// services (gatewaytest), with a recorder between it and the agent: the
// recorder keeps what the agent sent and what it was given, and can answer
// in the gateway's place with a problem, to show how the agent takes
// refusals and outages the real services would not produce on demand.
type testGateway struct {
	*gatewaytest.Stack
	t              *testing.T
	admin, adminID string // the account's admin: session token, user id
	account        string
	token          string // a join token's secret
	public, node   *httptest.Server

	mu              sync.Mutex
	enrolls         int
	enrolled        []api.Enroll
	enrollErr       *api.Problem // when set, enrolment answers it
	failFirst       int          // enrolments to answer 503 before the rest
	beats           []seenHeartbeat
	beatErr         *api.Problem // when set, heartbeats answer it
	beatAnswers     []recorded   // the gateway's answers to heartbeats
	nonces          []string     // nonces handed out, base64
	issues          []seenIssue
	issueErr        *api.Problem // when set, issuance answers it
	qes             []*sim.QE    // simulated QEs handed out over mTLS
	qeErr           *api.Problem // when set, simulated QE requests answer it
	qeCalls         int
	qeAt            time.Time // when the last simulated QE was handed out
	agentQEs        []*sim.QE // simulated QEs handed out for an enrolment
	agentQEErr      *api.Problem
	attests         []seenAttest
	attestAnswers   []recorded
	attestFailFirst int // re-attestations to answer 503 before the rest
}

// recorded is an answer of the gateway as the recorder saw it.
type recorded struct {
	Status  int
	Problem api.Problem
}

// seenAttest is a re-attestation as the gateway received it.
type seenAttest struct {
	Node     string
	At       time.Time
	Evidence []byte
	Nonce    []byte
	TEE      string
	Quote    *sgx.Quote // nil when the evidence does not parse
	// Bound: REPORTDATA is SHA-256 of the client certificate's
	// SubjectPublicKeyInfo, then the nonce sent with it.
	Bound bool
}

// seenHeartbeat is a heartbeat as the gateway received it.
type seenHeartbeat struct {
	Node      string // from the client certificate's URI
	Serial    string // of the client certificate
	Instances []instance
}

type seenIssue struct {
	Node string
	Body issueRequest
}

func newTestGateway(t *testing.T) *testGateway { t.Helper(); return newTestGatewayWith(t, nil) }

// newTestGatewayWith is newTestGateway with the attestation service's
// configuration changed by attest (if not nil).
func newTestGatewayWith(t *testing.T, attest func(*attestation.Config)) *testGateway {
	t.Helper()
	g := &testGateway{t: t}
	g.Stack = gatewaytest.Start(t, gatewaytest.Options{Wrap: g.wrap, Attestation: attest})
	g.public, g.node = g.API, g.Node
	g.admin, g.account = g.Admin("admin@example.com")
	var me api.Me
	g.Call(g.admin, "GET", "/v1/users/me", nil, &me)
	g.adminID = me.ID
	g.token = g.JoinToken(g.admin, g.account, api.CreateJoinToken{Name: "agents", MaxUses: 10}).Secret
	return g
}

// serverCA is the PEM of the node listener's certificate, for --server-ca.
func (g *testGateway) serverCA() []byte { return g.NodeServerCA() }

func (g *testGateway) urls() (public, node *url.URL) {
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

// wrap puts the recorder in front of the gateway's handlers.
func (g *testGateway) wrap(h http.Handler, node bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if fail := g.before(r, body); fail != nil {
			problem(w, fail.Status, fail.Detail)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		g.after(r, body, rec)
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// before records a request and says whether to answer it with a fault.
func (g *testGateway) before(r *http.Request, body []byte) *api.Problem {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch r.URL.Path {
	case "/v1/agent/enroll":
		var b api.Enroll
		_ = json.Unmarshal(body, &b)
		g.enrolls++
		g.enrolled = append(g.enrolled, b)
		if g.enrollErr != nil {
			return g.enrollErr
		}
		if g.failFirst > 0 {
			g.failFirst--
			return &api.Problem{Status: http.StatusServiceUnavailable, Detail: "the node registry is unavailable"}
		}
	case "/v1/agent/simulation-qe":
		return g.agentQEErr
	case "/v1/node/heartbeat":
		var b heartbeatRequest
		_ = json.Unmarshal(body, &b)
		node, serial := g.peer(r)
		g.beats = append(g.beats, seenHeartbeat{Node: node, Serial: serial, Instances: b.Instances})
		return g.beatErr
	case "/v1/node/certificate":
		var b issueRequest
		_ = json.Unmarshal(body, &b)
		node, _ := g.peer(r)
		g.issues = append(g.issues, seenIssue{Node: node, Body: b})
		return g.issueErr
	case "/v1/node/simulation/qe":
		g.qeCalls++
		return g.qeErr
	case "/v1/node/attest":
		var b api.NodeAttest
		_ = json.Unmarshal(body, &b)
		node, _ := g.peer(r)
		seen := seenAttest{Node: node, At: time.Now(), Evidence: b.Evidence, Nonce: b.Nonce, TEE: b.TEE}
		if q, err := sgx.ParseQuote(b.Evidence); err == nil && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			binding := sha256.Sum256(r.TLS.PeerCertificates[0].RawSubjectPublicKeyInfo)
			seen.Quote = q
			seen.Bound = len(b.Nonce) == 32 && bytes.Equal(q.Body.ReportData[:], append(binding[:], b.Nonce...))
		}
		g.attests = append(g.attests, seen)
		if g.attestFailFirst > 0 {
			g.attestFailFirst--
			return &api.Problem{Status: http.StatusServiceUnavailable, Detail: "the attestation service is unavailable"}
		}
	}
	return nil
}

// after records what the gateway answered.
func (g *testGateway) after(r *http.Request, body []byte, rec *httptest.ResponseRecorder) {
	g.mu.Lock()
	defer g.mu.Unlock()
	answer := recorded{Status: rec.Code}
	if rec.Code >= 400 {
		_ = json.Unmarshal(rec.Body.Bytes(), &answer.Problem)
	}
	switch r.URL.Path {
	case "/v1/node/nonce":
		var n nonceAnswer
		if json.Unmarshal(rec.Body.Bytes(), &n) == nil && len(n.Nonce) > 0 {
			g.nonces = append(g.nonces, b64(n.Nonce))
		}
	case "/v1/node/simulation/qe", "/v1/agent/simulation-qe":
		var a api.SimulatedQE
		if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &a) != nil {
			break
		}
		if qe, err := sim.ParseQE(a.QE); err == nil {
			if r.URL.Path == "/v1/node/simulation/qe" {
				g.qes, g.qeAt = append(g.qes, qe), time.Now()
			} else {
				g.agentQEs = append(g.agentQEs, qe)
			}
		}
	case "/v1/node/heartbeat":
		g.beatAnswers = append(g.beatAnswers, answer)
	case "/v1/node/attest":
		g.attestAnswers = append(g.attestAnswers, answer)
	}
}

// peer is the node a node-facing request comes from, by its certificate.
func (g *testGateway) peer(r *http.Request) (node, serial string) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", ""
	}
	cert := r.TLS.PeerCertificates[0]
	_, node, _ = nodeURI(cert)
	return node, cert.SerialNumber.Text(16)
}

// set changes the recorder's state under its lock.
func (g *testGateway) set(f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f()
}

// counts returns how many enrolments and heartbeats reached the gateway.
func (g *testGateway) counts() (enrolls, beats int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.enrolls, len(g.beats)
}

func (g *testGateway) heartbeats() []seenHeartbeat {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]seenHeartbeat(nil), g.beats...)
}

// attestations returns the re-attestations the gateway received.
func (g *testGateway) attestations() []seenAttest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]seenAttest(nil), g.attests...)
}

// authorities are the account's root and current issuing CA.
func (g *testGateway) authorities() (root, issuer *x509.Certificate) {
	g.t.Helper()
	var ca api.CA
	g.Call(g.admin, "GET", "/v1/accounts/"+g.account+"/ca", nil, &ca)
	parse := func(p string) *x509.Certificate {
		b, _ := pem.Decode([]byte(p))
		if b == nil {
			g.t.Fatalf("no certificate in %q", p)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			g.t.Fatal(err)
		}
		return c
	}
	return parse(ca.RootPEM), parse(ca.IssuerPEM)
}

// verify has the account's attestation service verify a quote.
func (g *testGateway) verify(quote []byte) api.Verdict {
	g.t.Helper()
	var v api.Verdict
	g.Call(g.admin, "POST", "/v1/accounts/"+g.account+"/attestation/verify", api.VerifyEvidence{Quote: quote}, &v)
	return v
}

// hello is the application the issuance tests ask certificates for: its
// domain and one image (of measurement helloMRENCLAVE) are approved.
const helloDomain = "myapp.example.com"

var helloMRENCLAVE = [32]byte{0x5a, 0x01, 0x23}

// approvedHello creates and approves the hello application.
func (g *testGateway) approvedHello() gatewaytest.Approved {
	g.t.Helper()
	return g.ApprovedApp(g.admin, g.adminID, g.account, helloDomain, helloMRENCLAVE, [32]byte{0xcd})
}

// enclaveRequest is what a launcher of the hello application sends its
// agent: a CSR for the domain and a quote, by the deployment's simulated
// QE, binding the CSR's key and the nonce the agent gave it.
func (g *testGateway) enclaveRequest(r *running, app gatewaytest.Approved) issueRequest {
	g.t.Helper()
	var ti struct{ Nonce []byte }
	if status, _ := getJSON(g.t, r.url+"/enclave/target-info", &ti); status != http.StatusOK || len(ti.Nonce) != 32 {
		g.t.Fatalf("target-info = %d, nonce %x", status, ti.Nonce)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		g.t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{app.Domain}}, key)
	if err != nil {
		g.t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	binding := sha256.Sum256(spki)
	var body sgx.ReportBody
	body.MRENCLAVE, body.MRSIGNER = app.MRENCLAVE, app.MRSIGNER
	copy(body.ReportData[:32], binding[:])
	copy(body.ReportData[32:], ti.Nonce)
	qe, err := g.Attestation.SimulatedQE(g.account)
	if err != nil {
		g.t.Fatal(err)
	}
	quote, err := qe.Quote(body)
	if err != nil {
		g.t.Fatal(err)
	}
	return issueRequest{AppID: app.AppID, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), Quote: quote}
}

// issue has the agent ask for the hello application's certificate until
// the approvals have reached the attestation service and the CA, and
// returns the agent's answer.
func (g *testGateway) issue(r *running, app gatewaytest.Approved) (issueRequest, map[string]any) {
	g.t.Helper()
	var req issueRequest
	var answer map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		req = g.enclaveRequest(r, app)
		answer = map[string]any{}
		status, _ := postJSON(g.t, r.url+"/certificate/issue", req, &answer)
		if status == http.StatusOK {
			return req, answer
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("POST /v1/certificate/issue = %d %v, want 200 once the approvals arrived", status, answer)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// helloMRENCLAVEHex is helloMRENCLAVE as the API writes it.
var helloMRENCLAVEHex = hex.EncodeToString(helloMRENCLAVE[:])

// opaqueRequest is an issuance request the gateway never gets to judge
// (the test answers in its place, or the agent refuses it first).
func opaqueRequest(t *testing.T) issueRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{helloDomain}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return issueRequest{AppID: "app-1", CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
		Quote: []byte("a quote, opaque to the agent")}
}

func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Code: "test"})
}
