package ca_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/errs"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/libs/testkit/servicetest"
	"github.com/cloister-cc/cloister/services/attestation"
	"github.com/cloister-cc/cloister/services/ca"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
)

const domain = "hello.cloister.test"

// appStack runs the attestation service (in simulation) and the CA, with
// one account whose policy allows simulation, one application (domain
// hello.cloister.test, EC P-256 keys) whose domain and image are approved.
type appStack struct {
	t            *testing.T
	n            *testkit.NATS
	ca           *cav1.CAClient
	att          *attestationv1.AttestationClient
	asvc         *attestation.Service
	qesMu        sync.Mutex
	qes          map[string]*sim.QE // simulated QEs, each bound to its account
	account, app string
	image        string
	mrenclave    [32]byte
	task         *accountv1.Task
}

func startApps(t *testing.T, c cache.Cache) *appStack {
	t.Helper()
	st := servicetest.New(t)
	n := st.NATS
	kek, _ := pki.NewKEK(bytes.Repeat([]byte{6}, pki.KEKSize))
	asvc := servicetest.Start(st, "attestation", func(ctx context.Context, o service.Options) (*attestation.Service, error) {
		return attestation.Start(ctx, attestation.Config{Options: o, Simulation: true, KEK: kek, Cache: c})
	})
	servicetest.Start(st, "ca", func(ctx context.Context, o service.Options) (*ca.Service, error) {
		return ca.Start(ctx, ca.Config{Options: o, KEK: kek, Cache: c})
	})
	s := &appStack{t: t, n: n, ca: cav1.NewCAClient(n.Connect(t), n.Vouching(t)), att: attestationv1.NewAttestationClient(n.Connect(t), n.Vouching(t)), asvc: asvc,
		qes: map[string]*sim.QE{}}
	s.account, s.app, s.image = s.newAccount(), uuid.NewString(), uuid.NewString()
	copy(s.mrenclave[:], bytes.Repeat([]byte{0x5a}, 32))
	publish(t, n, "imageconverter", s.account, &imageconverterv1.AppCreated{App: &imageconverterv1.App{Id: s.app, AccountId: s.account,
		Name: "hello", Certificate: &imageconverterv1.CertificateConfig{Domain: domain, Issuer: "cloister", KeyType: "ec-p256", ValidityDays: 7}}})
	publish(t, n, "account", s.account, &accountv1.TaskApproved{Task: &accountv1.Task{Id: uuid.NewString(), AccountId: s.account,
		Kind: "domain", Status: "approved", AppId: s.app, Domain: domain}})
	s.task = &accountv1.Task{Id: uuid.NewString(), AccountId: s.account, Kind: "image", Status: "approved", AppId: s.app,
		Image: &accountv1.TaskImage{ImageId: s.image, Tag: "1", Mrenclave: s.mrenclave[:], Mrsigner: make([]byte, 32)}}
	publish(t, n, "account", s.account, &accountv1.TaskApproved{Task: s.task})
	// Ready when an enclave of the approved image gets its certificate.
	testkit.Eventually(t, 10*time.Second, func() bool {
		_, err := s.issue(s.enclave(newKey(t, "ec-p256"), domain))
		return err == nil
	}, "the approved application never got a certificate")
	return s
}

// newAccount creates an account with a CA and a policy accepting simulation.
func (s *appStack) newAccount() string {
	ctx := context.Background()
	account := uuid.NewString()
	publishAccountCreated(s.t, s.n, account)
	if _, err := s.att.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"UpToDate"}, AllowSimulation: true, AllowDebug: true}}); err != nil {
		s.t.Fatal(err)
	}
	testkit.Eventually(s.t, 10*time.Second, func() bool {
		_, err := s.ca.GetCA(ctx, &cav1.GetCARequest{AccountId: account})
		return err == nil
	}, "no CA for the account")
	return account
}

func newKey(t *testing.T, kind string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "ec-p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ec-p224":
		k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "rsa-1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	}
	if err != nil || k == nil {
		t.Fatalf("key %s: %v", kind, err)
	}
	return k
}

// request is what a launcher sends: a CSR and the id of its verdict.
type request struct {
	account, app, verdict string
	csr                   []byte
	nonce                 []byte // in the quote's REPORTDATA
	recipient             []byte // sent as the recipient key
}

