package noderegistry_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"testing"

	"github.com/cloister-cc/cloister/libs/errs"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
)

// TestSimulatedQEForToken: a valid join token gets a simulated QE for its
// account, whose quotes verify there and let a node enrol with evidence
// under a policy that requires it; a revoked or unknown token is refused
// as Enroll refuses it; asking takes no use of the token.
func TestSimulatedQEForToken(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct := s.account()
	s.requireNodeEvidence(acct)
	tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{MaxUses: 1})
	uses := func() uint32 { return s.uses(acct, tok.GetToken().GetId()) }

	var resp *noderegistryv1.SimulatedQEForTokenResponse
	for range 3 { // asking again takes no use of a one-use token
		var err error
		resp, err = s.nr.SimulatedQEForToken(ctx, &noderegistryv1.SimulatedQEForTokenRequest{JoinToken: tok.GetSecret()})
		if err != nil {
			t.Fatalf("SimulatedQEForToken = %v", err)
		}
	}
	if u := uses(); u != 0 {
		t.Fatalf("token has %d uses after SimulatedQEForToken, want 0", u)
	}
	qe, err := sim.ParseQE(resp.GetQe())
	if err != nil {
		t.Fatalf("ParseQE = %v", err)
	}

	n := newNode(t)
	csr, err := x509.ParseCertificateRequest(n.csr)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	binding := sha256.Sum256(spki)
	nonce := s.enrolmentNonce(tok.GetSecret())
	var body sgx.ReportBody
	copy(body.ReportData[:32], binding[:])
	copy(body.ReportData[32:], nonce)
	body.MRENCLAVE[0] = 0x11
	quote, err := qe.Quote(body)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.att.Verify(ctx, &attestationv1.VerifyRequest{AccountId: acct, Quote: quote, Binding: binding[:], Nonce: nonce})
	if err != nil || !v.GetVerdict().GetOk() {
		t.Fatalf("Verify(quote of the issued QE) = %v, %v; want ok", v, err)
	}
	er, err := s.nr.Enroll(ctx, &noderegistryv1.EnrollRequest{JoinToken: tok.GetSecret(), NodeName: "sim-1", Csr: n.csr, Evidence: quote, Nonce: nonce})
	if err != nil || !er.GetNode().GetAttested() || !er.GetNode().GetSimulated() {
		t.Fatalf("Enroll with evidence of the issued QE = %v, %v; want an attested node", er, err)
	}
	if u := uses(); u != 1 {
		t.Fatalf("token has %d uses after one enrolment, want 1", u)
	}
	_, err = s.nr.SimulatedQEForToken(ctx, &noderegistryv1.SimulatedQEForTokenRequest{JoinToken: tok.GetSecret()})
	wantRefused(t, "SimulatedQEForToken(used-up token)", err, errs.Unauthenticated, "the join token is used up")

	revoked := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{Name: "revoked"})
	if _, err := s.nr.RevokeJoinToken(ctx, &noderegistryv1.RevokeJoinTokenRequest{Actor: actor, AccountId: acct, TokenId: revoked.GetToken().GetId()}); err != nil {
		t.Fatal(err)
	}
	_, err = s.nr.SimulatedQEForToken(ctx, &noderegistryv1.SimulatedQEForTokenRequest{JoinToken: revoked.GetSecret()})
	wantRefused(t, "SimulatedQEForToken(revoked token)", err, errs.Unauthenticated, "the join token is revoked")
	_, err = s.nr.SimulatedQEForToken(ctx, &noderegistryv1.SimulatedQEForTokenRequest{JoinToken: "cjt_nope"})
	wantRefused(t, "SimulatedQEForToken(unknown token)", err, errs.Unauthenticated, "the join token is unknown")

	// An account whose policy does not allow simulation gets no QE.
	strict := s.bareAccount()
	st := s.token(strict, &noderegistryv1.CreateJoinTokenRequest{})
	_, err = s.nr.SimulatedQEForToken(ctx, &noderegistryv1.SimulatedQEForTokenRequest{JoinToken: st.GetSecret()})
	if errs.KindOf(err) != errs.PermissionDenied {
		t.Fatalf("SimulatedQEForToken under a policy without simulation = %v, want permission_denied", err)
	}
}
