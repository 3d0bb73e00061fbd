package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/errs"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// TestDeletedAccountServesItsFinalCRL: once an account is deleted through
// the API, its CRL URL keeps answering, publicly, with the CRL its issuing
// CA signed on the way out, listing the certificates the deletion revoked.
func TestDeletedAccountServesItsFinalCRL(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	acct := s.account(admin, "A")
	testkit.Eventually(t, 10*time.Second, func() bool {
		return do(t, s.srv, "GET", "/v1/accounts/"+acct+"/ca", admin, nil).status == 200
	}, "the account's CA did not appear")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	cas := cav1.NewCAClient(s.nc)
	issued, err := cas.IssueNodeCertificate(context.Background(), &cav1.IssueNodeCertificateRequest{
		AccountId: acct, NodeId: "01a21bf3-e490-766a-8e88-b6b30f4db069", Csr: csr})
	if err != nil {
		t.Fatal(err)
	}
	serial := issued.GetCertificate().GetSerial()
	block, _ := pem.Decode(issued.GetChainPem())
	issuer, _ := x509.ParseCertificate(block.Bytes)

	if r := do(t, s.srv, "DELETE", "/v1/accounts/"+acct, admin, nil); r.status != 204 {
		t.Fatalf("deleting the account = %d %s", r.status, r.body)
	}
	// The API stops answering for the account before the CA service has
	// seen AccountDeleted: ask the CA service itself.
	testkit.Eventually(t, 10*time.Second, func() bool {
		_, err := cas.GetCA(context.Background(), &cav1.GetCARequest{AccountId: acct})
		return errs.KindOf(err) == errs.NotFound
	}, "the deleted account's CA is still there")
	r := do(t, s.srv, "GET", "/v1/crl/"+acct+".crl", "", nil)
	if r.status != 200 {
		t.Fatalf("GET crl of a deleted account = %d %s, want 200", r.status, r.body)
	}
	crl, err := x509.ParseRevocationList(r.body)
	if err != nil || crl.CheckSignatureFrom(issuer) != nil || len(crl.RevokedCertificateEntries) != 1 ||
		crl.RevokedCertificateEntries[0].SerialNumber.Text(16) != serial ||
		crl.NextUpdate.Before(issued.GetCertificate().GetNotAfter().AsTime()) {
		t.Fatalf("final CRL = %v, %v; want it signed by the account's issuer, listing %s, valid while it is", crl, err, serial)
	}
}