// enclave does what the launcher does in simulation: a CSR for names, a
// nonce from the CA, a quote whose REPORTDATA binds the key and the nonce,
// verified by the attestation service for the app.
func (s *appStack) enclave(key crypto.Signer, names ...string) request {
	return s.enclaveWith(enclaveOpts{key: key, names: names})
}

type enclaveOpts struct {
	key       crypto.Signer
	names     []string
	bindKey   crypto.Signer // whose hash goes into REPORTDATA; key when nil
	nonce     []byte        // instead of a fresh one from the CA
	mrenclave *[32]byte
	mrsigner  *[32]byte
	debug     bool
	account   string
	// recipient is bound in REPORTDATA as the key secrets are sealed to
	// (v2), and sent unless send says otherwise.
	recipient, send []byte
}

func (s *appStack) enclaveWith(o enclaveOpts) request {
	t := s.t
	t.Helper()
	ctx := context.Background()
	if o.account == "" {
		o.account = s.account
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: o.names}, o.key)
	if err != nil {
		t.Fatal(err)
	}
	if o.bindKey == nil {
		o.bindKey = o.key
	}
	spki, err := x509.MarshalPKIXPublicKey(o.bindKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	if o.nonce == nil {
		resp, err := s.ca.CreateNonce(ctx, &cav1.CreateNonceRequest{AccountId: o.account})
		if err != nil {
			t.Fatal(err)
		}
		o.nonce = resp.GetNonce()
	}
	var body sgx.ReportBody
	body.MRENCLAVE = s.mrenclave
	if o.mrenclave != nil {
		body.MRENCLAVE = *o.mrenclave
	}
	if o.mrsigner != nil {
		body.MRSIGNER = *o.mrsigner
	}
	if o.debug {
		body.Attributes[0] |= sgx.AttributeDebug
	}
	binding := enclave.KeyBinding(sha256.Sum256(spki), o.recipient)
	copy(body.ReportData[:32], binding[:])
	copy(body.ReportData[32:], o.nonce)
	quote, err := s.qeFor(o.account).Quote(body)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.att.Verify(ctx, &attestationv1.VerifyRequest{AccountId: o.account, Quote: quote})
	if err != nil {
		t.Fatal(err)
	}
	if o.send == nil {
		o.send = o.recipient
	}
	return request{account: s.account, app: s.app, verdict: v.GetVerdict().GetId(), csr: csr, nonce: o.nonce, recipient: o.send}
}

func (s *appStack) issue(r request) (*cav1.IssueAppCertificateResponse, error) {
	return s.ca.IssueAppCertificate(context.Background(), &cav1.IssueAppCertificateRequest{
		AccountId: r.account, AppId: r.app, VerdictId: r.verdict, Csr: r.csr, RecipientKey: r.recipient})
}

func (s *appStack) count() int {
	s.t.Helper()
	list, err := s.ca.ListCertificates(context.Background(), &cav1.ListCertificatesRequest{AccountId: s.account, Kind: "app", IncludeRevoked: true})
	if err != nil {
		s.t.Fatal(err)
	}
	return len(list.GetCertificates())
}

