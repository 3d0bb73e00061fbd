package noderegistry_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/errs"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// appDomain is the approved domain of each account's application.
const appDomain = "hello.cloister.test"

// approvedApp is an application of an account whose domain and image are
// approved, as the account service's events make them.
type approvedApp struct {
	id, image string
	mrenclave [32]byte
}

var (
	appsMu sync.Mutex
	apps   = map[string]approvedApp{}       // by account
	issued = map[string]*cav1.Certificate{} // by node and instance id
)

// app is acct's approved application, made on first use.
func (s *stack) app(acct string) approvedApp {
	s.t.Helper()
	appsMu.Lock()
	a, ok := apps[acct]
	appsMu.Unlock()
	if ok {
		return a
	}
	a = approvedApp{id: uuid.NewString(), image: uuid.NewString()}
	copy(a.mrenclave[:], bytes.Repeat([]byte{0x5a}, 32))
	s.publish("imageconverter", acct, &imageconverterv1.AppCreated{App: &imageconverterv1.App{Id: a.id, AccountId: acct, Name: "hello",
		Certificate: &imageconverterv1.CertificateConfig{Domain: appDomain, Issuer: "cloister", KeyType: "ec-p256", ValidityDays: 7}}})
	s.publish("account", acct, &accountv1.TaskApproved{Task: &accountv1.Task{Id: uuid.NewString(), AccountId: acct,
		Kind: "domain", Status: "approved", AppId: a.id, Domain: appDomain}})
	s.publish("account", acct, &accountv1.TaskApproved{Task: &accountv1.Task{Id: uuid.NewString(), AccountId: acct, Kind: "image",
		Status: "approved", AppId: a.id, Image: &accountv1.TaskImage{ImageId: a.image, Tag: "1", Mrenclave: a.mrenclave[:], Mrsigner: make([]byte, 32)}}})
	appsMu.Lock()
	apps[acct] = a
	appsMu.Unlock()
	return a
}

// instance is what node n of acct reports for the enclave id: its
// certificate, which the CA issued through n (as the gateway's node API
// has it issue) once the enclave attested; the same certificate for the
// same id each time.
func (s *stack) instance(acct string, n *node, id string) *noderegistryv1.Instance {
	s.t.Helper()
	key := n.id() + "/" + id
	appsMu.Lock()
	c, ok := issued[key]
	appsMu.Unlock()
	if !ok {
		c = s.issueThrough(acct, n.id())
		appsMu.Lock()
		issued[key] = c
		appsMu.Unlock()
	}
	return &noderegistryv1.Instance{Id: id, CertificateSerial: c.GetSerial(), Status: "running"}
}

// issueThrough has the CA issue an enclave of acct's application a
// certificate through node nodeID.
func (s *stack) issueThrough(acct, nodeID string) *cav1.Certificate {
	s.t.Helper()
	ctx := context.Background()
	a := s.app(acct)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{appDomain}}, key)
	if err != nil {
		s.t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	binding := sha256.Sum256(spki)
	qe, err := s.attSvc.SimulatedQE(acct)
	if err != nil {
		s.t.Fatal(err)
	}
	var got *cav1.Certificate
	var last error
	// The approvals reach the CA and the attestation service as events.
	testkit.EventuallyMsg(s.t, 10*time.Second, func() bool {
		nonce, err := s.ca.CreateNonce(ctx, &cav1.CreateNonceRequest{AccountId: acct})
		if err != nil {
			last = err
			return false
		}
		var body sgx.ReportBody
		body.MRENCLAVE = a.mrenclave
		copy(body.ReportData[:32], binding[:])
		copy(body.ReportData[32:], nonce.GetNonce())
		quote, err := qe.Quote(body)
		if err != nil {
			s.t.Fatal(err)
		}
		v, err := s.att.Verify(ctx, &attestationv1.VerifyRequest{AccountId: acct, Quote: quote})
		if err != nil {
			last = err
			return false
		}
		resp, err := s.ca.IssueAppCertificate(ctx, &cav1.IssueAppCertificateRequest{AccountId: acct, AppId: a.id, VerdictId: v.GetVerdict().GetId(),
			Csr: csr, NodeId: nodeID})
		if err != nil {
			last = err
			return false
		}
		got = resp.GetCertificate()
		return true
	}, func() string { return "no application certificate through the node: " + errs.PublicMessage(last) })
	return got
}

// TestHeartbeatReportsOnlyItsOwnEnclaves: a node reports enclaves whose
// certificates the CA issued through it, and the registry records the
// certificate's application, image and MRENCLAVE; an instance on another
// node's certificate, on the node's own client certificate, on an
// unknown serial, or contradicting its certificate, is refused.
func TestHeartbeatReportsOnlyItsOwnEnclaves(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct := s.account()
	tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{MaxUses: 2})
	n, m := s.mustEnroll(tok.GetSecret(), nil), s.mustEnroll(tok.GetSecret(), nil)
	beat := func(ins ...*noderegistryv1.Instance) (*noderegistryv1.Node, error) {
		r, err := s.nr.Heartbeat(ctx, &noderegistryv1.HeartbeatRequest{AccountId: acct, NodeId: n.id(), CertificateSerial: n.serial(), Instances: ins})
		return r.GetNode(), err
	}

	mine := s.instance(acct, n, "i-1")
	got, err := beat(mine)
	if err != nil {
		t.Fatalf("a heartbeat reporting an enclave of the node = %v", err)
	}
	a := s.app(acct)
	in := got.GetInstances()[0]
	if in.GetCertificateSerial() != mine.GetCertificateSerial() || in.GetAppId() != a.id || in.GetImageId() != a.image || !bytes.Equal(in.GetMrenclave(), a.mrenclave[:]) {
		t.Fatalf("recorded instance = %v, want its certificate's application, image and MRENCLAVE", in)
	}

	theirs := s.instance(acct, m, "j-1")
	for _, c := range []struct {
		name string
		in   *noderegistryv1.Instance
		want string
	}{
		{"another node's enclave", &noderegistryv1.Instance{Id: "i-2", CertificateSerial: theirs.GetCertificateSerial()}, "not issued through this node"},
		{"the node's own certificate", &noderegistryv1.Instance{Id: "i-3", CertificateSerial: n.serial()}, "not issued through this node"},
		{"an unknown serial", &noderegistryv1.Instance{Id: "i-4", CertificateSerial: "0123abcd"}, "not one of the account's"},
		{"another application than its certificate's", &noderegistryv1.Instance{Id: "i-5", CertificateSerial: s.instance(acct, n, "i-5").GetCertificateSerial(),
			AppId: uuid.NewString()}, "not its certificate's"},
		{"no certificate", &noderegistryv1.Instance{Id: "i-6"}, "certificate_serial"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := beat(mine, c.in)
			if err == nil || !bytes.Contains([]byte(errs.PublicMessage(err)), []byte(c.want)) {
				t.Fatalf("heartbeat = %v, want a refusal saying %q", err, c.want)
			}
		})
	}
}
