package noderegistry_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/errs"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/noderegistry"
)

// TestEnrolWithEvidence: simulated evidence bound to the CSR's key and a
// nonce of the token's passes and is recorded on the node; evidence bound
// to another key, replayed, or bound to another token's nonce, evidence
// the account's policy refuses, and no evidence for a token that requires
// it are refused, without taking a use.
func TestEnrolWithEvidence(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct := s.account()
	tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{Name: "tee", RequireAttestation: true, MaxUses: 10})

	t.Run("bound to the node's key", func(t *testing.T) {
		n := newNode(t)
		resp, err := s.nr.Enroll(ctx, s.enrolWith(acct, tok.GetSecret(), "tee-1", n, n.key))
		if err != nil {
			t.Fatalf("Enroll with evidence = %v", err)
		}
		got := resp.GetNode()
		if !got.GetAttested() || !got.GetSimulated() || got.GetVerdictId() == "" || got.GetLastAttested() == nil || got.GetStatus() != "active" ||
			got.GetName() != "tee-1" || got.GetJoinTokenId() != tok.GetToken().GetId() || got.GetAccountId() != acct {
			t.Fatalf("node = %v, want an active node attested in simulation", got)
		}
	})
	t.Run("bound to another key", func(t *testing.T) {
		n, other := newNode(t), newNode(t)
		_, err := s.nr.Enroll(ctx, s.enrolWith(acct, tok.GetSecret(), "tee-2", n, other.key))
		wantRefused(t, "Enroll with evidence of another key", err, errs.PermissionDenied, "binding")
	})
	t.Run("replayed", func(t *testing.T) {
		// Evidence is fresh: the same enrolment presented twice enrols once.
		n := newNode(t)
		req := s.enrolWith(acct, tok.GetSecret(), "tee-4", n, n.key)
		if _, err := s.nr.Enroll(ctx, req); err != nil {
			t.Fatal(err)
		}
		_, err := s.nr.Enroll(ctx, req)
		wantRefused(t, "Enroll replaying evidence", err, errs.PermissionDenied, "nonce")
	})
	t.Run("another token's nonce", func(t *testing.T) {
		n := newNode(t)
		other := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{})
		req := s.enrolWith(acct, other.GetSecret(), "tee-5", n, n.key)
		req.JoinToken = tok.GetSecret()
		_, err := s.nr.Enroll(ctx, req)
		wantRefused(t, "Enroll with another token's nonce", err, errs.PermissionDenied, "nonce")
	})
	t.Run("required and missing", func(t *testing.T) {
		_, err := s.enroll(tok.GetSecret(), nil)
		wantRefused(t, "Enroll without evidence", err, errs.PermissionDenied, "requires attestation")
	})
	t.Run("not a quote", func(t *testing.T) {
		_, err := s.enroll(tok.GetSecret(), []byte("not a quote"))
		if k := errs.KindOf(err); k != errs.PermissionDenied {
			t.Fatalf("Enroll with garbage evidence = %v (%v), want permission_denied", err, k)
		}
	})
	t.Run("policy refuses simulation", func(t *testing.T) {
		strict := s.bareAccount()
		st := s.token(strict, &noderegistryv1.CreateJoinTokenRequest{})
		n := newNode(t)
		_, err := s.nr.Enroll(ctx, s.enrolWith(acct, st.GetSecret(), "tee-3", n, n.key))
		wantRefused(t, "Enroll with simulated evidence, simulation not allowed", err, errs.PermissionDenied, "simulation")
		// Without evidence, a token that does not require it enrols.
		if got := s.mustEnroll(st.GetSecret(), nil).resp.GetNode(); got.GetAttested() || got.GetVerdictId() != "" {
			t.Fatalf("node without evidence = %v, want unattested", got)
		}
	})
	list, err := s.nr.ListJoinTokens(ctx, &noderegistryv1.ListJoinTokensRequest{Actor: actor, AccountId: acct})
	if err != nil || list.GetTokens()[0].GetUses() != 2 {
		t.Fatalf("token = %v, %v; want 2 uses: refusals take none", list, err)
	}
}