// TestAppCertificateRefusals: each check refuses on its own, says which
// check it was, and nothing is issued.
func TestAppCertificateRefusals(t *testing.T) {
	s := startApps(t, cache.NewMemory(0))
	other := s.newAccount()
	otherApp := uuid.NewString()
	publish(t, s.n, "imageconverter", s.account, &imageconverterv1.AppCreated{App: &imageconverterv1.App{Id: otherApp, AccountId: s.account,
		Name: "other", Certificate: &imageconverterv1.CertificateConfig{Domain: domain, Issuer: "cloister", KeyType: "ec-p256"}}})
	publish(t, s.n, "account", s.account, &accountv1.TaskApproved{Task: &accountv1.Task{Id: uuid.NewString(), AccountId: s.account,
		Kind: "domain", Status: "approved", AppId: otherApp, Domain: domain}})
	testkit.Eventually(t, 10*time.Second, func() bool {
		r := s.enclave(newKey(t, "ec-p256"), domain)
		r.app = otherApp
		_, err := s.issue(r)
		return err != nil && !strings.Contains(err.Error(), "app check")
	}, "the other application never became known")
	unapproved := [32]byte{1, 2, 3}
	used := s.enclave(newKey(t, "ec-p256"), domain)
	if _, err := s.issue(used); err != nil {
		t.Fatal(err)
	}
	withApp := func(r request, app string) request { r.app = app; return r }
	withVerdict := func(r request, v string) request { r.verdict = v; return r }
	tests := []struct {
		name  string
		req   func() request
		check string
	}{
		{"unapproved domain", func() request { return s.enclave(newKey(t, "ec-p256"), "other.cloister.test") }, "domain"},
		{"one approved name and one not", func() request { return s.enclave(newKey(t, "ec-p256"), domain, "evil.cloister.test") }, "domain"},
		{"verdict of another account", func() request {
			return withVerdict(s.enclave(newKey(t, "ec-p256"), domain), s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, account: other}).verdict)
		}, "verdict"},
		{"verdict that does not exist", func() request { return withVerdict(s.enclave(newKey(t, "ec-p256"), domain), uuid.NewString()) }, "verdict"},
		{"key does not match the report-data binding", func() request {
			return s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), bindKey: newKey(t, "ec-p256"), names: []string{domain}})
		}, "binding"},
		{"a recipient key not the one bound", func() request {
			return s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, recipient: bytes.Repeat([]byte{1}, 32), send: bytes.Repeat([]byte{2}, 32)})
		}, "binding"},
		{"a recipient key bound but not sent", func() request {
			r := s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, recipient: bytes.Repeat([]byte{1}, 32)})
			r.recipient = nil
			return r
		}, "binding"},
		{"a recipient key sent but not bound", func() request {
			r := s.enclave(newKey(t, "ec-p256"), domain)
			r.recipient = bytes.Repeat([]byte{1}, 32)
			return r
		}, "binding"},
		{"a nonce used for another key", func() request {
			return s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, nonce: used.nonce})
		}, "nonce"},
		{"nonce the CA never issued", func() request {
			return s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, nonce: bytes.Repeat([]byte{9}, 32)})
		}, "nonce"},
		{"weak RSA key", func() request { return s.enclave(newKey(t, "rsa-1024"), domain) }, "key"},
		{"P-224 key", func() request { return s.enclave(newKey(t, "ec-p224"), domain) }, "key"},
		{"unapproved image", func() request {
			return s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, mrenclave: &unapproved})
		}, "image"},
		{"image approved for another application", func() request { return withApp(s.enclave(newKey(t, "ec-p256"), domain), otherApp) }, "image"},
		{"application unknown to the CA", func() request { return withApp(s.enclave(newKey(t, "ec-p256"), domain), uuid.NewString()) }, "app"},
		{"upper-case name", func() request { return s.enclave(newKey(t, "ec-p256"), strings.ToUpper(domain)) }, "csr"},
		{"debug enclave of a production app", func() request {
			return s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, debug: true})
		}, "verdict"},
		{"approved measurement under another signer", func() request {
			return s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, mrsigner: &[32]byte{7}})
		}, "image"},
		{"garbage CSR", func() request { r := s.enclave(newKey(t, "ec-p256"), domain); r.csr = []byte("junk"); return r }, "csr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.count()
			_, err := s.issue(tt.req())
			if err == nil || !strings.Contains(err.Error(), "refused by the "+tt.check+" check") {
				t.Fatalf("issue = %v, want a refusal by the %s check", err, tt.check)
			}
			if after := s.count(); after != before {
				t.Fatalf("%d certificates issued by a refused request", after-before)
			}
		})
	}
}

// TestOneNonceOneCertificate: requests racing with one nonce get one
// certificate between them. The same request sent again (its answer lost)
// is given that certificate, by each of its sendings; another key bound to
// the nonce is refused.
func TestOneNonceOneCertificate(t *testing.T) {
	s := startApps(t, cache.NewMemory(0))
	r := s.enclave(newKey(t, "ec-p256"), domain)
	const racers = 8
	reqs := make([]request, 2*racers)
	for i := range reqs {
		reqs[i] = r
		if i%2 == 1 { // another key, bound to the same nonce
			reqs[i] = s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, nonce: r.nonce})
		}
	}
	before := s.count()
	type result struct {
		same   bool // the shared request, not another key
		serial string
		err    error
	}
	results := make(chan result, len(reqs))
	for i, req := range reqs {
		go func() {
			resp, err := s.issue(req)
			results <- result{i%2 == 0, resp.GetCertificate().GetSerial(), err}
		}()
	}
	serials := map[string]bool{}
	given := map[bool]int{}
	for range reqs {
		res := <-results
		switch {
		case res.err == nil:
			serials[res.serial] = true
			given[res.same]++
		case !strings.Contains(res.err.Error(), "nonce check"):
			t.Errorf("a racing request failed otherwise than by the nonce check: %v", res.err)
		}
	}
	if len(serials) != 1 || s.count() != before+1 {
		t.Fatalf("requests were given %d certificates and %d were issued; want one", len(serials), s.count()-before)
	}
	// If the shared request won, each of its sendings is given the
	// certificate; if another key did, it alone is.
	if !(given[true] == racers && given[false] == 0 || given[true] == 0 && given[false] == 1) {
		t.Fatalf("%d sendings of the shared request and %d other keys were given the certificate; want %d and 0, or 0 and 1",
			given[true], given[false], racers)
	}
}

