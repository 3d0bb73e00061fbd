package ca_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/errs"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/libs/testkit/servicetest"
	"github.com/cloister-cc/cloister/services/ca"
)

// startCA runs the CA service and creates a CA for a fresh account by
// delivering AccountCreated the way the account service does.
func startCA(t *testing.T) (*cav1.CAClient, string) {
	c, account, _ := startCAWithNATS(t)
	return c, account
}

func startCAWithNATS(t *testing.T) (*cav1.CAClient, string, *testkit.NATS) {
	t.Helper()
	ctx := context.Background()
	st := servicetest.New(t)
	n := st.NATS
	kek, _ := pki.NewKEK(bytes.Repeat([]byte{6}, pki.KEKSize))
	servicetest.Start(st, "ca", func(ctx context.Context, o service.Options) (*ca.Service, error) {
		return ca.Start(ctx, ca.Config{Options: o, KEK: kek})
	})
	account := uuid.NewString()
	publishAccountCreated(t, n, account)
	c := cav1.NewCAClient(n.Connect(t), n.Vouching(t))
	testkit.Eventually(t, 10*time.Second, func() bool {
		_, err := c.GetCA(ctx, &cav1.GetCARequest{AccountId: account})
		return err == nil
	}, "no CA for the account")
	return c, account, n
}

