package noderegistry_test

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/errs"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/noderegistry"
)

// enrollAttested enrols a node of acct with simulated evidence bound to
// its key.
func (s *stack) enrollAttested(acct, secret string) *node {
	s.t.Helper()
	n := newNode(s.t)
	var err error
	n.resp, err = s.nr.Enroll(context.Background(), s.enrolWith(acct, secret, "tee-"+uuid.NewString()[:8], n, n.key))
	if err != nil || !n.resp.GetNode().GetAttested() {
		s.t.Fatalf("Enroll with evidence = %v, %v; want an attested node", n.resp, err)
	}
	return n
}

// reattest re-attests n with evidence bound to bindTo and a fresh nonce
// of n's.
func (s *stack) reattest(n *node, bindTo *ecdsa.PrivateKey) (*noderegistryv1.Node, error) {
	s.t.Helper()
	nonce := s.attestationNonce(n)
	return s.reattestWith(n, s.evidence(n.resp.GetNode().GetAccountId(), bindTo, nonce), nonce)
}

func (s *stack) reattestWith(n *node, evidence, nonce []byte) (*noderegistryv1.Node, error) {
	resp, err := s.nr.Reattest(context.Background(), &noderegistryv1.ReattestRequest{AccountId: n.resp.GetNode().GetAccountId(),
		NodeId: n.id(), CertificateSerial: n.serial(), Evidence: evidence, Nonce: nonce})
	return resp.GetNode(), err
}

// attestationNonce asks, as n, for a nonce for its next re-attestation.
func (s *stack) attestationNonce(n *node) []byte {
	s.t.Helper()
	r, err := s.nr.CreateAttestationNonce(context.Background(), &noderegistryv1.CreateAttestationNonceRequest{
		AccountId: n.resp.GetNode().GetAccountId(), NodeId: n.id(), CertificateSerial: n.serial()})
	if err != nil {
		s.t.Fatalf("CreateAttestationNonce = %v", err)
	}
	return r.GetNonce().GetNonce()
}

func (s *stack) node(acct string, n *node) *noderegistryv1.Node {
	s.t.Helper()
	r, err := s.nr.GetNode(context.Background(), &noderegistryv1.GetNodeRequest{Actor: actor, AccountId: acct, NodeId: n.id()})
	if err != nil {
		s.t.Fatal(err)
	}
	return r.GetNode()
}

// waitRevoked waits for the CA to have revoked the node's certificate and
// returns its revocation reason.
func (s *stack) waitRevoked(acct string, n *node) string {
	s.t.Helper()
	var cert *cav1.Certificate
	testkit.EventuallyMsg(s.t, 10*time.Second, func() bool {
		c, err := s.ca.GetCertificate(context.Background(), &cav1.GetCertificateRequest{AccountId: acct, Serial: n.serial()})
		cert = c.GetCertificate()
		return err == nil && cert.GetRevoked()
	}, func() string { return fmt.Sprintf("the CA has not revoked the node's certificate: %v", cert) })
	return cert.GetRevocationReason()
}

// TestReattest: fresh evidence bound to the key of the node's certificate
// renews its attestation; evidence bound to another key makes the node
// untrusted, its certificate revoked and its next call refused. Calls
// that are not the node's, or carry no evidence, change nothing.
func TestReattest(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct := s.account()
	tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{MaxUses: 10})
	n := s.enrollAttested(acct, tok.GetSecret())
	enrolled := n.resp.GetNode()
	s.beat(acct, n, "i-1")

	s.clock.Advance(time.Hour)
	nonce := s.attestationNonce(n)
	evidence := s.evidence(acct, n.key, nonce)
	got, err := s.reattestWith(n, evidence, nonce)
	if err != nil {
		t.Fatalf("Reattest with good evidence = %v", err)
	}
	if got.GetStatus() != "active" || !got.GetAttested() || !got.GetSimulated() || got.GetVerdictId() == "" || got.GetVerdictId() == enrolled.GetVerdictId() ||
		!got.GetLastAttested().AsTime().Equal(s.clock.Now()) {
		t.Fatalf("node after Reattest = %v, want active, a new verdict, attested at %v", got, s.clock.Now())
	}
	if stored := s.node(acct, n); !stored.GetLastAttested().AsTime().Equal(s.clock.Now()) || stored.GetVerdictId() != got.GetVerdictId() {
		t.Fatalf("stored node = %v, want the re-attestation recorded", stored)
	}

	_, err = s.nr.Reattest(ctx, &noderegistryv1.ReattestRequest{AccountId: acct, NodeId: n.id(), CertificateSerial: "0123abcd", Evidence: s.evidence(acct, n.key, s.attestationNonce(n))})
	wantRefused(t, "Reattest with another serial", err, errs.Unauthenticated, "not the node's current one")
	_, err = s.reattestWith(n, nil, s.attestationNonce(n))
	wantRefused(t, "Reattest without evidence", err, errs.Invalid, "evidence is required")
	// The evidence is fresh: presented again, it is refused, and so is
	// evidence bound to another node's nonce, or to none; none of these
	// judges the node.
	_, err = s.reattestWith(n, evidence, nonce)
	wantRefused(t, "Reattest replaying its evidence", err, errs.PermissionDenied, "nonce")
	m := s.enrollAttested(acct, tok.GetSecret())
	theirs := s.attestationNonce(m)
	_, err = s.reattestWith(n, s.evidence(acct, n.key, theirs), theirs)
	wantRefused(t, "Reattest with another node's nonce", err, errs.PermissionDenied, "nonce")
	_, err = s.reattestWith(n, s.evidence(acct, n.key, make([]byte, 32)), nil)
	wantRefused(t, "Reattest with no nonce", err, errs.PermissionDenied, "nonce")
	if st := s.node(acct, n).GetStatus(); st != "active" {
		t.Fatalf("node after refused calls = %s, want active", st)
	}

	other := newNode(t)
	_, err = s.reattest(n, other.key)
	wantRefused(t, "Reattest with evidence of another key", err, errs.PermissionDenied, "binding")
	if !strings.Contains(errs.PublicMessage(err), "untrusted") {
		t.Errorf("refusal %q does not say the node is untrusted", errs.PublicMessage(err))
	}
	stored := s.node(acct, n)
	if stored.GetStatus() != "untrusted" || !strings.HasPrefix(stored.GetStatusReason(), "re-attestation failed: ") {
		t.Fatalf("node after a failed re-attestation = %v, want untrusted for it", stored)
	}
	s.wantStopped(stored, "i-1")
	if reason := s.waitRevoked(acct, n); !strings.Contains(reason, "re-attestation failed") {
		t.Errorf("revocation reason %q, want the failed re-attestation", reason)
	}
	_, err = s.nr.AuthenticateNode(ctx, &noderegistryv1.AuthenticateNodeRequest{AccountId: acct, NodeId: n.id(), CertificateSerial: n.serial()})
	wantRefused(t, "AuthenticateNode after a failed re-attestation", err, errs.Unauthenticated, "the node is untrusted")
	_, err = s.nr.CreateAttestationNonce(ctx, &noderegistryv1.CreateAttestationNonceRequest{AccountId: acct, NodeId: n.id(), CertificateSerial: n.serial()})
	wantRefused(t, "A nonce for an untrusted node", err, errs.Unauthenticated, "the node is untrusted")
	_, err = s.reattestWith(n, evidence, nonce)
	wantRefused(t, "Reattest of an untrusted node", err, errs.Unauthenticated, "the node is untrusted")
}