// TestAppCertificateLifecycle issues an application certificate, checks it
// with openssl (chain, purpose, name, OCSP good), and revokes it by
// withdrawing the image's approval: OCSP says revoked and the CRL lists it.
// Further ones are refused until approved again; deleting the image,
// deregistering the node through which it was obtained and deleting the
// app revoke too. With the in-process cache and with Redis.
func TestAppCertificateLifecycle(t *testing.T) {
	for _, cc := range []struct {
		name string
		make func(t *testing.T) cache.Cache
	}{
		{"memory", func(*testing.T) cache.Cache { return cache.NewMemory(0) }},
		{"redis", func(t *testing.T) cache.Cache {
			r := testkit.StartRedis(t)
			return cache.NewRedis(r.Client, r.Prefix)
		}},
	} {
		t.Run(cc.name, func(t *testing.T) { testAppCertificateLifecycle(t, cc.make(t)) })
	}
}

func testAppCertificateLifecycle(t *testing.T, c cache.Cache) {
	openssl := testkit.Tool(t, "openssl")
	ctx := context.Background()
	s := startApps(t, c)
	resp, err := s.issue(s.enclave(newKey(t, "ec-p256"), domain))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(resp.GetCertificate().GetDer())
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != domain || cert.NotAfter.Sub(cert.NotBefore) > 7*24*time.Hour+5*time.Minute {
		t.Fatalf("certificate subject %s, valid %s..%s; want %s for 7 days", cert.Subject, cert.NotBefore, cert.NotAfter, domain)
	}
	att, err := pki.ParseAttestation(cert)
	if err != nil || !bytes.Equal(att.MRENCLAVE, s.mrenclave[:]) || !att.Simulated || att.TCBStatus != "UpToDate" {
		t.Fatalf("attestation extension = %+v, %v", att, err)
	}

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sh := func(args ...string) string {
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// The response chain is leaf, issuing CA, root.
	leafBlock, rest := pem.Decode(resp.GetChainPem())
	issuerBlock, rootPEM := pem.Decode(rest)
	leaf, issuer, root := write("leaf.pem", pem.EncodeToMemory(leafBlock)), write("issuer.pem", pem.EncodeToMemory(issuerBlock)), write("root.pem", rootPEM)
	chain := write("chain.pem", rest)
	for _, purpose := range []string{"sslserver", "sslclient"} {
		if out := sh("verify", "-CAfile", root, "-untrusted", issuer, "-purpose", purpose, "-verify_hostname", domain, leaf); !strings.Contains(out, ": OK") {
			t.Fatalf("openssl verify -purpose %s = %s", purpose, out)
		}
	}
	ocspStatus := func() string {
		reqPath := filepath.Join(dir, "req.der")
		sh("ocsp", "-issuer", issuer, "-cert", leaf, "-no_nonce", "-reqout", reqPath)
		req, _ := os.ReadFile(reqPath)
		r, err := s.ca.OCSP(ctx, &cav1.OCSPRequest{AccountId: s.account, Request: req})
		if err != nil {
			t.Fatal(err)
		}
		return sh("ocsp", "-respin", write("resp.der", r.GetResponse()), "-issuer", issuer, "-CAfile", chain, "-cert", leaf, "-no_nonce")
	}
	if out := ocspStatus(); !strings.Contains(out, "leaf.pem: good") || !strings.Contains(out, "Response verify OK") {
		t.Fatalf("OCSP before revocation = %s", out)
	}

	// Withdrawing the image's approval revokes what was issued on it...
	publish(t, s.n, "account", s.account, &accountv1.TaskWithdrawn{Task: s.task})
	testkit.Eventually(t, 10*time.Second, func() bool { return strings.Contains(ocspStatus(), "leaf.pem: revoked") }, "OCSP never said revoked")
	crl, err := s.ca.GetCRL(ctx, &cav1.GetCRLRequest{AccountId: s.account})
	if err != nil {
		t.Fatal(err)
	}
	serial := resp.GetCertificate().GetSerial()
	if out := sh("crl", "-inform", "DER", "-in", write("a.crl", crl.GetCrl()), "-CAfile", chain, "-noout", "-text"); !strings.Contains(out, "verify OK") ||
		!strings.Contains(strings.ToUpper(strings.ReplaceAll(out, ":", "")), strings.ToUpper(serial)) {
		t.Fatalf("the CRL does not list serial %s:\n%s", serial, out)
	}
	// ...and the next request is refused, never served stale from the cache.
	if _, err := s.issue(s.enclave(newKey(t, "ec-p256"), domain)); err == nil || !strings.Contains(err.Error(), "image check") {
		t.Fatalf("issuance after the withdrawal = %v, want an image refusal", err)
	}

	// Approved again, then the image deleted: revoked.
	s.approveImageAgain()
	var again *cav1.IssueAppCertificateResponse
	testkit.Eventually(t, 10*time.Second, func() bool { again, err = s.issue(s.enclave(newKey(t, "ec-p256"), domain)); return err == nil }, "no certificate after approving again")
	publish(t, s.n, "imageconverter", s.account, &imageconverterv1.ImageDeleted{AccountId: s.account, AppId: s.app, ImageId: s.image, Mrenclave: s.mrenclave[:]})
	s.eventuallyRevoked(again.GetCertificate().GetSerial(), "image deleted")

	// A certificate obtained through a node goes with the node.
	s.approveImageAgain()
	node := uuid.NewString()
	var viaNode *cav1.IssueAppCertificateResponse
	testkit.Eventually(t, 10*time.Second, func() bool {
		r := s.enclave(newKey(t, "ec-p256"), domain)
		viaNode, err = s.ca.IssueAppCertificate(ctx, &cav1.IssueAppCertificateRequest{AccountId: s.account, AppId: s.app, VerdictId: r.verdict, Csr: r.csr, NodeId: node})
		return err == nil
	}, "no certificate after approving again")
	if viaNode.GetCertificate().GetNodeId() != node {
		t.Fatalf("certificate records node %q, want %s", viaNode.GetCertificate().GetNodeId(), node)
	}
	kept, err := s.issue(s.enclave(newKey(t, "ec-p256"), domain))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, s.n, "noderegistry", s.account, &noderegistryv1.NodeDeregistered{AccountId: s.account, NodeId: node})
	s.eventuallyRevoked(viaNode.GetCertificate().GetSerial(), "node deregistered")
	if s.get(kept.GetCertificate().GetSerial()).GetRevoked() {
		t.Fatal("deregistering a node revoked a certificate obtained without it")
	}

	// Deleting the application revokes the rest and forgets its domains.
	publish(t, s.n, "imageconverter", s.account, &imageconverterv1.AppDeleted{AccountId: s.account, AppId: s.app})
	s.eventuallyRevoked(kept.GetCertificate().GetSerial(), "application deleted")
	if _, err := s.issue(s.enclave(newKey(t, "ec-p256"), domain)); err == nil {
		t.Fatal("a deleted application got a certificate")
	}
}

