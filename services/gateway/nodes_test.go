package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/testkit"
)

func nodeCSRPEM(t *testing.T) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// TestNodeRoutes: join tokens by role, enrolment with a token through the
// public route, nodes listed, deregistered, and a revoked token refused.
func TestNodeRoutes(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	_, member := s.user("member@example.com")
	_, auditor := s.user("auditor@example.com")
	acct := s.account(admin, "A")
	s.addMember(admin, acct, "member@example.com", "member")
	s.addMember(admin, acct, "auditor@example.com", "auditor")
	base := "/v1/accounts/" + acct
	testkit.Eventually(t, 10*time.Second, func() bool {
		return do(t, s.srv, "GET", base+"/ca", admin, nil).status == 200
	}, "the account's CA did not appear")

	if r := do(t, s.srv, "POST", base+"/join-tokens", auditor, map[string]any{"name": "rack-1"}); r.status != 403 {
		t.Fatalf("auditor creating a token = %d, want 403", r.status)
	}
	r := do(t, s.srv, "POST", base+"/join-tokens", member, map[string]any{"name": "rack-1", "max_uses": 2})
	var tok struct{ ID, Secret string }
	r.decode(t, &tok)
	if r.status != 201 || !strings.HasPrefix(tok.Secret, "cjt_") {
		t.Fatalf("creating a token = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "GET", base+"/join-tokens", auditor, nil); r.status != 200 || strings.Contains(string(r.body), tok.Secret) || !strings.Contains(string(r.body), tok.ID) {
		t.Fatalf("listing tokens = %d %s (the secret must not appear)", r.status, r.body)
	}

	r = do(t, s.srv, "POST", "/v1/agent/enroll", "", map[string]any{"join_token": tok.Secret, "node_name": "node-1", "csr": nodeCSRPEM(t)})
	var enrolled struct {
		Node     struct{ ID, Status string }
		ChainPEM string `json:"chain_pem"`
	}
	r.decode(t, &enrolled)
	if r.status != 201 || enrolled.Node.Status != "active" || strings.Count(enrolled.ChainPEM, "BEGIN CERTIFICATE") != 3 {
		t.Fatalf("enrolling = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", "/v1/agent/enroll", "", map[string]any{"join_token": "cjt_nope", "node_name": "node-2", "csr": nodeCSRPEM(t)}); r.status != 401 {
		t.Fatalf("enrolling with an unknown token = %d %s, want 401", r.status, r.body)
	}
	if r := do(t, s.srv, "GET", base+"/nodes", auditor, nil); r.status != 200 || !strings.Contains(string(r.body), enrolled.Node.ID) {
		t.Fatalf("listing nodes = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", base+"/nodes/"+enrolled.Node.ID+"/deregister", auditor, nil); r.status != 403 {
		t.Fatalf("auditor deregistering = %d, want 403", r.status)
	}
	if r := do(t, s.srv, "POST", base+"/nodes/"+enrolled.Node.ID+"/deregister", member, nil); r.status != 200 || !strings.Contains(string(r.body), `"status":"deregistered"`) {
		t.Fatalf("deregistering = %d %s", r.status, r.body)
	}

	if r := do(t, s.srv, "DELETE", base+"/join-tokens/"+tok.ID, member, nil); r.status != 200 || !strings.Contains(string(r.body), `"revoked":true`) {
		t.Fatalf("revoking the token = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", "/v1/agent/enroll", "", map[string]any{"join_token": tok.Secret, "node_name": "node-3", "csr": nodeCSRPEM(t)}); r.status != 401 || !strings.Contains(string(r.body), "revoked") {
		t.Fatalf("enrolling with a revoked token = %d %s, want 401 saying revoked", r.status, r.body)
	}
}
