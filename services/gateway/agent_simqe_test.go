package gateway_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
)

// TestAgentSimulatedQE: POST /v1/agent/simulation-qe, with a join token,
// gives a QE only once the account's policy allows simulation; a node
// agent then enrols with evidence made with it under a policy that
// requires node attestation. An unknown token is refused with 401.
func TestAgentSimulatedQE(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	acct := s.account(admin, "A")
	s.waitCA(t, admin, acct)
	r := do(t, s.srv, "POST", "/v1/accounts/"+acct+"/join-tokens", admin, map[string]any{"name": "rack-1", "max_uses": 1})
	var tok struct{ ID, Secret string }
	r.decode(t, &tok)
	if r.status != 201 {
		t.Fatalf("creating a token = %d %s", r.status, r.body)
	}

	r = do(t, s.srv, "POST", "/v1/agent/simulation-qe", "", map[string]any{"join_token": tok.Secret})
	if r.status != 403 || !strings.Contains(r.problem(t).Detail, "simulation is not allowed by the account's policy") {
		t.Fatalf("a simulated QE under the default policy = %d %s, want 403", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", "/v1/agent/simulation-qe", "", map[string]any{"join_token": "cjt_nope"}); r.status != 401 {
		t.Fatalf("a simulated QE with an unknown token = %d %s, want 401", r.status, r.body)
	}
	if r := do(t, s.srv, "PUT", "/v1/accounts/"+acct+"/attestation/policy", admin, map[string]any{"accept_statuses": []string{"UpToDate"},
		"allow_simulation": true, "require_node_attestation": true}); r.status != 200 {
		t.Fatalf("allowing simulation = %d %s", r.status, r.body)
	}
	r = do(t, s.srv, "POST", "/v1/agent/simulation-qe", "", map[string]any{"join_token": tok.Secret})
	var got struct{ QE []byte }
	r.decode(t, &got)
	if r.status != 201 || len(got.QE) == 0 {
		t.Fatalf("a simulated QE under a policy allowing simulation = %d %s, want 201 with the QE", r.status, r.body)
	}
	qe, err := sim.ParseQE(got.QE)
	if err != nil {
		t.Fatalf("ParseQE = %v", err)
	}

	csrPEM := nodeCSRPEM(t)
	block, _ := pem.Decode([]byte(csrPEM))
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	binding := sha256.Sum256(spki)
	r = do(t, s.srv, "POST", "/v1/agent/nonce", "", map[string]any{"join_token": tok.Secret})
	var nonce struct{ Nonce []byte }
	r.decode(t, &nonce)
	if r.status != 201 {
		t.Fatalf("a nonce for the enrolment = %d %s", r.status, r.body)
	}
	var body sgx.ReportBody
	copy(body.ReportData[:32], binding[:])
	copy(body.ReportData[32:], nonce.Nonce)
	quote, err := qe.Quote(body)
	if err != nil {
		t.Fatal(err)
	}
	// The one-use token still has its use: asking for the QE and the
	// nonce took none.
	r = do(t, s.srv, "POST", "/v1/agent/enroll", "", map[string]any{"join_token": tok.Secret, "node_name": "sim-1", "csr": csrPEM, "evidence": quote, "nonce": nonce.Nonce})
	var enrolled struct {
		Node struct {
			Attested, Simulated bool
		}
	}
	r.decode(t, &enrolled)
	if r.status != 201 || !enrolled.Node.Attested || !enrolled.Node.Simulated {
		t.Fatalf("enrolling with evidence of the QE = %d %s, want an attested node", r.status, r.body)
	}
}