// approveImageAgain approves the image by a new task: a withdrawn task
// stays withdrawn, and a retried approval of it must change nothing.
func (s *appStack) approveImageAgain() {
	publish(s.t, s.n, "account", s.account, &accountv1.TaskApproved{Task: s.task})
	s.task = proto.Clone(s.task).(*accountv1.Task)
	s.task.Id = uuid.NewString()
	publish(s.t, s.n, "account", s.account, &accountv1.TaskApproved{Task: s.task})
}

func (s *appStack) get(serial string) *cav1.Certificate {
	s.t.Helper()
	r, err := s.ca.GetCertificate(context.Background(), &cav1.GetCertificateRequest{AccountId: s.account, Serial: serial})
	if err != nil {
		s.t.Fatal(err)
	}
	return r.GetCertificate()
}

func (s *appStack) eventuallyRevoked(serial, reason string) {
	s.t.Helper()
	testkit.Eventually(s.t, 10*time.Second, func() bool { return s.get(serial).GetRevoked() }, "certificate %s not revoked (%s)", serial, reason)
	if got := s.get(serial).GetRevocationReason(); got != reason {
		s.t.Fatalf("revocation reason %q, want %q", got, reason)
	}
}

// qeFor is a simulated QE bound to the account, as a node of it gets.
func (s *appStack) qeFor(account string) *sim.QE {
	s.t.Helper()
	s.qesMu.Lock()
	defer s.qesMu.Unlock()
	if qe, ok := s.qes[account]; ok {
		return qe
	}
	qe, err := s.asvc.SimulatedQE(account)
	if err != nil {
		s.t.Fatal(err)
	}
	s.qes[account] = qe
	return qe
}