// TestNodeCertificate: the chain is the node's certificate, for its key,
// then the account's CA; it verifies for client authentication and names
// the node as urn:cloister:node:<account>:<node>.
func TestNodeCertificate(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct := s.account()
	n := s.mustEnroll(s.token(acct, &noderegistryv1.CreateJoinTokenRequest{}).GetSecret(), nil)

	var certs []*x509.Certificate
	for rest := n.resp.GetChainPem(); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 3 {
		t.Fatalf("chain has %d certificates, want the node's, the issuer's and the root", len(certs))
	}
	leaf := certs[0]
	caResp, err := s.ca.GetCA(ctx, &cav1.GetCARequest{AccountId: acct})
	if err != nil {
		t.Fatal(err)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caResp.GetRootPem()) {
		t.Fatal("no root")
	}
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("node certificate does not verify against the account CA: %v", err)
	}
	want := "urn:cloister:node:" + acct + ":" + n.id()
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		t.Fatalf("certificate URIs = %v, want %s", leaf.URIs, want)
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&n.key.PublicKey) {
		t.Fatal("certificate is not for the node's key")
	}
	if leaf.SerialNumber.Text(16) != n.serial() {
		t.Fatalf("certificate serial %x, node records %s", leaf.SerialNumber, n.serial())
	}
	got, err := s.nr.GetNode(ctx, &noderegistryv1.GetNodeRequest{Actor: actor, AccountId: acct, NodeId: n.id()})
	if err != nil || got.GetNode().GetCertificateSerial() != n.serial() {
		t.Fatalf("GetNode = %v, %v", got, err)
	}
	if ev := eventsOf(s, func() *noderegistryv1.NodeEnrolled { return &noderegistryv1.NodeEnrolled{} }); len(ev) != 1 || ev[0].GetNode().GetId() != n.id() {
		t.Fatalf("NodeEnrolled events = %v", ev)
	}
}

// TestEnrolRefusesBadInput: node names and CSRs are checked (after the
// token, which is the credential), without taking a use.
func TestEnrolRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct := s.account()
	tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{MaxUses: 1})
	// A token for several nodes names none of them: without a name or a
	// host name there is none.
	multi := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{MaxUses: 2})
	n := newNode(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaCSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, rsaKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384CSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, p384)
	for _, tc := range []struct {
		name, nodeName string
		csr            []byte
		want           string
	}{
		{"no name and no host name", "", n.csr, "node_name"},
		{"name with a space", "node 1", n.csr, "node_name"},
		{"name of 65", strings.Repeat("n", 65), n.csr, "node_name"},
		{"RSA key", "n1", rsaCSR, "csr"},
		{"P-384 key", "n1", p384CSR, "csr"},
		{"not a CSR", "n1", []byte("hello"), "csr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.nr.Enroll(ctx, &noderegistryv1.EnrollRequest{JoinToken: multi.GetSecret(), NodeName: tc.nodeName, Csr: tc.csr})
			wantRefused(t, "Enroll", err, errs.Invalid, tc.want)
		})
	}
	// A CSR not signed by its key: the CA, which checks the signature
	// once for the enrolment, refuses it, and the use is given back.
	forged := bytes.Clone(n.csr)
	forged[len(forged)-2] ^= 1 // in the signature, the last field
	_, err = s.nr.Enroll(ctx, &noderegistryv1.EnrollRequest{JoinToken: multi.GetSecret(), NodeName: "forged", Csr: forged})
	wantRefused(t, "Enroll with a forged CSR", err, errs.Invalid, "signature")
	if used := s.uses(acct, multi.GetToken().GetId()); used != 0 {
		t.Errorf("after a refused CSR the token has %d uses taken, want 0", used)
	}
	// A PEM CSR and a name of 64 pass, with the one use left.
	pemCSR := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: n.csr})
	if _, err := s.nr.Enroll(ctx, &noderegistryv1.EnrollRequest{JoinToken: tok.GetSecret(), NodeName: strings.Repeat("n", 64), Csr: pemCSR}); err != nil {
		t.Fatalf("Enroll with a PEM CSR = %v", err)
	}
}

// TestEnrolmentNames: a node is named as it asks; else after a token made
// for one node; else after its host. A host name that cannot name a node
// is refused, saying so, without taking a use.
func TestEnrolmentNames(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct := s.account()
	for _, tc := range []struct {
		name              string
		maxUses           uint32
		asked, host, want string
	}{
		{"asked", 1, "asked-1", "host-1", "asked-1"},
		{"token for one node", 1, "", "host-1", "rack-1"},
		{"token for many", 0, "", "host-1", "host-1"},
		{"token for two", 2, "", "host.example", "host.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{MaxUses: tc.maxUses})
			resp, err := s.nr.Enroll(ctx, &noderegistryv1.EnrollRequest{JoinToken: tok.GetSecret(), NodeName: tc.asked, HostName: tc.host, Csr: newNode(t).csr})
			if err != nil {
				t.Fatalf("Enroll = %v", err)
			}
			if got := resp.GetNode().GetName(); got != tc.want {
				t.Fatalf("the node is named %q, want %q", got, tc.want)
			}
		})
	}
	tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{MaxUses: 2})
	_, err := s.nr.Enroll(ctx, &noderegistryv1.EnrollRequest{JoinToken: tok.GetSecret(), HostName: "host with spaces", Csr: newNode(t).csr})
	wantRefused(t, "Enroll with a bad host name", err, errs.Invalid, `the host name "host with spaces" cannot name a node`)
	if got := s.uses(acct, tok.GetToken().GetId()); got != 0 {
		t.Fatalf("the refused enrolment took a use: %d", got)
	}
}