func nodeCSR(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestNodeCertificatesRevocationCRLAndOCSP(t *testing.T) {
	openssl := testkit.Tool(t, "openssl")
	ctx := context.Background()
	c, account := startCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	node := uuid.NewString()
	resp, err := c.IssueNodeCertificate(ctx, &cav1.IssueNodeCertificateRequest{AccountId: account, NodeId: node, Csr: nodeCSR(t, key)})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(resp.GetCertificate().GetDer())
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != "urn:cloister:node:"+account+":"+node ||
		len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("node certificate: URIs %v, ext key usage %v", cert.URIs, cert.ExtKeyUsage)
	}

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	chain := write("chain.pem", resp.GetChainPem())
	issuerBlock, rest := pem.Decode(resp.GetChainPem())
	rootPath := write("root.pem", rest)
	issuerPath := write("issuer.pem", pem.EncodeToMemory(issuerBlock))
	leaf := write("leaf.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	sh := func(args ...string) string {
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := sh("verify", "-CAfile", rootPath, "-untrusted", issuerPath, "-purpose", "sslclient", leaf); !strings.Contains(out, ": OK") {
		t.Fatalf("openssl verify = %s", out)
	}

	ocspStatus := func() string {
		reqPath := filepath.Join(dir, "req.der")
		sh("ocsp", "-issuer", issuerPath, "-cert", leaf, "-no_nonce", "-reqout", reqPath)
		req, _ := os.ReadFile(reqPath)
		r, err := c.OCSP(ctx, &cav1.OCSPRequest{AccountId: account, Request: req})
		if err != nil {
			t.Fatal(err)
		}
		respPath := write("resp.der", r.GetResponse())
		return sh("ocsp", "-respin", respPath, "-issuer", issuerPath, "-CAfile", chain, "-cert", leaf, "-no_nonce")
	}
	if out := ocspStatus(); !strings.Contains(out, "leaf.pem: good") || !strings.Contains(out, "Response verify OK") {
		t.Fatalf("OCSP before revocation = %s", out)
	}

	serial := resp.GetCertificate().GetSerial()
	if _, err := c.RevokeCertificate(ctx, &cav1.RevokeCertificateRequest{AccountId: account, Serial: serial, Reason: "node deregistered"}); err != nil {
		t.Fatal(err)
	}
	if out := ocspStatus(); !strings.Contains(out, "leaf.pem: revoked") {
		t.Fatalf("OCSP after revocation = %s", out)
	}
	crl, err := c.GetCRL(ctx, &cav1.GetCRLRequest{AccountId: account})
	if err != nil {
		t.Fatal(err)
	}
	crlPath := write("a.crl", crl.GetCrl())
	if out := sh("crl", "-inform", "DER", "-in", crlPath, "-CAfile", chain, "-noout", "-text"); !strings.Contains(out, "verify OK") ||
		!strings.Contains(strings.ToUpper(strings.ReplaceAll(out, ":", "")), strings.ToUpper(serial)) {
		t.Fatalf("the CRL does not list serial %s:\n%s", serial, out)
	}
	list, err := c.ListCertificates(ctx, &cav1.ListCertificatesRequest{AccountId: account, IncludeRevoked: true})
	if err != nil || len(list.GetCertificates()) != 1 || !list.GetCertificates()[0].GetRevoked() {
		t.Fatalf("ListCertificates = %v, %v", list, err)
	}
	if active, _ := c.ListCertificates(ctx, &cav1.ListCertificatesRequest{AccountId: account}); len(active.GetCertificates()) != 0 {
		t.Fatalf("revoked certificate listed as active: %v", active)
	}
	// Without DER, the same records; with it (above), the certificate.
	bare, err := c.ListCertificates(ctx, &cav1.ListCertificatesRequest{AccountId: account, IncludeRevoked: true, OmitDer: true})
	if err != nil || len(bare.GetCertificates()) != 1 || bare.GetCertificates()[0].GetDer() != nil ||
		bare.GetCertificates()[0].GetSerial() != list.GetCertificates()[0].GetSerial() || len(list.GetCertificates()[0].GetDer()) == 0 {
		t.Fatalf("ListCertificates without DER = %v, %v", bare, err)
	}
}

func TestCertificateRequestsRefused(t *testing.T) {
	ctx := context.Background()
	c, account := startCA(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	tests := []struct {
		name string
		call func() error
		kind errs.Kind
	}{
		{"node id not a uuid", func() error {
			_, err := c.IssueNodeCertificate(ctx, &cav1.IssueNodeCertificateRequest{AccountId: account, NodeId: "n.>", Csr: nodeCSR(t, ec)})
			return err
		}, errs.Invalid},
		{"RSA key for a node", func() error {
			_, err := c.IssueNodeCertificate(ctx, &cav1.IssueNodeCertificateRequest{AccountId: account, NodeId: uuid.NewString(), Csr: nodeCSR(t, rsaKey)})
			return err
		}, errs.Invalid},
		{"account without CA", func() error {
			_, err := c.IssueNodeCertificate(ctx, &cav1.IssueNodeCertificateRequest{AccountId: uuid.NewString(), NodeId: uuid.NewString(), Csr: nodeCSR(t, ec)})
			return err
		}, errs.NotFound},
		{"revoke unknown serial", func() error {
			_, err := c.RevokeCertificate(ctx, &cav1.RevokeCertificateRequest{AccountId: account, Serial: "abc123"})
			return err
		}, errs.NotFound},
		{"revoke a non-hex serial", func() error {
			_, err := c.RevokeCertificate(ctx, &cav1.RevokeCertificateRequest{AccountId: account, Serial: "*"})
			return err
		}, errs.NotFound},
		{"garbage OCSP request", func() error {
			_, err := c.OCSP(ctx, &cav1.OCSPRequest{AccountId: account, Request: []byte("x")})
			return err
		}, errs.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); errs.KindOf(err) != tt.kind {
				t.Fatalf("%s = %v (kind %v), want %v", tt.name, err, errs.KindOf(err), tt.kind)
			}
		})
	}
	// Another account's serial is not found in this one.
	resp, err := c.IssueNodeCertificate(ctx, &cav1.IssueNodeCertificateRequest{AccountId: account, NodeId: uuid.NewString(), Csr: nodeCSR(t, ec)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RevokeCertificate(ctx, &cav1.RevokeCertificateRequest{AccountId: uuid.NewString(), Serial: resp.GetCertificate().GetSerial()}); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("revoking through another account = %v, want NotFound", err)
	}
}

// TestAccountDeletionRevokesCertificates: when the account goes, its
// certificates are revoked (announced) before its CA is removed.
func TestAccountDeletionRevokesCertificates(t *testing.T) {
	ctx := context.Background()
	c, account, n := startCAWithNATS(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := c.IssueNodeCertificate(ctx, &cav1.IssueNodeCertificateRequest{AccountId: account, NodeId: uuid.NewString(), Csr: nodeCSR(t, key)}); err != nil {
		t.Fatal(err)
	}
	publishAccountDeleted(t, n, account)
	testkit.Eventually(t, 10*time.Second, func() bool {
		_, err := c.GetCA(ctx, &cav1.GetCARequest{AccountId: account})
		return errs.KindOf(err) == errs.NotFound
	}, "the deleted account's CA is still there")
	_, js := n.JetStream(t)
	st, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("events.ca.v1.CertificateRevoked"))
	if err != nil || info.State.Subjects["events.ca.v1.CertificateRevoked"] != 1 {
		t.Fatalf("no CertificateRevoked event after the account was deleted: %v", err)
	}
}