// A nonce recorded before nonces remembered their use (its expiry alone)
// is still taken, once.
func TestNonceOfTheEarlierLayout(t *testing.T) {
	s := startApps(t, cache.NewMemory(0))
	_, js := s.n.JetStream(t)
	ctx := context.Background()
	old, err := kv.Open[time.Time](ctx, js, kv.Config{Bucket: "ca_nonces", TTL: app.NonceLifetime + time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{0x5a}, 32)
	if _, err := old.Create(ctx, s.account+"."+hex.EncodeToString(nonce), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	r := s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, nonce: nonce})
	if _, err := s.issue(r); err != nil {
		t.Fatalf("issuance with a nonce of the earlier layout = %v", err)
	}
	other := s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, nonce: nonce})
	if _, err := s.issue(other); err == nil || !strings.Contains(err.Error(), "nonce check") {
		t.Fatalf("another key with that nonce = %v, want refused by the nonce check", err)
	}
}

// TestAbandonedNonceIsRefusedInTime: a request whose nonce an earlier
// sending took, and died before recording a certificate (its process
// killed), is refused before the caller's deadline, so that the caller
// asks for a new nonce rather than sending the same request again, and
// again, into the same wait.
func TestAbandonedNonceIsRefusedInTime(t *testing.T) {
	s := startApps(t, cache.NewMemory(0))
	_, js := s.n.JetStream(t)
	ctx := context.Background()
	nonces, err := kv.Open[map[string]any](ctx, js, kv.Config{Bucket: "ca_nonces", TTL: app.NonceLifetime + time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{0x6b}, 32)
	r := s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, nonce: nonce})
	csr, err := pki.ParseCSRKey(r.csr, pki.P256)
	if err != nil {
		t.Fatal(err)
	}
	// Taken by this very request, with no certificate recorded.
	if _, err := nonces.Create(ctx, s.account+"."+hex.EncodeToString(nonce), map[string]any{
		"expires": time.Now().Add(time.Minute), "used": true, "binding": csr.KeyHash[:]}); err != nil {
		t.Fatal(err)
	}
	const deadline = 3 * time.Second
	cctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	_, err = s.ca.IssueAppCertificate(cctx, &cav1.IssueAppCertificateRequest{AccountId: r.account, AppId: r.app, VerdictId: r.verdict, Csr: r.csr})
	if err == nil || !strings.Contains(err.Error(), "nonce check") {
		t.Fatalf("a request whose nonce an abandoned sending took = %v, want refused by the nonce check within %v", err, deadline)
	}
}

// An enclave that binds a recipient key beside its certificate key gets
// its certificate, and the record keeps the key, which the image
// converter seals the enclave's secrets to.
func TestRecipientKeyIsRecorded(t *testing.T) {
	s := startApps(t, cache.NewMemory(0))
	recipient := bytes.Repeat([]byte{5}, 32)
	resp, err := s.issue(s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, recipient: recipient}))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetCertificate().GetRecipientKey(); !bytes.Equal(got, recipient) {
		t.Fatalf("issued certificate's recipient key = %x, want %x", got, recipient)
	}
	got, err := s.ca.GetCertificate(context.Background(), &cav1.GetCertificateRequest{AccountId: s.account, Serial: resp.GetCertificate().GetSerial()})
	if err != nil || !bytes.Equal(got.GetCertificate().GetRecipientKey(), recipient) {
		t.Fatalf("GetCertificate = %v, %v; want the recipient key recorded", got, err)
	}
	if _, err := s.issue(s.enclaveWith(enclaveOpts{key: newKey(t, "ec-p256"), names: []string{domain}, recipient: []byte{1, 2}})); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("a recipient key of 2 bytes: issue = %v, want invalid", err)
	}
}