// TestCAFailureGivesTheUseBack: when the CA cannot issue (the account has
// no CA yet), the enrolment fails and the token keeps its use.
func TestCAFailureGivesTheUseBack(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct := uuid.NewString() // no AccountCreated yet: no CA
	tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{MaxUses: 1})
	_, err := s.enroll(tok.GetSecret(), nil)
	wantRefused(t, "Enroll without a CA", err, errs.NotFound, "the account has no CA")
	list, err := s.nr.ListJoinTokens(ctx, &noderegistryv1.ListJoinTokensRequest{Actor: actor, AccountId: acct})
	if err != nil || list.GetTokens()[0].GetUses() != 0 {
		t.Fatalf("token after the CA failed = %v, %v; want its use back", list, err)
	}
	s.publish("account", acct, &accountv1.AccountCreated{Account: &accountv1.Account{Id: acct, Name: "late"}})
	testkit.EventuallyMsg(t, 10*time.Second, func() bool {
		_, err = s.enroll(tok.GetSecret(), nil)
		return err == nil
	}, func() string { return fmt.Sprintf("the token's one use is lost: %v", err) })
}

// TestPolicyChangeReachesEnrolment: the registry keeps what an account's
// policy says for a moment, and a change of the policy is seen at once,
// through its event: with a TTL of an hour, nothing else could drop it.
func TestPolicyChangeReachesEnrolment(t *testing.T) {
	s := newStack(t, nil, 0, func(c *noderegistry.Config) { c.PolicyTTL = time.Hour })
	acct := s.account()
	tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{}) // any number of uses
	s.mustEnroll(tok.GetSecret(), nil)                             // the policy, which requires nothing, is kept
	s.requireNodeEvidence(acct)
	var err error
	testkit.EventuallyMsg(t, 10*time.Second, func() bool {
		_, err = s.enroll(tok.GetSecret(), nil)
		return errs.KindOf(err) == errs.PermissionDenied
	}, func() string {
		return fmt.Sprintf("enrolment without evidence after the policy came to require it = %v, want it refused", err)
	})
	wantRefused(t, "Enroll without evidence", err, errs.PermissionDenied, "requires node evidence")
}

// TestEnrolPolicyRequiresEvidence: when the account's attestation policy
// requires node evidence, a node without it is refused though its token
// does not require it, and one with simulated evidence enrols; when the
// policy cannot be read, enrolment fails closed. Refusals take no use.
func TestEnrolPolicyRequiresEvidence(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct := s.account()
	s.requireNodeEvidence(acct)
	tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{MaxUses: 10})
	uses := func() uint32 { return s.uses(acct, tok.GetToken().GetId()) }

	_, err := s.enroll(tok.GetSecret(), nil)
	wantRefused(t, "Enroll without evidence", err, errs.PermissionDenied,
		"the account's attestation policy requires node evidence, and the node presented none")
	if u := uses(); u != 0 {
		t.Fatalf("token after the refusal has %d uses, want 0", u)
	}
	n := newNode(t)
	resp, err := s.nr.Enroll(ctx, s.enrolWith(acct, tok.GetSecret(), "tee-1", n, n.key))
	if err != nil || !resp.GetNode().GetAttested() || !resp.GetNode().GetSimulated() {
		t.Fatalf("Enroll with simulated evidence = %v, %v; want an attested node", resp, err)
	}
	if u := uses(); u != 1 {
		t.Fatalf("token after one enrolment has %d uses, want 1", u)
	}

	// The attestation service gone, the policy cannot be read: no
	// enrolment, with or without evidence, and no use taken. For a moment
	// (PolicyTTL) the registry still knows the policy requires evidence.
	s.stopAttestation()
	testkit.EventuallyMsg(t, 10*time.Second, func() bool {
		_, err = s.enroll(tok.GetSecret(), nil)
		return errs.KindOf(err) != errs.PermissionDenied
	}, func() string { return fmt.Sprintf("Enroll without the attestation service = %v", err) })
	wantRefused(t, "Enroll without the attestation service", err, errs.Unavailable, "attestation policy cannot be read")
	m := newNode(t)
	_, err = s.nr.Enroll(ctx, s.enrolWith(acct, tok.GetSecret(), "tee-2", m, m.key))
	wantRefused(t, "Enroll with evidence without the attestation service", err, errs.Unavailable, "attestation policy cannot be read")
	if u := uses(); u != 1 {
		t.Fatalf("token after the failures has %d uses, want 1", u)
	}
}
