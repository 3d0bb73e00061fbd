package ca_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	cadomain "github.com/cloister-cc/cloister/services/ca/internal/domain"
	"github.com/cloister-cc/cloister/services/ca/internal/peers"
	"github.com/cloister-cc/cloister/services/ca/internal/store"
)

// directCA is the CA's application service on the same NATS and KEK as
// startCAWithNATS's, for driving deletions step by step.
func directCA(t *testing.T, n *testkit.NATS) (*app.Service, *store.FinalCRLs) {
	t.Helper()
	return directCAWith(t, n, nil)
}

// directCAWith is directCA with its certificate store wrapped by wrap
// (when not nil), to interleave a step with issuance.
func directCAWith(t *testing.T, n *testkit.NATS, wrap func(app.Certificates, *store.FinalCRLs) app.Certificates) (*app.Service, *store.FinalCRLs) {
	t.Helper()
	ctx := context.Background()
	nc, js := n.JetStream(t)
	kek, _ := pki.NewKEK(bytes.Repeat([]byte{6}, pki.KEKSize))
	auth, err := store.OpenAuthorities(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := store.OpenCertificates(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	final, err := store.OpenFinalCRLs(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := store.OpenIssuance(ctx, js, 1, cache.NewMemory(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	iss.Verdicts = &peers.Verdicts{C: attestationv1.NewAttestationClient(nc)}
	var certStore app.Certificates = certs
	if wrap != nil {
		certStore = wrap(certs, final)
	}
	svc, err := app.New(app.Config{Authorities: auth, Certificates: certStore, FinalCRLs: final, Issuance: iss,
		Audit: events.AuditLog{JS: js, Producer: store.Producer}, KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	return svc, final
}

func issueNode(t *testing.T, c *cav1.CAClient, account string) (*x509.Certificate, *x509.Certificate, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	resp, err := c.IssueNodeCertificate(context.Background(), &cav1.IssueNodeCertificateRequest{AccountId: account, NodeId: uuid.NewString(), Csr: nodeCSR(t, key)})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(resp.GetCertificate().GetDer())
	if err != nil {
		t.Fatal(err)
	}
	return leaf, parsePEM(t, resp.GetChainPem()), resp.GetChainPem()
}

// checkFinalCRL checks that der is a CRL signed by issuer that lists
// leaf and lasts at least as long as it.
func checkFinalCRL(t *testing.T, der []byte, issuer, leaf *x509.Certificate) {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("final CRL signature = %v, want signed by %s", err, issuer.Subject)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("final CRL lists %v, want serial %x", crl.RevokedCertificateEntries, leaf.SerialNumber)
	}
	if crl.NextUpdate.Before(leaf.NotAfter) {
		t.Fatalf("final CRL NextUpdate = %v, want >= the certificate's NotAfter %v", crl.NextUpdate, leaf.NotAfter)
	}
}

// TestDeletedAccountKeepsItsFinalCRL: deleting an account leaves the final
// CRL of each of its issuing CAs, current and retired, listing what they
// issued; a redelivered deletion changes nothing; accounts that never were
// still have no CRL.
func TestDeletedAccountKeepsItsFinalCRL(t *testing.T) {
	ctx := context.Background()
	c, account, n := startCAWithNATS(t)
	oldLeaf, oldIssuer, _ := issueNode(t, c, account)
	admin := &accountv1.Principal{UserId: uuid.NewString(), Email: "admin@example.com", Credential: "session"}
	if _, err := c.RotateIssuer(ctx, &cav1.RotateIssuerRequest{AccountId: account, Actor: admin}); err != nil {
		t.Fatal(err)
	}
	leaf, issuer, chain := issueNode(t, c, account)

	publishAccountDeleted(t, n, account)
	testkit.Eventually(t, 10*time.Second, func() bool {
		_, err := c.GetCA(ctx, &cav1.GetCARequest{AccountId: account})
		return errs.KindOf(err) == errs.NotFound
	}, "the deleted account's CA is still there")

	crl, err := c.GetCRL(ctx, &cav1.GetCRLRequest{AccountId: account})
	if err != nil {
		t.Fatalf("GetCRL of a deleted account = %v, want its final CRL", err)
	}
	checkFinalCRL(t, crl.GetCrl(), issuer, leaf)
	if !crl.GetNextUpdate().AsTime().Equal(mustParseCRL(t, crl.GetCrl()).NextUpdate) {
		t.Fatalf("GetCRL next_update = %v, want the CRL's", crl.GetNextUpdate().AsTime())
	}
	openSSLChecksCRL(t, crl.GetCrl(), chain)
	retired, err := c.GetCRL(ctx, &cav1.GetCRLRequest{AccountId: account, IssuerKeyId: hex.EncodeToString(oldIssuer.SubjectKeyId)})
	if err != nil {
		t.Fatal(err)
	}
	checkFinalCRL(t, retired.GetCrl(), oldIssuer, oldLeaf)

	// A redelivered AccountDeleted finds the CA gone and signs nothing.
	svc, _ := directCA(t, n)
	if err := svc.DeleteCA(ctx, account); err != nil {
		t.Fatalf("DeleteCA again = %v, want nil", err)
	}
	again, err := c.GetCRL(ctx, &cav1.GetCRLRequest{AccountId: account})
	if err != nil || !bytes.Equal(again.GetCrl(), crl.GetCrl()) {
		t.Fatalf("final CRL after a redelivered deletion = %v; want it unchanged", err)
	}

	tests := []struct{ name, account, issuer string }{
		{"unknown account", uuid.NewString(), ""},
		{"not an account id", "*", ""},
		{"unknown issuer of a deleted account", account, "abcd"},
		{"issuer that is not hex", account, "*"},
		{"another account's issuer", uuid.NewString(), hex.EncodeToString(issuer.SubjectKeyId)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.GetCRL(ctx, &cav1.GetCRLRequest{AccountId: tt.account, IssuerKeyId: tt.issuer})
			if errs.KindOf(err) != errs.NotFound {
				t.Fatalf("GetCRL(%q, %q) = %v, want NotFound", tt.account, tt.issuer, err)
			}
		})
	}
}

// TestDeletionRetriedWhileTheCAIsThere: a deletion that stopped after
// storing final CRLs but before removing the CA signs them again when the
// event comes back, replacing what the first attempt left.
func TestDeletionRetriedWhileTheCAIsThere(t *testing.T) {
	ctx := context.Background()
	c, account, n := startCAWithNATS(t)
	leaf, issuer, _ := issueNode(t, c, account)
	svc, final := directCA(t, n)
	stale := cadomain.FinalCRL{IssuerKeyID: "00ff", Current: true, DER: []byte("stale"), NextUpdate: time.Now()}
	if err := final.Put(ctx, account, []cadomain.FinalCRL{stale}); err != nil {
		t.Fatal(err)
	}
	if err := svc.DeleteCA(ctx, account); err != nil {
		t.Fatal(err)
	}
	crl, err := c.GetCRL(ctx, &cav1.GetCRLRequest{AccountId: account})
	if err != nil {
		t.Fatal(err)
	}
	checkFinalCRL(t, crl.GetCrl(), issuer, leaf)
	if _, err := c.GetCRL(ctx, &cav1.GetCRLRequest{AccountId: account, IssuerKeyId: "00ff"}); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("the first attempt's CRL = %v, want NotFound", err)
	}
}

func mustParseCRL(t *testing.T, der []byte) *x509.RevocationList {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

// deletionStartsOnCreate is the real certificate store, except that the
// account's deletion starts just before a certificate is recorded: the
// race between issuance and DeleteCA, made to happen.
type deletionStartsOnCreate struct {
	app.Certificates
	final *store.FinalCRLs
}

func (d deletionStartsOnCreate) Create(ctx context.Context, c cadomain.Certificate, ev cadomain.Issued) error {
	if err := d.final.MarkClosing(ctx, c.AccountID); err != nil {
		return err
	}
	return d.Certificates.Create(ctx, c, ev)
}

// A certificate issued while its account's deletion starts is never handed
// out, and is revoked; once the deletion has started, nothing is issued.
func TestIssuanceDuringDeletion(t *testing.T) {
	ctx := context.Background()
	_, account, n := startCAWithNATS(t)
	svc, _ := directCAWith(t, n, func(c app.Certificates, f *store.FinalCRLs) app.Certificates {
		return deletionStartsOnCreate{Certificates: c, final: f}
	})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, _, err := svc.IssueNodeCertificate(ctx, account, uuid.NewString(), nodeCSR(t, key))
	if errs.KindOf(err) != errs.NotFound || !strings.Contains(err.Error(), "being deleted") {
		t.Fatalf("issuing while the deletion starts = %v, want not found: being deleted", err)
	}
	certs, err := svc.Certificates(ctx, account, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 || !certs[0].Revoked || certs[0].Reason != "account deleted" {
		t.Fatalf("certificates after the interleaved issuance = %+v, want the one, revoked", certs)
	}
	plain, _ := directCA(t, n)
	if _, _, err := plain.IssueNodeCertificate(ctx, account, uuid.NewString(), nodeCSR(t, key)); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("issuing after the deletion started = %v, want not found", err)
	}
	if certs, _ := plain.Certificates(ctx, account, "", true); len(certs) != 1 {
		t.Fatalf("a certificate was recorded after the deletion started: %d in all", len(certs))
	}
}

// TestRotationAwayFromACompromisedIssuer: rotating with revoke_previous
// revokes every certificate the previous issuer issued, keeps its last CRL
// (served by key id, listing them) and destroys it; such a rotation works
// even with every retired slot taken, and retiring a retired issuer early
// frees its slot. The current issuer cannot be retired.
func TestRotationAwayFromACompromisedIssuer(t *testing.T) {
	ctx := context.Background()
	c, account, _ := startCAWithNATS(t)
	admin := &accountv1.Principal{UserId: uuid.NewString(), Email: "admin@example.com", Credential: "session"}
	leaf, compromised, _ := issueNode(t, c, account)
	keyID := hex.EncodeToString(compromised.SubjectKeyId)

	// Fill every retired slot.
	for range pki.MaxRetiredIssuers {
		if _, err := c.RotateIssuer(ctx, &cav1.RotateIssuerRequest{AccountId: account, Actor: admin}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.RotateIssuer(ctx, &cav1.RotateIssuerRequest{AccountId: account, Actor: admin}); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("a rotation with every retired slot taken = %v, want a conflict", err)
	}
	current, err := c.GetCA(ctx, &cav1.GetCARequest{AccountId: account})
	if err != nil {
		t.Fatal(err)
	}
	currentKey := parsePEM(t, current.GetIssuerPem()).SubjectKeyId
	if _, err := c.RetireIssuer(ctx, &cav1.RetireIssuerRequest{AccountId: account, IssuerKeyId: hex.EncodeToString(currentKey), Actor: admin}); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("retiring the current issuer = %v, want a conflict", err)
	}
	if _, err := c.RetireIssuer(ctx, &cav1.RetireIssuerRequest{AccountId: account, IssuerKeyId: "abcd", Actor: admin}); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("retiring an unknown issuer = %v, want not found", err)
	}

	// Retire the oldest (the one that issued leaf) early: its slot frees.
	retired, err := c.RetireIssuer(ctx, &cav1.RetireIssuerRequest{AccountId: account, IssuerKeyId: keyID, Actor: admin})
	if err != nil {
		t.Fatal(err)
	}
	if retired.GetRevoked() != 1 {
		t.Fatalf("retiring the issuer revoked %d certificates, want 1", retired.GetRevoked())
	}
	got, err := c.GetCertificate(ctx, &cav1.GetCertificateRequest{AccountId: account, Serial: hex.EncodeToString(leaf.SerialNumber.Bytes())})
	if err != nil || !got.GetCertificate().GetRevoked() {
		t.Fatalf("the retired issuer's certificate: %v, revoked %v; want revoked", err, got.GetCertificate().GetRevoked())
	}
	crl, err := c.GetCRL(ctx, &cav1.GetCRLRequest{AccountId: account, IssuerKeyId: keyID})
	if err != nil {
		t.Fatalf("the retired issuer's CRL = %v", err)
	}
	checkFinalCRL(t, crl.GetCrl(), compromised, leaf)
	if strings.Contains(string(retired.GetCa().GetRetiredIssuersPem()), string(pemOf(compromised))) {
		t.Fatal("the retired issuer is still among the CA's issuers")
	}
	if _, err := c.RotateIssuer(ctx, &cav1.RotateIssuerRequest{AccountId: account, Actor: admin}); err != nil {
		t.Fatalf("a rotation after one retirement = %v", err)
	}

	// Full again: rotating away from the current issuer with
	// revoke_previous still works, and revokes what it issued.
	leaf2, issuer2, _ := issueNode(t, c, account)
	rotated, err := c.RotateIssuer(ctx, &cav1.RotateIssuerRequest{AccountId: account, RevokePrevious: true, Actor: admin})
	if err != nil {
		t.Fatalf("rotating with revoke_previous while full = %v", err)
	}
	if rotated.GetRevoked() != 1 || bytes.Equal(parsePEM(t, rotated.GetCa().GetIssuerPem()).SubjectKeyId, issuer2.SubjectKeyId) {
		t.Fatalf("rotation revoked %d, issuer changed %v", rotated.GetRevoked(), rotated.GetCa().GetIssuerPem() != nil)
	}
	crl2, err := c.GetCRL(ctx, &cav1.GetCRLRequest{AccountId: account, IssuerKeyId: hex.EncodeToString(issuer2.SubjectKeyId)})
	if err != nil {
		t.Fatal(err)
	}
	checkFinalCRL(t, crl2.GetCrl(), issuer2, leaf2)
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