// TestReattestOverdue: an attested node that does not re-attest within
// the period and its grace is made untrusted by the sweep (once, though
// two replicas sweep), and its certificate revoked; re-attesting in time
// keeps it, and a node enrolled without evidence is never concerned.
func TestReattestOverdue(t *testing.T) {
	ctx := context.Background()
	// A period of 1 s; the clock stands still but when moved, the test
	// sweeps, and the heartbeat timeout (90 s) stays out of it.
	s := newStack(t, nil, 0, func(c *noderegistry.Config) { c.ReattestEvery, c.SweepEvery = time.Second, -1 })
	s.replica(nil)
	acct := s.account()
	tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{MaxUses: 10})
	tee := s.enrollAttested(acct, tok.GetSecret())
	plain := s.mustEnroll(tok.GetSecret(), nil)
	s.beat(acct, tee, "i-1", "i-2")
	s.beat(acct, plain, "p-1")

	// Re-attesting within the period keeps the node trusted.
	if _, err := s.reattest(tee, tee.key); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(800 * time.Millisecond)
	if _, err := s.reattest(tee, tee.key); err != nil {
		t.Fatalf("Reattest within the period = %v", err)
	}
	s.clock.Advance(800 * time.Millisecond)
	if changed := s.sweep(); changed != 0 {
		t.Fatalf("sweeps within the period changed %d nodes", changed)
	}
	if st := s.node(acct, tee).GetStatus(); st != "active" {
		t.Fatalf("node re-attested 0.8 s ago = %s, want active", st)
	}

	// Past the period and its grace (1.1 s) since the last re-attestation.
	s.clock.Advance(800 * time.Millisecond)
	if changed := s.sweep(); changed != 1 {
		t.Fatalf("sweeps of the overdue node changed %d nodes, want 1", changed)
	}
	got := s.node(acct, tee)
	if got.GetStatus() != "untrusted" {
		t.Fatalf("the overdue node is %v, want untrusted", got)
	}
	if got.GetStatusReason() != "re-attestation overdue" {
		t.Errorf("status reason %q, want re-attestation overdue", got.GetStatusReason())
	}
	s.wantStopped(got, "i-1", "i-2")
	if reason := s.waitRevoked(acct, tee); reason != "node untrusted: re-attestation overdue" {
		t.Errorf("revocation reason %q", reason)
	}
	_, err := s.nr.AuthenticateNode(ctx, &noderegistryv1.AuthenticateNodeRequest{AccountId: acct, NodeId: tee.id(), CertificateSerial: tee.serial()})
	wantRefused(t, "AuthenticateNode of an overdue node", err, errs.Unauthenticated, "the node is untrusted")

	if changed := s.sweep(); changed != 0 {
		t.Fatalf("more sweeps changed %d nodes", changed)
	}
	if p := s.node(acct, plain); p.GetStatus() != "active" || p.GetAttested() || len(p.GetInstances()) != 1 || p.GetInstances()[0].GetStatus() != "running" {
		t.Fatalf("node enrolled without evidence = %v, want active, its instance running", p)
	}
	if _, err := s.nr.AuthenticateNode(ctx, &noderegistryv1.AuthenticateNodeRequest{AccountId: acct, NodeId: plain.id(), CertificateSerial: plain.serial()}); err != nil {
		t.Fatalf("AuthenticateNode of the node without evidence = %v", err)
	}
	var untrusted []string
	for _, e := range eventsOf(s, func() *noderegistryv1.NodeStatusChanged { return &noderegistryv1.NodeStatusChanged{} }) {
		untrusted = append(untrusted, e.GetNode().GetId()+" "+e.GetNode().GetStatus())
	}
	if len(untrusted) != 1 || untrusted[0] != tee.id()+" untrusted" {
		t.Fatalf("NodeStatusChanged = %v, want the attested node untrusted, once", untrusted)
	}
}
